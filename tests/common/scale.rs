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

    /// The same settings as environment variables, for a `gatehouse` process.
    pub fn replica_env(&self, database: &str, shared: &Path) -> Vec<(String, String)> {
        let mut cfg = Config::default();
        self.replica(&mut cfg, database, shared);
        let path = |p: Option<PathBuf>| p.unwrap().to_string_lossy().into_owned();
        [
            ("GATEHOUSE_DATABASE", cfg.database.unwrap()),
            ("GATEHOUSE_BLOBS", cfg.blobs.unwrap()),
            ("GATEHOUSE_S3_ENDPOINT", cfg.s3_endpoint.unwrap()),
            ("GATEHOUSE_S3_ACCESS_KEY_ID", cfg.s3_access_key_id.unwrap()),
            ("GATEHOUSE_S3_SECRET_ACCESS_KEY", cfg.s3_secret_access_key.unwrap()),
            ("GATEHOUSE_KEYS_DIR", path(cfg.keys_dir)),
            ("GATEHOUSE_SECRETS_FILE", path(cfg.secrets_file)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
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

/// nginx (Debian's, with its stream module) running `deploy/nginx-scale.conf`, the load
/// balancer of docker-compose.scale.yml: TCP round robin over two replicas that
/// terminate TLS themselves. Stopped on drop.
pub struct LoadBalancer {
    pub port: u16,
    child: std::process::Child,
    _dir: TempDir,
}

impl LoadBalancer {
    pub fn start(replica_ports: &[u16]) -> Self {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is missing: apt-get install nginx-light libnginx-mod-stream (scripts/test does)");
        let module = "/usr/lib/nginx/modules/ngx_stream_module.so";
        assert!(
            Path::new(module).exists(),
            "the nginx stream module is missing: apt-get install libnginx-mod-stream (scripts/test does)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        // A free port for nginx to listen on (nginx cannot report one it picked).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        // deploy/nginx-scale.conf itself, its compose host names replaced by loopback
        // ports; Debian's nginx loads the stream module dynamically.
        let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx-scale.conf"))
            .expect("read deploy/nginx-scale.conf");
        let [one, two] = replica_ports else {
            panic!("deploy/nginx-scale.conf balances two replicas")
        };
        let d = dir.path().display();
        let conf = format!("load_module {module};\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n")
            + &shipped
                .replace("replica1:5000", &format!("127.0.0.1:{one}"))
                .replace("replica2:5000", &format!("127.0.0.1:{two}"))
                .replace("listen 5000;", &format!("listen 127.0.0.1:{port};"));
        assert!(conf.contains(&format!("127.0.0.1:{two}")) && conf.contains(&format!(":{port};")));
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
        let child = Command::new(nginx)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .spawn()
            .expect("start nginx");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nginx did not listen: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { port, child, _dir: dir }
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master stops its workers, which would outlive it.
        // SAFETY: signalling a child process this test started and still owns.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
