//! What replicas share, for tests of several replicas: PostgreSQL and an S3-compatible
//! server. The suite's PostgreSQL + S3 run provides them (`scripts/test`); on the
//! embedded run, private ones are started here (scripts/pg-cluster, scripts/s3-server)
//! and stopped on drop, so these tests run on both runs, never skipped.

use super::{TEST_DATABASE_VAR, TEST_S3_VAR};
use gatehouse::config::Config;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

pub struct SharedBackends {
    pub pg: String,
    pub s3: String,
    dir: TempDir,
    owned: bool,
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run a test script");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn traversable_tempdir() -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    // The cluster runs as `postgres` when the tests run as root: let it reach its dir.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

impl SharedBackends {
    /// This run's PostgreSQL and S3 server, or private ones.
    pub fn start() -> Self {
        match (std::env::var(TEST_DATABASE_VAR), std::env::var(TEST_S3_VAR)) {
            (Ok(pg), Ok(s3)) => Self {
                pg,
                s3,
                dir: traversable_tempdir(),
                owned: false,
            },
            _ => Self::private(),
        }
    }

    /// A PostgreSQL cluster and an S3 server of this test's own (to stop and restart).
    pub fn private() -> Self {
        let dir = traversable_tempdir();
        let pg = run(Command::new(script("pg-cluster"))
            .arg("start")
            .arg(dir.path().join("pg")));
        let s3 = run(Command::new(script("s3-server"))
            .arg("start")
            .arg(dir.path().join("s3")));
        Self {
            pg,
            s3,
            dir,
            owned: true,
        }
    }

    /// A fresh database for one deployment of replicas.
    pub fn database(&self) -> String {
        let name = format!("replicas_{}", uuid_like());
        run(Command::new("psql")
            .arg(format!("{}/postgres", self.pg))
            .args(["-v", "ON_ERROR_STOP=1", "-qc"])
            .arg(format!("CREATE DATABASE {name}")));
        format!("{}/{name}", self.pg)
    }

    /// Settings of one replica of the deployment `shared` (database, blob prefix, keys
    /// and secrets key all shared; the data directory its own).
    pub fn replica(&self, cfg: &mut Config, database: &str, shared: &Path) {
        cfg.database = Some(database.to_owned());
        let prefix = Path::new(database).file_name().unwrap().to_string_lossy().into_owned();
        cfg.blobs = Some(format!("s3://gatehouse/{}", &prefix[prefix.len() - 10..]));
        cfg.s3_endpoint = Some(self.s3.clone());
        cfg.s3_access_key_id = Some("gatehouse-test".into());
        cfg.s3_secret_access_key = Some("gatehouse-test-secret".into());
        cfg.keys_dir = Some(shared.join("keys"));
        cfg.secrets_file = Some(shared.join("secrets.key"));
    }

    /// Stop PostgreSQL (a private cluster only; the suite's shared one stays up).
    pub fn stop_database(&self) {
        assert!(self.owned, "only a private cluster is stopped");
        run(Command::new(script("pg-cluster"))
            .arg("stop")
            .arg(self.dir.path().join("pg")));
    }

    /// Stop the S3 server (a private one only).
    pub fn stop_s3(&self) {
        assert!(self.owned, "only a private S3 server is stopped");
        run(Command::new(script("s3-server"))
            .arg("stop")
            .arg(self.dir.path().join("s3")));
    }

    pub fn restart_s3(&self) {
        run(Command::new(script("s3-server"))
            .arg("restart")
            .arg(self.dir.path().join("s3")));
    }

    pub fn restart_database(&self) {
        run(Command::new(script("pg-cluster"))
            .arg("restart")
            .arg(self.dir.path().join("pg")));
    }
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{:x}{:04x}", nanos, std::process::id() & 0xffff)
}

impl Drop for SharedBackends {
    fn drop(&mut self) {
        if self.owned {
            let _ = Command::new(script("pg-cluster"))
                .arg("stop")
                .arg(self.dir.path().join("pg"))
                .output();
            let _ = Command::new(script("s3-server"))
                .arg("stop")
                .arg(self.dir.path().join("s3"))
                .output();
        }
    }
}
