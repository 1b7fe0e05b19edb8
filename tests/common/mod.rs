//! Test harness: a real gatehouse server on an ephemeral loopback port, and helpers to
//! build OCI content (blobs, image manifests, indexes, OCI layouts) offline.
#![allow(dead_code)]

pub mod browser;
pub mod clients;
pub mod distribution;
pub mod gateway;
pub mod scale;

use gatehouse::oci::Digest;
use gatehouse::{server, store};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use tempfile::TempDir;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// An in-process server with its own data directory; shut down on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: TempDir,
    pub registry: store::Registry,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    /// Plain HTTP (the store's protocol tests).
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// TLS with a development CA made for `localhost` and `127.0.0.1` in `<dir>/certs`.
    pub async fn start_tls() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> Self {
        Self::start_with_limits(tls, server::ConnLimits::default()).await
    }

    /// TLS with custom connection limits.
    pub async fn start_tls_with_limits(limits: server::ConnLimits) -> Self {
        Self::start_with_limits(true, limits).await
    }

    pub async fn start_with_limits(tls: bool, limits: server::ConnLimits) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let registry = open_registry(dir.path()).await;
        let tls = tls.then(|| {
            let hosts = ["localhost".to_owned(), "127.0.0.1".to_owned()];
            let files = gatehouse::tls::init_dev_certs(&dir.path().join("certs"), &hosts).expect("dev certs");
            gatehouse::tls::server_config(&files.server_cert, &files.server_key).expect("tls config")
        });
        // Bound before the server task starts, so no readiness wait is needed.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = server::store_app(registry.clone());
        let shutdown = async {
            let _ = rx.await;
        };
        tokio::spawn(async move {
            let _ = server::serve(listener, app, tls, limits, shutdown).await;
        });
        Self {
            addr,
            dir,
            registry,
            shutdown: Some(tx),
        }
    }

    /// The development CA certificate of a `start_tls` server.
    pub fn ca_cert(&self) -> std::path::PathBuf {
        self.dir.path().join("certs/ca.crt")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `host:port` as clients write it in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Set by `scripts/test` for the suite's PostgreSQL run: the URL of a private test
/// cluster (`postgres://gatehouse@127.0.0.1:PORT`, no database).
pub const TEST_DATABASE_VAR: &str = "GATEHOUSE_TEST_DATABASE";

/// On the PostgreSQL run, the database of the data directory `data_dir`: one per
/// directory, created on first use, so that a server restarted on the same directory
/// finds its data. `None` on the SQLite run.
pub fn test_database(data_dir: &Path) -> Option<String> {
    let server = std::env::var(TEST_DATABASE_VAR).ok()?;
    let server = server.trim_end_matches('/');
    let key = Digest::sha256_of(data_dir.to_string_lossy().as_bytes()).to_string();
    let name = format!("gh_{}", &key["sha256:".len()..][..24]);
    let out = std::process::Command::new("psql")
        .arg(format!("{server}/postgres"))
        .args(["-v", "ON_ERROR_STOP=1", "-qc"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("run psql (Debian package postgresql-client) to create a test database");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("already exists"),
        "cannot create test database {name} on {server}: {stderr}"
    );
    Some(format!("{server}/{name}"))
}

/// Set by `scripts/test` for the suite's second run: the endpoint of a private
/// S3-compatible server (scripts/s3-server) with the bucket `gatehouse`.
pub const TEST_S3_VAR: &str = "GATEHOUSE_TEST_S3";

/// On the object-storage run, the blob settings of the data directory `data_dir`: its
/// own prefix in the test bucket. `None` on the local-files run.
pub fn test_blobs(data_dir: &Path) -> Option<Vec<(&'static str, String)>> {
    let endpoint = std::env::var(TEST_S3_VAR).ok()?;
    let key = Digest::sha256_of(data_dir.to_string_lossy().as_bytes()).to_string();
    Some(vec![
        // Short: s3s-fs keeps per-object metadata in a file named after the base64 of
        // the key, which must fit a 255-byte file name even for sha512 digests.
        ("blobs", format!("s3://gatehouse/{}", &key["sha256:".len()..][..10])),
        ("s3_endpoint", endpoint),
        (
            "s3_access_key_id",
            std::env::var("S3_ACCESS_KEY").unwrap_or_else(|_| "gatehouse-test".into()),
        ),
        (
            "s3_secret_access_key",
            std::env::var("S3_SECRET_KEY").unwrap_or_else(|_| "gatehouse-test-secret".into()),
        ),
    ])
}

/// Point `cfg` (whose data directory is set) at this run's database and blob store.
pub fn use_test_backends(cfg: &mut gatehouse::config::Config) {
    cfg.database = test_database(&cfg.data_dir);
    for (setting, value) in test_blobs(&cfg.data_dir).unwrap_or_default() {
        match setting {
            "blobs" => cfg.blobs = Some(value),
            "s3_endpoint" => cfg.s3_endpoint = Some(value),
            "s3_access_key_id" => cfg.s3_access_key_id = Some(value),
            _ => cfg.s3_secret_access_key = Some(value),
        }
    }
}

/// Environment for a `gatehouse` process on `data_dir`: this run's database and blob
/// store (nothing on the embedded run).
pub fn backend_env(data_dir: &Path) -> Vec<(String, String)> {
    let db = test_database(data_dir).map(|url| ("GATEHOUSE_DATABASE".to_owned(), url));
    let blobs = test_blobs(data_dir)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (format!("GATEHOUSE_{}", k.to_uppercase()), v));
    db.into_iter().chain(blobs).collect()
}

/// Open the store on `data_dir` with the database and blob store of this run.
pub async fn open_registry(data_dir: &Path) -> store::Registry {
    let mut cfg = gatehouse::config::Config {
        data_dir: data_dir.to_owned(),
        ..Default::default()
    };
    use_test_backends(&mut cfg);
    let db = gatehouse::app::open_database(&cfg).await.expect("open database");
    gatehouse::app::open_store(&cfg, &db).await.expect("open registry")
}

pub fn http() -> reqwest::Client {
    gatehouse::tls::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn digest(data: &[u8]) -> String {
    Digest::sha256_of(data).to_string()
}

pub fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": digest(data), "size": data.len() })
}

/// A minimal valid image config for the given platform.
pub fn config_blob(arch: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [] },
        "config": {}
    }))
    .expect("json")
}

pub fn image_manifest(config: &[u8], layers: &[&[u8]], extra: Value) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": layers.iter().map(|l| descriptor(OCI_LAYER, l)).collect::<Vec<_>>(),
    });
    if let (Some(obj), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
        obj.extend(extra.clone());
    }
    serde_json::to_vec(&m).expect("json")
}

pub fn index_manifest(children: &[(&[u8], &str)]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|(m, arch)| {
            let mut d = descriptor(OCI_MANIFEST, m);
            d["platform"] = json!({ "architecture": arch, "os": "linux" });
            d
        }).collect::<Vec<_>>(),
    }))
    .expect("json")
}

/// Upload a blob in one request (`POST ?digest=`).
pub async fn push_blob(c: &reqwest::Client, srv: &TestServer, repo: &str, data: &[u8]) -> String {
    let d = digest(data);
    let r = c
        .post(srv.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
        .body(data.to_vec())
        .send()
        .await
        .expect("push blob");
    assert_eq!(r.status(), 201, "blob push: {}", r.text().await.unwrap_or_default());
    d
}

pub async fn put_manifest(
    c: &reqwest::Client,
    srv: &TestServer,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> reqwest::Response {
    c.put(srv.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("content-type", media_type)
        .body(body.to_vec())
        .send()
        .await
        .expect("put manifest")
}

/// Push config + layers + manifest under `tag`; returns the manifest bytes.
pub async fn push_image(c: &reqwest::Client, srv: &TestServer, repo: &str, tag: &str, seed: u64) -> Vec<u8> {
    let config = config_blob("amd64");
    let layer = random_bytes(2048, seed);
    push_blob(c, srv, repo, &config).await;
    push_blob(c, srv, repo, &layer).await;
    let m = image_manifest(&config, &[&layer], json!({}));
    let r = put_manifest(c, srv, repo, tag, OCI_MANIFEST, &m).await;
    assert_eq!(r.status(), 201, "manifest push: {}", r.text().await.unwrap_or_default());
    m
}

/// The first OCI error code of a response body.
pub async fn error_code(r: reqwest::Response) -> String {
    let v: Value = r.json().await.expect("OCI error body is JSON");
    v["errors"][0]["code"].as_str().expect("errors[0].code").to_owned()
}

/// Write an OCI image layout (as `skopeo copy oci:` reads it) holding `blobs` and an
/// `index.json` with one entry per `(manifest, media type, ref name)`.
pub fn write_oci_layout(dir: &Path, blobs: &[&[u8]], entries: &[(&[u8], &str, &str)]) {
    let blob_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blob_dir).expect("mkdir");
    for b in blobs.iter().copied().chain(entries.iter().map(|e| e.0)) {
        std::fs::write(blob_dir.join(&digest(b)[7..]), b).expect("write blob");
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("write layout");
    let index = json!({
        "schemaVersion": 2,
        "manifests": entries.iter().map(|(m, mt, name)| {
            let mut d = descriptor(mt, m);
            d["annotations"] = json!({ "org.opencontainers.image.ref.name": name });
            d
        }).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).expect("json")).expect("write index");
}

/// Read a blob back out of an OCI layout.
pub fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    std::fs::read(dir.join("blobs/sha256").join(hex)).expect("blob in layout")
}

/// Send a request exactly as written (no client-side path normalisation); returns the
/// status code and body.
pub async fn raw_request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Open an upload session in `repo`; returns its `Location`.
pub async fn open_session(c: &reqwest::Client, srv: &TestServer, repo: &str) -> String {
    let r = c
        .post(srv.url(&format!("/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .expect("POST upload");
    assert_eq!(r.status(), 202, "open upload session");
    r.headers()["location"].to_str().expect("Location").to_owned()
}

/// `PATCH` a chunk to an upload session, with `Content-Range: <range>` when given.
pub async fn patch_chunk(c: &reqwest::Client, url: &str, range: Option<&str>, body: &[u8]) -> reqwest::Response {
    let mut req = c.patch(url).body(body.to_vec());
    if let Some(range) = range {
        req = req.header("content-range", range);
    }
    req.send().await.expect("PATCH chunk")
}

/// `GET` a URL and return its body.
pub async fn get_bytes(c: &reqwest::Client, url: &str) -> bytes::Bytes {
    c.get(url).send().await.expect("GET").bytes().await.expect("body")
}

/// `GET` a URL and parse its body as JSON.
pub async fn get_json(c: &reqwest::Client, url: &str) -> Value {
    c.get(url).send().await.expect("GET").json().await.expect("JSON body")
}

/// The status of a `HEAD` request.
pub async fn head_status(c: &reqwest::Client, url: &str) -> u16 {
    c.head(url).send().await.expect("HEAD").status().as_u16()
}

/// A tar archive of `files` (path, bytes), as `podman save` or `skopeo copy oci-archive:` write.
pub fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

/// `data` as an OCI layout's blob file.
pub fn layout_file(data: &[u8]) -> (String, Vec<u8>) {
    (format!("blobs/sha256/{}", &digest(data)[7..]), data.to_vec())
}

/// An OCI archive of one image (config, layers) tagged `tag`.
pub fn oci_archive(config: &[u8], layers: &[&[u8]], tag: &str) -> Vec<u8> {
    let manifest = image_manifest(config, layers, serde_json::json!({}));
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": OCI_MANIFEST, "digest": digest(&manifest), "size": manifest.len(),
                        "annotations": {"org.opencontainers.image.ref.name": tag} }]
    }))
    .unwrap();
    let mut files = vec![("oci-layout".to_owned(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec())];
    files.push(layout_file(config));
    files.extend(layers.iter().map(|l| layout_file(l)));
    files.push(layout_file(&manifest));
    files.push(("index.json".to_owned(), index));
    tar_of(&files)
}
