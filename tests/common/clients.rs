//! The real container clients, podman and skopeo, each with private state in a temp
//! directory. A missing client is a test failure with instructions, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn require(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is required for this test and was not found; install it with `apt-get install -y podman skopeo` \
         (the README test command and .ci/run do this)"
    );
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn client");
    assert!(
        out.status.success(),
        "{:?} failed ({}):\nstdout: {}\nstderr: {}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub struct Skopeo;

impl Skopeo {
    pub fn new() -> Self {
        require("skopeo");
        Self
    }

    /// `skopeo copy` as given, TLS verification on.
    pub fn copy_verified(&self, args: &[&str], src: &str, dst: &str) -> Output {
        let mut cmd = Command::new("skopeo");
        cmd.args(["--insecure-policy", "copy"]).args(args).args([src, dst]);
        run(&mut cmd)
    }

    /// `skopeo copy` with TLS verification off (the store speaks plain HTTP on loopback).
    pub fn copy(&self, args: &[&str], src: &str, dst: &str) -> Output {
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .args(args)
        .args([src, dst]);
        run(&mut cmd)
    }

    /// `skopeo copy` that may fail; returns its output.
    pub fn try_copy(&self, args: &[&str], src: &str, dst: &str) -> Output {
        Command::new("skopeo")
            .args(["--insecure-policy", "copy"])
            .args(args)
            .args([src, dst])
            .output()
            .expect("spawn skopeo")
    }

    pub fn inspect_raw(&self, image: &str) -> Vec<u8> {
        run(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", image])).stdout
    }
}

/// podman with its own storage (vfs driver) so tests share nothing.
pub struct Podman {
    root: tempfile::TempDir,
}

impl Podman {
    pub fn new() -> Self {
        require("podman");
        let root = tempfile::tempdir().expect("podman root");
        std::fs::write(root.path().join("auth.json"), "{}").expect("auth file");
        Self { root }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        let root: &Path = self.root.path();
        // Credentials from `podman login` stay in this instance's own auth file.
        c.env("REGISTRY_AUTH_FILE", root.join("auth.json"));
        c.arg("--root")
            .arg(root.join("storage"))
            .arg("--runroot")
            .arg(root.join("run"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
            ]);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run(self.cmd().args(args))
    }

    /// Run a command that may fail (a refused push); returns its output.
    pub fn try_run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("spawn podman")
    }

    /// `podman save` of `image` as a docker archive (layers uncompressed); returns its bytes.
    pub fn save_archive(&self, image: &str) -> Vec<u8> {
        let archive = self.root.path().join("saved.tar");
        let path = archive.to_str().expect("utf8 path");
        self.run(&["save", "--format", "docker-archive", "-o", path, image]);
        std::fs::read(&archive).expect("read saved archive")
    }

    /// Import a root filesystem (given as files) as `image`. Returns the tarball path.
    pub fn import_files(&self, image: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let src = self.root.path().join("rootfs");
        for (name, data) in files {
            let p = src.join(name);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, data).expect("write");
        }
        let tar = self.root.path().join("rootfs.tar");
        run(Command::new("tar").arg("-C").arg(&src).arg("-cf").arg(&tar).arg("."));
        self.run(&["import", tar.to_str().expect("utf8"), image]);
        tar
    }
}
