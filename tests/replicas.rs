//! Several replicas over one PostgreSQL database and one S3 bucket (real PostgreSQL,
//! real S3 server): any replica serves any request, tokens and key rotations work
//! across them, a revocation reaches every replica at once, and the database or bad
//! settings fail clearly.

mod common;

use common::gateway::{ADMIN_PASSWORD, TestGateway, USER_PASSWORD, claims_of, push_image_with};
use common::scale::SharedBackends;
use common::{OCI_MANIFEST, http};
use futures_util::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};

/// One registry deployment over `backends`: its own database and bucket prefix, and the
/// token keys and secrets key its replicas share.
struct Deployment<'a> {
    backends: &'a SharedBackends,
    database: String,
    shared: tempfile::TempDir,
}

impl<'a> Deployment<'a> {
    fn new(backends: &'a SharedBackends) -> Self {
        Self {
            backends,
            database: backends.database(),
            shared: tempfile::tempdir().unwrap(),
        }
    }

    async fn replica(&self) -> TestGateway {
        self.replica_with(|_| {}).await
    }

    async fn replica_with(&self, adjust: impl FnOnce(&mut gatehouse::config::Config)) -> TestGateway {
        TestGateway::start_with(false, |cfg| {
            self.backends.replica(cfg, &self.database, self.shared.path());
            adjust(cfg);
        })
        .await
    }
}

/// The digest of an image manifest's first layer.
fn first_layer(manifest: &[u8]) -> String {
    let m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    m["layers"][0]["digest"].as_str().unwrap().to_owned()
}

/// The org `acme` with `dev` as pusher; dev's pull and push token for acme/web/app.
async fn acme_with_pusher(gw: &TestGateway) -> String {
    gw.create_org("acme").await;
    gw.create_member("dev", "acme", "pusher", None).await;
    gw.token(Some(("dev", USER_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await
}

async fn manifest_status(gw: &TestGateway, token: &str, reference: &str) -> (u16, Vec<u8>) {
    let r = http()
        .get(gw.url(&format!("/v2/acme/web/app/manifests/{reference}")))
        .header("accept", OCI_MANIFEST)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

/// Poll `check` until it holds, for at most `limit`; whether it came to hold.
async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check().await
}

#[tokio::test]
async fn two_replicas_serve_one_registry() {
    let backends = SharedBackends::start();
    let deployment = Deployment::new(&backends);
    let a = deployment.replica().await;
    let b = deployment.replica().await;

    // Made on A, known to B.
    let token_a = acme_with_pusher(&a).await;

    // A token from A pushes through B; what B stored, A serves.
    let (status, manifest) = push_image_with(&b, &token_a, "acme/web/app", "1.0", 7).await;
    assert_eq!(status, 201);
    let token_b = b
        .token(Some(("dev", USER_PASSWORD)), &["repository:acme/web/app:pull"])
        .await;
    assert_eq!(manifest_status(&a, &token_b, "1.0").await, (200, manifest.clone()));
    let layer = first_layer(&manifest);
    let layer = layer.as_str();
    let blob = http()
        .get(a.url(&format!("/v2/acme/web/app/blobs/{layer}")))
        .bearer_auth(&token_b)
        .send()
        .await
        .unwrap();
    assert_eq!(blob.status(), 200);
    assert_eq!(common::digest(&blob.bytes().await.unwrap()), layer);

    // The post-push copy ran once, whichever replica's job runner took it.
    let versions = a
        .admin("GET", "/api/v1/repositories/acme/web/app/versions", json!(null))
        .await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1, "{versions}");

    // A pull secret made on A logs in on B; revoked on A, B refuses it within a second.
    let (user, secret, _) = a.create_pull_secret("acme", json!({"name": "ci"})).await;
    let secret_token = b.token(Some((&user, &secret)), &["repository:acme/web/app:pull"]).await;
    assert_eq!(manifest_status(&b, &secret_token, "1.0").await.0, 200);
    let (status, _) = a
        .api(
            "DELETE",
            "/api/v1/orgs/acme/pull-secrets/ci",
            ("admin", ADMIN_PASSWORD),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(
        within(Duration::from_secs(1), async || manifest_status(
            &b,
            &secret_token,
            "1.0"
        )
        .await
        .0 == 401)
        .await,
        "replica B still honours a pull secret revoked on A"
    );
    assert_eq!(b.token_request(Some((&user, &secret)), &[]).await.0, 401);

    // A rotates the shared signing key: B accepts A's new tokens at once.
    let old_kid = claims_kid(&token_a);
    let mut keys = gatehouse::gateway::token::Keyring::load_or_create(&deployment.shared.path().join("keys")).unwrap();
    keys.rotate().unwrap();
    a.gateway.reload().unwrap();
    let rotated = a
        .token(Some(("dev", USER_PASSWORD)), &["repository:acme/web/app:pull"])
        .await;
    assert_ne!(claims_kid(&rotated), old_kid);
    assert_eq!(manifest_status(&b, &rotated, "1.0").await.0, 200);
    assert_eq!(
        manifest_status(&b, &token_a, "1.0").await.0,
        200,
        "tokens of the old key stay valid"
    );
    let _ = claims_of(&rotated);
}

#[tokio::test]
async fn an_upload_started_on_one_replica_completes_on_another() {
    let backends = SharedBackends::start();
    let deployment = Deployment::new(&backends);
    let a = deployment.replica().await;
    let b = deployment.replica().await;
    let token = acme_with_pusher(&a).await;
    let c = http();
    // 9 MiB (a multipart chunk), then 1 MiB, then the last 512 KiB with the PUT.
    let data = common::random_bytes((10 << 20) + (512 << 10), 21);
    let d = common::digest(&data);
    let r = c
        .post(a.url("/v2/acme/web/app/blobs/uploads/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let patch = async |gw: &TestGateway, from: usize, to: usize| {
        c.patch(gw.url(&loc))
            .bearer_auth(&token)
            .header("content-range", format!("{from}-{}", to - 1))
            .body(data[from..to].to_vec())
            .send()
            .await
            .unwrap()
    };
    let r = patch(&a, 0, 9 << 20).await;
    assert_eq!(r.status(), 202);
    let r = patch(&b, 9 << 20, 10 << 20).await;
    assert_eq!(r.status(), 202, "replica B continues A's session");
    let status = c.get(a.url(&loc)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(status.headers()["range"], format!("0-{}", (10 << 20) - 1).as_str());
    // A chunk that does not continue where the session stands is refused on either.
    let r = patch(&a, 0, 1024).await;
    assert_eq!(r.status(), 416);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c
        .put(b.url(&format!("{loc}{sep}digest={d}")))
        .bearer_auth(&token)
        .body(data[10 << 20..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let got = c
        .get(a.url(&format!("/v2/acme/web/app/blobs/{d}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(common::digest(&got.bytes().await.unwrap()), d);

    // A session whose bytes do not match the digest it claims is refused, from another
    // replica than the one that received the bytes, and leaves nothing.
    let r = c
        .post(a.url("/v2/acme/web/app/blobs/uploads/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let r = c
        .patch(a.url(&loc))
        .bearer_auth(&token)
        .body(b"not what the digest says".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let claimed = common::digest(b"something else");
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c
        .put(b.url(&format!("{loc}{sep}digest={claimed}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(common::error_code(r).await, "DIGEST_INVALID");
    let store = a.registry.as_ref().unwrap().shared_staging().unwrap().clone();
    assert!(
        store.staged_sessions().await.unwrap().is_empty(),
        "no chunk left behind"
    );
    let r = c
        .head(a.url(&format!("/v2/acme/web/app/blobs/{claimed}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn blob_redirect_answers_with_a_presigned_url_that_serves_the_blob() {
    let backends = SharedBackends::start();
    let gw = Deployment::new(&backends)
        .replica_with(|cfg| cfg.blob_redirect = "1m".into())
        .await;
    let token = acme_with_pusher(&gw).await;
    let (status, manifest) = push_image_with(&gw, &token, "acme/web/app", "1.0", 9).await;
    assert_eq!(status, 201);
    let layer = first_layer(&manifest);
    let layer = layer.as_str();
    let c = http(); // follows no redirects
    let r = c
        .get(gw.url(&format!("/v2/acme/web/app/blobs/{layer}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    assert_eq!(r.headers()["docker-content-digest"], layer);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&backends.s3), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    // The URL works without any credential of ours, as a client following it would.
    let direct = c.get(&location).send().await.unwrap();
    assert_eq!(direct.status(), 200);
    assert_eq!(common::digest(&direct.bytes().await.unwrap()), layer);
    // HEAD is still answered here; without a token there is no redirect at all.
    let r = c
        .head(gw.url(&format!("/v2/acme/web/app/blobs/{layer}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(gw.url(&format!("/v2/acme/web/app/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// The `kid` in a JWT's header.
fn claims_kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_database_outage_answers_503_and_heals() {
    let backends = SharedBackends::private();
    let gw = Deployment::new(&backends)
        .replica_with(|cfg| cfg.database_acquire_timeout = "2s".into())
        .await;
    let token = acme_with_pusher(&gw).await;
    let (status, manifest) = push_image_with(&gw, &token, "acme/web/app", "1.0", 3).await;
    assert_eq!(status, 201);

    backends.stop_database();
    let started = Instant::now();
    let r = http()
        .get(gw.url("/v2/acme/web/app/manifests/1.0"))
        .header("accept", OCI_MANIFEST)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered within the timeouts"
    );
    assert_eq!(r.headers()["retry-after"], "1");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{body}");
    assert!(
        body["errors"][0]["message"].as_str().unwrap().contains("database"),
        "{body}"
    );
    let (status, _) = push_image_with(&gw, &token, "acme/web/app", "2.0", 4).await;
    assert_eq!(status, 503, "a push during the outage fails cleanly");

    backends.restart_database();
    assert!(
        within(Duration::from_secs(15), async || manifest_status(&gw, &token, "1.0")
            .await
            == (200, manifest.clone()))
        .await,
        "reads recover by themselves"
    );
    let (status, _) = push_image_with(&gw, &token, "acme/web/app", "2.0", 4).await;
    assert_eq!(status, 201, "pushes recover by themselves");
}

#[tokio::test]
async fn an_object_store_outage_fails_pushes_cleanly_and_heals() {
    let backends = SharedBackends::private();
    let deployment = Deployment::new(&backends);
    let gw = deployment.replica().await;
    let token = acme_with_pusher(&gw).await;
    let (status, manifest) = push_image_with(&gw, &token, "acme/web/app", "1.0", 5).await;
    assert_eq!(status, 201);
    let layer = first_layer(&manifest);
    let blob_status = async || {
        http()
            .get(gw.url(&format!("/v2/acme/web/app/blobs/{layer}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };

    backends.stop_s3();
    let started = Instant::now();
    let r = http()
        .get(gw.url(&format!("/v2/acme/web/app/blobs/{layer}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "answered within the retry budget"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{body}");
    // Metadata still answers: the manifest is served from the database.
    assert_eq!(manifest_status(&gw, &token, "1.0").await.0, 200);
    // A push fails cleanly and leaves nothing visible.
    let (status, _) = push_image_with(&gw, &token, "acme/web/app", "2.0", 6).await;
    assert_eq!(status, 503);
    assert_eq!(manifest_status(&gw, &token, "2.0").await.0, 404);
    let new_layer = common::digest(&common::random_bytes(2048, 6));
    let r = http()
        .head(gw.url(&format!("/v2/acme/web/app/blobs/{new_layer}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no half-pushed blob is visible");

    backends.restart_s3();
    assert!(
        within(Duration::from_secs(15), async || blob_status().await == 200).await,
        "pulls recover by themselves"
    );
    let (status, _) = push_image_with(&gw, &token, "acme/web/app", "2.0", 6).await;
    assert_eq!(status, 201, "pushes recover by themselves");
}

/// A replica as a process of its own (`gatehouse serve`), so that it can be killed.
struct ReplicaProcess {
    child: std::process::Child,
    addr: String,
}

impl ReplicaProcess {
    fn start(deployment: &Deployment<'_>, data: &std::path::Path) -> Self {
        Self::start_with_env(deployment, data, &[])
    }

    fn start_with_env(deployment: &Deployment<'_>, data: &std::path::Path, env: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["serve", "--insecure-http", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env("GATEHOUSE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("GATEHOUSE_POLICY_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
            .envs(
                deployment
                    .backends
                    .replica_env(&deployment.database, deployment.shared.path()),
            )
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start gatehouse");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listen=").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(60)).expect("server address");
        Self { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Freeze (SIGSTOP) or thaw (SIGCONT) the process: a frozen replica claims nothing.
    fn signal(&self, signal: libc::c_int) {
        // SAFETY: signalling a child process this test started and still owns.
        let r = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(r, 0);
    }

    fn kill9(&mut self) {
        // SAFETY: signalling a child process this test started and still owns.
        let r = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGKILL) };
        assert_eq!(r, 0);
        let _ = self.child.wait();
    }
}

impl Drop for ReplicaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_replica_killed_mid_push_leaves_the_push_to_the_other() {
    let backends = SharedBackends::start();
    let deployment = Deployment::new(&backends);
    let data = tempfile::tempdir().unwrap();
    let mut a = ReplicaProcess::start(&deployment, &data.path().join("a"));
    let b = ReplicaProcess::start(&deployment, &data.path().join("b"));
    let c = http();
    let admin =
        |url: String, body: serde_json::Value| c.post(url).basic_auth("admin", Some(ADMIN_PASSWORD)).json(&body).send();
    assert!(
        admin(a.url("/api/v1/orgs"), json!({"label": "acme"}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let token_of = async |r: &ReplicaProcess| {
        let v: serde_json::Value = c
            .get(r.url("/v2/token?service=gatehouse&scope=repository:acme/web/app:pull,push"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["token"].as_str().unwrap().to_owned()
    };
    let token = token_of(&a).await;

    // 256 MiB in 16 MiB chunks: 128 MiB reach A, then A dies in the middle of a chunk.
    const CHUNK: usize = 16 << 20;
    let data = common::random_bytes(256 << 20, 31);
    let d = common::digest(&data);
    let r = c
        .post(a.url("/v2/acme/web/app/blobs/uploads/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    for start in (0..128 << 20).step_by(CHUNK) {
        let r = c
            .patch(a.url(&loc))
            .bearer_auth(&token)
            .header("content-range", format!("{start}-{}", start + CHUNK - 1))
            .body(data[start..start + CHUNK].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let (stall_tx, stall_rx) = tokio::sync::oneshot::channel::<()>();
    let half = bytes::Bytes::copy_from_slice(&data[128 << 20..(128 << 20) + (CHUNK / 2)]);
    let body =
        futures_util::stream::iter([Ok::<_, std::io::Error>(half)]).chain(futures_util::stream::once(async move {
            let _ = stall_rx.await;
            Err(std::io::Error::other("never sent"))
        }));
    let cut = tokio::spawn({
        let c = c.clone();
        let (url, token) = (a.url(&loc), token.clone());
        async move {
            c.patch(url)
                .bearer_auth(token)
                .header("content-range", format!("{}-{}", 128 << 20, (128 << 20) + CHUNK - 1))
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.kill9();
    assert!(
        cut.await.unwrap().is_err(),
        "the chunk in flight fails with its replica"
    );
    drop(stall_tx);

    // Nothing of it is visible, and B knows how far the session got: whole chunks only.
    let r = c
        .head(b.url(&format!("/v2/acme/web/app/blobs/{d}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = c.get(b.url(&loc)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"], format!("0-{}", (128 << 20) - 1).as_str());

    // The client carries on against B (A's token is B's too) and completes the push.
    for start in (128 << 20..256 << 20).step_by(CHUNK) {
        let r = c
            .patch(b.url(&loc))
            .bearer_auth(&token)
            .header("content-range", format!("{start}-{}", start + CHUNK - 1))
            .body(data[start..start + CHUNK].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c
        .put(b.url(&format!("{loc}{sep}digest={d}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let config = common::config_blob("amd64");
    let cd = common::digest(&config);
    let r = c
        .post(b.url(&format!("/v2/acme/web/app/blobs/uploads/?digest={cd}")))
        .bearer_auth(&token)
        .body(config.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": common::OCI_CONFIG, "digest": cd, "size": config.len()},
        "layers": [{"mediaType": common::OCI_LAYER, "digest": d, "size": data.len()}],
    })
    .to_string();
    let r = c
        .put(b.url("/v2/acme/web/app/manifests/1.0"))
        .bearer_auth(&token)
        .header("content-type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // The blob reads back whole; the post-push copy made exactly one version.
    let got = c
        .get(b.url(&format!("/v2/acme/web/app/blobs/{d}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(common::digest(&got.bytes().await.unwrap()), d);
    let versions: serde_json::Value = c
        .get(b.url("/api/v1/repositories/acme/web/app/versions"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1, "{versions}");
}

/// `gatehouse serve` with `args`: its exit status and what it printed on stderr.
fn serve_fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--insecure-http", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .envs(env.iter().copied())
        .env("GATEHOUSE_DATABASE_ACQUIRE_TIMEOUT", "3s")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} started");
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

#[tokio::test]
async fn bad_settings_are_refused_at_start_naming_the_setting() {
    let backends = SharedBackends::start();
    let unreachable = serve_fails(&["--database", "postgres://gatehouse:pw@127.0.0.1:1/gatehouse"], &[]);
    assert!(unreachable.starts_with("gatehouse: setting database"), "{unreachable}");
    assert!(
        !unreachable.contains("pw@"),
        "the password is never printed: {unreachable}"
    );
    assert_eq!(unreachable.lines().count(), 1, "{unreachable}");
    let no_db = serve_fails(&["--database", &format!("{}/no_such_database", backends.pg)], &[]);
    assert!(
        no_db.contains("setting database") && no_db.contains("no_such_database"),
        "{no_db}"
    );

    let s3 = |key: &'static str| {
        [
            ("GATEHOUSE_S3_ACCESS_KEY_ID", "gatehouse-test"),
            ("GATEHOUSE_S3_SECRET_ACCESS_KEY", key),
        ]
    };
    let endpoint = backends.s3.clone();
    let args = |bucket: &str| {
        vec![
            "--blobs".to_owned(),
            format!("s3://{bucket}/p"),
            "--s3-endpoint".to_owned(),
            endpoint.clone(),
        ]
    };
    let missing = serve_fails(
        &args("no-such-bucket").iter().map(String::as_str).collect::<Vec<_>>(),
        &s3("gatehouse-test-secret"),
    );
    assert!(missing.contains("setting blobs"), "{missing}");
    let wrong_key = serve_fails(
        &args("gatehouse").iter().map(String::as_str).collect::<Vec<_>>(),
        &s3("NotTheSecret42"),
    );
    assert!(wrong_key.contains("setting s3_access_key_id"), "{wrong_key}");
    assert!(
        !wrong_key.contains("NotTheSecret42"),
        "the secret key is never printed: {wrong_key}"
    );
    let nowhere = serve_fails(
        &["--blobs", "s3://gatehouse/p", "--s3-endpoint", "http://127.0.0.1:1"],
        &s3("gatehouse-test-secret"),
    );
    assert!(nowhere.contains("setting s3_endpoint"), "{nowhere}");
    let keyless = serve_fails(&["--blobs", "s3://gatehouse/p", "--s3-endpoint", &backends.s3], &[]);
    assert!(keyless.contains("setting s3_access_key_id"), "{keyless}");
    let bad_url = serve_fails(&["--blobs", "gs://x"], &[]);
    assert!(bad_url.contains("blobs"), "{bad_url}");
}

/// Jobs run exactly once across replicas: replica A claims a remote sync and dies
/// (`kill -9`-like abort after fetching every blob, before the version); replica B,
/// running all along, takes the job over once A's lease lapses and completes it
/// without fetching the blobs again. One version, one job, nothing partial meanwhile.
#[tokio::test]
async fn a_sync_claimed_by_a_replica_that_dies_is_completed_once_by_the_other() {
    let backends = SharedBackends::start();
    let deployment = Deployment::new(&backends);
    let dist = common::distribution::start_distribution();
    let layers = vec![common::random_bytes(300_000, 31), common::random_bytes(200_000, 32)];
    let manifest = common::distribution::push_plain(&dist.base, "library/app", "1.0", &layers).await;
    let data = tempfile::tempdir().unwrap();
    let mut a = ReplicaProcess::start_with_env(
        &deployment,
        &data.path().join("a"),
        &[("GATEHOUSE_FAULT", "sync_before_version")],
    );
    let b = ReplicaProcess::start(&deployment, &data.path().join("b"));
    let c = http();
    let api = async |r: &ReplicaProcess, method: &str, path: &str, body: serde_json::Value| {
        let resp = c
            .request(method.parse().unwrap(), r.url(path))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<serde_json::Value>().await.unwrap_or_default())
    };
    for (path, body) in [
        ("/api/v1/orgs", json!({"label": "acme"})),
        ("/api/v1/orgs/acme/products", json!({"label": "base"})),
        (
            "/api/v1/orgs/acme/products/base/remotes",
            json!({"name": "app", "url": dist.base, "upstream_name": "library/app"}),
        ),
    ] {
        let (status, v) = api(&a, "POST", path, body).await;
        assert_eq!(status, 201, "{path}: {v}");
    }

    // B is frozen while the sync is queued, so A's runner is the one that claims it.
    b.signal(libc::SIGSTOP);
    let (status, v) = api(
        &a,
        "POST",
        "/api/v1/orgs/acme/products/base/remotes/app/sync",
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let job = v["job"].as_i64().unwrap();
    let exit = a.child.wait().unwrap();
    assert!(!exit.success(), "A aborted inside the sync it claimed");
    b.signal(libc::SIGCONT);

    let (_, versions) = api(&b, "GET", "/api/v1/repositories/acme/base/app/versions", json!(null)).await;
    assert_eq!(
        versions["versions"].as_array().map(Vec::len),
        Some(0),
        "nothing partial: {versions}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let (_, j) = api(&b, "GET", &format!("/api/v1/jobs/{job}"), json!(null)).await;
        if j["state"] == "done" {
            break j;
        }
        assert!(Instant::now() < deadline, "B did not take the sync over: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["attempts"], 2, "claimed by A, then once by B: {done}");
    assert_eq!(done["progress"]["outcome"]["version"], 1, "{done}");
    assert_eq!(
        done["progress"]["outcome"]["blobs_fetched"], 0,
        "the blobs A fetched into the shared store are kept: {done}"
    );

    // A comes back (without the fault): the done job is not run again.
    let a = ReplicaProcess::start(&deployment, &data.path().join("a"));
    let (_, jobs) = api(&a, "GET", "/api/v1/jobs", json!(null)).await;
    let syncs: Vec<_> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "sync_remote")
        .collect();
    assert_eq!(syncs.len(), 1, "{jobs}");
    let (_, versions) = api(&a, "GET", "/api/v1/repositories/acme/base/app/versions", json!(null)).await;
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(1), "{versions}");
    let token: serde_json::Value = c
        .get(a.url("/v2/token?service=gatehouse&scope=repository:acme/base/app:pull"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let got = c
        .get(a.url("/v2/acme/base/app/manifests/1.0"))
        .header("accept", OCI_MANIFEST)
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), manifest.as_slice());
}
