//! Debian's docker-registry (Distribution 2.8), started on an ephemeral loopback port
//! with its own storage directory: a reference registry, a backend, or a sync upstream.

use std::process::{Child, Command, Stdio};

pub struct Distribution {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub base: String,
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_distribution() -> Distribution {
    let found = Command::new("docker-registry")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "docker-registry (Distribution 2.8) is required for this test; install it with `apt-get install -y docker-registry` \
         (scripts/test does this)"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog: {{ level: warn }}\nstorage:\n  filesystem: {{ rootdirectory: {} }}\n  delete: {{ enabled: true }}\nhttp: {{ addr: 127.0.0.1:{port} }}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker-registry");
    // Wait until it accepts connections (it has no readiness signal of its own).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "docker-registry did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Distribution {
        child,
        dir,
        base: format!("http://127.0.0.1:{port}"),
    }
}

impl Distribution {
    /// Where the registry keeps a blob's (or manifest's) bytes on disk.
    pub fn blob_file(&self, digest: &str) -> std::path::PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// Push one blob to a registry without authentication, as Distribution takes it (a
/// session, then one PUT).
pub async fn push_blob_plain(base: &str, repo: &str, blob: &[u8]) {
    let c = super::http();
    let d = super::digest(blob);
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .expect("open upload");
    assert_eq!(r.status(), 202, "open upload");
    let loc = r.headers()["location"].to_str().expect("location").to_owned();
    let loc = if loc.starts_with("http") {
        loc
    } else {
        format!("{base}{loc}")
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c
        .put(format!("{loc}{sep}digest={d}"))
        .body(blob.to_vec())
        .send()
        .await
        .expect("blob put");
    assert_eq!(r.status(), 201, "blob put");
}

/// PUT an OCI image manifest as `tag`, without authentication.
pub async fn put_manifest_plain(base: &str, repo: &str, tag: &str, manifest: &[u8]) {
    let r = super::http()
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", super::OCI_MANIFEST)
        .body(manifest.to_vec())
        .send()
        .await
        .expect("manifest put");
    assert_eq!(r.status(), 201, "manifest put: {}", r.text().await.unwrap_or_default());
}

/// Push an image (a config and `layers`) to a registry without authentication; returns
/// the manifest.
pub async fn push_plain(base: &str, repo: &str, tag: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let config = super::config_blob("amd64");
    for blob in std::iter::once(&config).chain(layers) {
        push_blob_plain(base, repo, blob).await;
    }
    let refs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
    let manifest = super::image_manifest(&config, &refs, serde_json::json!({}));
    put_manifest_plain(base, repo, tag, &manifest).await;
    manifest
}

/// Delete a manifest (and so every tag on it) by digest.
pub async fn delete_manifest(base: &str, repo: &str, digest: &str) {
    let r = super::http()
        .delete(format!("{base}/v2/{repo}/manifests/{digest}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 202, "delete manifest");
}
