//! A main server and an edge site as two real processes over TLS on loopback, with
//! podman and Debian's docker-registry: a push to the main server is pulled from the
//! edge (same digests) with a pull secret; pulls go on while the main server is down;
//! a revoked secret stops working at the edge; a push through the edge lands on the
//! main server and comes back; a remote synced on the main server reaches the edge.

mod common;

use common::clients::Podman;
use common::distribution::{push_plain, start_distribution};
use common::random_bytes;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSWORD: &str = "edge-test-admin-password";

struct Proc {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A failing test shows what each server said.
        if std::thread::panicking() {
            for line in self.log.lock().unwrap().iter() {
                eprintln!("[{}] {line}", self.port);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn host(&self) -> String {
        format!("localhost:{}", self.port)
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

/// Start the binary with `args`; waits for its listen address.
fn spawn(args: &[&str], data: &Path, certs: &Path) -> Proc {
    spawn_with_env(args, data, certs, common::backend_env(data))
}

fn spawn_with_env(args: &[&str], data: &Path, certs: &Path, env: Vec<(String, String)>) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .envs(env)
        .arg("--tls-dir")
        .arg(certs)
        .env("GATEHOUSE_ADMIN_PASSWORD", PASSWORD)
        .env("GATEHOUSE_POLICY_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
        .env("GATEHOUSE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start gatehouse");
    let stdout = child.stdout.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listen=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
            }
            lines.lock().unwrap().push(line);
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("server address");
    let port = addr.rsplit(':').next().unwrap().parse().unwrap();
    Proc { child, port, log }
}

fn start_main(data: &Path, certs: &Path, port: u16) -> Proc {
    spawn(&["serve", "--listen", &format!("127.0.0.1:{port}")], data, certs)
}

fn start_edge(data: &Path, certs: &Path, upstream: &str, credential: &Path) -> Proc {
    spawn(
        &[
            "edge",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            upstream,
            "--name",
            "edge1",
            "--credential-file",
            credential.to_str().unwrap(),
        ],
        data,
        certs,
    )
}

fn client(certs: &Path) -> reqwest::Client {
    gatehouse::tls::install_crypto_provider();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs.join("ca.crt")).unwrap()).unwrap();
    reqwest::Client::builder().tls_certs_merge([ca]).build().unwrap()
}

async fn api(c: &reqwest::Client, method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = c
        .request(method.parse().unwrap(), url)
        .basic_auth("admin", Some(PASSWORD));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("api");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A token from `p`'s token service for `scope`.
async fn token(c: &reqwest::Client, p: &Proc, user: &str, pass: &str, scope: &str) -> Result<String, u16> {
    let r = c
        .get(p.url(&format!("/v2/token?service=gatehouse&scope={scope}")))
        .basic_auth(user, Some(pass))
        .send()
        .await
        .expect("token");
    if !r.status().is_success() {
        return Err(r.status().as_u16());
    }
    let v: Value = r.json().await.unwrap();
    Ok(v["token"].as_str().unwrap().to_owned())
}

/// (status, digest) of a manifest GET.
async fn manifest(c: &reqwest::Client, p: &Proc, token: &str, repo: &str, tag: &str) -> (u16, Option<String>) {
    let r = c
        .get(p.url(&format!("/v2/{repo}/manifests/{tag}")))
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        )
        .bearer_auth(token)
        .send()
        .await
        .expect("manifest");
    let digest = r
        .headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), digest)
}

/// Poll `check` until it holds (a sync or a refresh is asynchronous by design).
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Topology {
    dir: tempfile::TempDir,
    main: Proc,
    edge: Proc,
    c: reqwest::Client,
    secret_user: String,
    secret: String,
    cert_dir: PathBuf,
}

/// A CA and a server certificate for localhost in `certs`.
fn make_certs(certs: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args([
            "certs",
            "init",
            "--dir",
            certs.to_str().unwrap(),
            "--host",
            "localhost",
            "--host",
            "127.0.0.1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The organisation acme with `products`, a pull secret `edge-puller`, and the edge
/// site edge1 registered on the main server at `main` (its base URL) and started
/// against it. Returns the edge and the pull secret as created.
async fn acme_with_edge(c: &reqwest::Client, main: &str, dir: &Path, certs: &Path, products: &[&str]) -> (Proc, Value) {
    let (s, v) = api(
        c,
        "POST",
        &format!("{main}/api/v1/orgs"),
        Some(json!({"label": "acme"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    for product in products {
        let (s, v) = api(
            c,
            "POST",
            &format!("{main}/api/v1/orgs/acme/products"),
            Some(json!({"label": product})),
        )
        .await;
        assert_eq!(s, 201, "{product}: {v}");
    }
    let (s, ps) = api(
        c,
        "POST",
        &format!("{main}/api/v1/orgs/acme/pull-secrets"),
        Some(json!({"name": "edge-puller"})),
    )
    .await;
    assert_eq!(s, 201, "{ps}");
    // Registered before the edge runs (its URL is known once it listens).
    let (s, reg) = api(
        c,
        "POST",
        &format!("{main}/api/v1/smart-proxies"),
        Some(json!({"name": "edge1", "url": "https://localhost:1", "orgs": ["acme"]})),
    )
    .await;
    assert_eq!(s, 201, "{reg}");
    let credential = dir.join("edge1.cred");
    std::fs::write(&credential, reg["credential"]["secret"].as_str().unwrap()).unwrap();
    let (s, listed) = api(c, "GET", &format!("{main}/api/v1/smart-proxies/edge1"), None).await;
    assert_eq!(s, 200);
    assert!(listed.get("credential").is_none(), "the secret is shown once: {listed}");

    let edge = start_edge(&dir.join("edge"), certs, main, &credential);
    let (s, v) = api(
        c,
        "PATCH",
        &format!("{main}/api/v1/smart-proxies/edge1"),
        Some(json!({"url": edge.url("")})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    (edge, ps)
}

/// A certs.d-style directory holding the development CA, for podman's --cert-dir.
fn podman_cert_dir(dir: &Path, certs: &Path) -> PathBuf {
    let cert_dir = dir.join("podman-certs");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(certs.join("ca.crt"), cert_dir.join("ca.crt")).unwrap();
    cert_dir
}

async fn topology() -> Topology {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    make_certs(&certs);
    let main = start_main(&dir.path().join("main"), &certs, 0);
    let c = client(&certs);
    let (edge, ps) = acme_with_edge(&c, &main.url(""), dir.path(), &certs, &["web", "base"]).await;
    let cert_dir = podman_cert_dir(dir.path(), &certs);
    Topology {
        main,
        edge,
        c,
        secret_user: ps["username"].as_str().unwrap().to_owned(),
        secret: ps["secret"].as_str().unwrap().to_owned(),
        cert_dir,
        dir,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn push_to_main_pull_from_edge_through_outage_revocation_and_push_via_edge() {
    let t = topology().await;
    let (main_host, edge_host) = (t.main.host(), t.edge.host());
    let cd = t.cert_dir.to_str().unwrap().to_owned();

    // podman push to the main server.
    let pusher = Podman::new();
    pusher.import_files("localhost/app:2.0", &[("etc/release", b"edge test two")]);
    pusher.run(&["login", "--cert-dir", &cd, "-u", "admin", "-p", PASSWORD, &main_host]);
    pusher.run(&[
        "push",
        "--cert-dir",
        &cd,
        "localhost/app:2.0",
        &format!("{main_host}/acme/web/app:2.0"),
    ]);

    // The edge has it within seconds, same digest, for a pull secret.
    let at_main = token(&t.c, &t.main, &t.secret_user, &t.secret, "repository:acme/web/app:pull")
        .await
        .unwrap();
    let (_, main_digest) = manifest(&t.c, &t.main, &at_main, "acme/web/app", "2.0").await;
    let edge_token = token(&t.c, &t.edge, &t.secret_user, &t.secret, "repository:acme/web/app:pull")
        .await
        .unwrap();
    eventually("the pushed tag reaches the edge", Duration::from_secs(30), || async {
        manifest(&t.c, &t.edge, &edge_token, "acme/web/app", "2.0").await == (200, main_digest.clone())
    })
    .await;
    let puller = Podman::new();
    puller.run(&[
        "login",
        "--cert-dir",
        &cd,
        "-u",
        &t.secret_user,
        "-p",
        &t.secret,
        &edge_host,
    ]);
    puller.run(&["pull", "--cert-dir", &cd, &format!("{edge_host}/acme/web/app:2.0")]);
    // A signature added on the main server later reaches the edge, like a push.
    let digest = main_digest.clone().unwrap();
    let signer = token(&t.c, &t.main, "admin", PASSWORD, "repository:acme/web/app:pull,push")
        .await
        .unwrap();
    let signature = json!({"schemaVersion": 2, "type": "atomic", "name": format!("{digest}@{}", "5".repeat(32)),
                           "content": "c2lnbmF0dXJlIGJ5dGVz"});
    let r =
        t.c.put(t.main.url(&format!("/extensions/v2/acme/web/app/signatures/{digest}")))
            .bearer_auth(&signer)
            .json(&signature)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 201);
    eventually("the signature reaches the edge", Duration::from_secs(30), || async {
        let r =
            t.c.get(t.edge.url(&format!("/extensions/v2/acme/web/app/signatures/{digest}")))
                .bearer_auth(&edge_token)
                .send()
                .await
                .unwrap();
        r.headers().get("x-registry-supports-signatures").is_some()
            && r.json::<Value>().await.unwrap() == json!({"signatures": [signature.clone()]})
    })
    .await;

    // The main server knows the edge caught up.
    eventually("the edge reports its sync", Duration::from_secs(30), || async {
        let (_, v) = api(&t.c, "GET", &t.main.url("/api/v1/smart-proxies/edge1"), None).await;
        v["last_sync_at"].is_number()
            && v["behind_by_events"] == 0
            && v["behind_by_seconds"] == 0
            && v["last_error"].is_null()
    })
    .await;
    // The edge is ready (it has synced), and its metrics show how it was pulled from.
    let r = t.c.get(t.edge.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ready: Value = r.json().await.unwrap();
    assert_eq!(ready["checks"]["edge_sync"]["ok"], true, "{ready}");
    assert!(
        ready["checks"]["edge_sync"]["last_sync_age_seconds"].is_number(),
        "{ready}"
    );
    let r =
        t.c.get(t.edge.url("/metrics"))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("gatehouse_manifest_pulls_total{org=\"acme\"}"), "{text}");
    assert!(
        text.contains("gatehouse_job_duration_seconds_count{kind=\"edge_sync\"}"),
        "{text}"
    );

    // A token obtained at the edge now, to be used after the revocation below.
    let held = token(&t.c, &t.edge, &t.secret_user, &t.secret, "repository:acme/web/app:pull")
        .await
        .unwrap();

    // The main server goes away: pulls from the edge go on, new logins included.
    let main_port = t.main.port;
    let main_dir = t.dir.path().join("main");
    drop(t.main);
    let offline = Podman::new();
    offline.run(&[
        "login",
        "--cert-dir",
        &cd,
        "-u",
        &t.secret_user,
        "-p",
        &t.secret,
        &edge_host,
    ]);
    offline.run(&["pull", "--cert-dir", &cd, &format!("{edge_host}/acme/web/app:2.0")]);
    // A push needs the main server: refused, nothing kept at the edge.
    let refused = pusher.try_run(&[
        "push",
        "--cert-dir",
        &cd,
        "localhost/app:2.0",
        &format!("{edge_host}/acme/web/app:offline"),
    ]);
    assert!(!refused.status.success());

    // Back up; the secret is revoked there: within seconds the edge refuses it.
    let main = start_main(&main_dir, &t.dir.path().join("certs"), main_port);
    let (s, v) = api(
        &t.c,
        "DELETE",
        &main.url("/api/v1/orgs/acme/pull-secrets/edge-puller"),
        None,
    )
    .await;
    assert_eq!(s, 204, "{v}");
    let revoked_at = Instant::now();
    eventually(
        "the revoked secret stops working at the edge",
        Duration::from_secs(30),
        || async { manifest(&t.c, &t.edge, &held, "acme/web/app", "2.0").await.0 == 401 },
    )
    .await;
    assert!(revoked_at.elapsed() < Duration::from_secs(30));
    assert_eq!(
        token(&t.c, &t.edge, &t.secret_user, &t.secret, "repository:acme/web/app:pull").await,
        Err(401)
    );

    // A push through the edge lands on the main server, then comes back to the edge.
    pusher.run(&["login", "--cert-dir", &cd, "-u", "admin", "-p", PASSWORD, &edge_host]);
    pusher.import_files("localhost/app:3.0", &[("etc/release", b"pushed through the edge")]);
    pusher.run(&[
        "push",
        "--cert-dir",
        &cd,
        "localhost/app:3.0",
        &format!("{edge_host}/acme/web/app:3.0"),
    ]);
    let admin_main = token(&t.c, &main, "admin", PASSWORD, "repository:acme/web/app:pull")
        .await
        .unwrap();
    let (s, digest) = manifest(&t.c, &main, &admin_main, "acme/web/app", "3.0").await;
    assert_eq!(s, 200, "the push reached the main server");
    let admin_edge = token(&t.c, &t.edge, "admin", PASSWORD, "repository:acme/web/app:pull")
        .await
        .unwrap();
    eventually("the edge-pushed tag syncs back", Duration::from_secs(30), || async {
        manifest(&t.c, &t.edge, &admin_edge, "acme/web/app", "3.0").await == (200, digest.clone())
    })
    .await;

    // Deletes propagate too: the manifest deleted on the main server goes from the edge.
    let delete_token = token(&t.c, &main, "admin", PASSWORD, "repository:acme/web/app:pull,delete")
        .await
        .unwrap();
    let r =
        t.c.delete(main.url(&format!("/v2/acme/web/app/manifests/{}", digest.clone().unwrap())))
            .bearer_auth(&delete_token)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 202);
    eventually("the delete reaches the edge", Duration::from_secs(30), || async {
        manifest(&t.c, &t.edge, &admin_edge, "acme/web/app", "3.0").await.0 == 404
    })
    .await;
    assert_eq!(manifest(&t.c, &t.edge, &admin_edge, "acme/web/app", "2.0").await.0, 200);

    // The product comes to require a signature by the org's key: the edge, which gets
    // the public key with the authorization data, refuses 2.0 until it is signed on the
    // main server, then serves it.
    let (s, v) = api(
        &t.c,
        "POST",
        &main.url("/api/v1/orgs/acme/signing-keys"),
        Some(json!({"name": "release"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = api(
        &t.c,
        "PATCH",
        &main.url("/api/v1/orgs/acme/products/web"),
        Some(json!({"require_signed_by": ["release"]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    eventually("the edge enforces the requirement", Duration::from_secs(30), || async {
        manifest(&t.c, &t.edge, &admin_edge, "acme/web/app", "2.0").await.0 == 403
    })
    .await;
    let (s, v) = api(
        &t.c,
        "POST",
        &main.url("/api/v1/repositories/acme/web/app/sign"),
        Some(json!({"tags": ["2.0"], "key": "release", "registry": edge_host})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    eventually(
        "the signed tag is served at the edge",
        Duration::from_secs(30),
        || async { manifest(&t.c, &t.edge, &admin_edge, "acme/web/app", "2.0").await.0 == 200 },
    )
    .await;

    // The whole repository is deleted on the main server: it goes from the edge too.
    let (s, v) = api(&t.c, "DELETE", &main.url("/api/v1/repositories/acme/web/app"), None).await;
    assert_eq!(s, 200, "{v}");
    eventually(
        "the deleted repository goes from the edge",
        Duration::from_secs(30),
        || async { manifest(&t.c, &t.edge, &admin_edge, "acme/web/app", "2.0").await.0 == 404 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_synced_on_main_reaches_the_edge_and_a_bad_credential_is_logged() {
    let t = topology().await;
    let dist = start_distribution();
    let layers = vec![random_bytes(5000, 1), random_bytes(7000, 2)];
    push_plain(&dist.base, "library/alpine", "3.19", &layers).await;
    push_plain(&dist.base, "library/alpine", "3.20-rc1", &layers[..1]).await;
    let (s, v) = api(
        &t.c,
        "POST",
        &t.main.url("/api/v1/orgs/acme/products/base/remotes"),
        Some(
            json!({"name": "alpine", "url": dist.base, "upstream_name": "library/alpine",
                    "exclude_tags": ["*-rc*"], "mirror": true}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = api(
        &t.c,
        "POST",
        &t.main.url("/api/v1/orgs/acme/products/base/remotes/alpine/sync"),
        None,
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let admin_edge = token(&t.c, &t.edge, "admin", PASSWORD, "repository:acme/base/alpine:pull")
        .await
        .unwrap();
    eventually(
        "the remote's content reaches the edge",
        Duration::from_secs(30),
        || async { manifest(&t.c, &t.edge, &admin_edge, "acme/base/alpine", "3.19").await.0 == 200 },
    )
    .await;
    assert_eq!(
        manifest(&t.c, &t.edge, &admin_edge, "acme/base/alpine", "3.20-rc1")
            .await
            .0,
        404,
        "filtered out on the main server, so not at the edge either"
    );

    // With pushes no longer triggering its sync, the edge still serves a new tag: what it
    // lacks it reads from the main server (read-your-writes at the edge).
    let (s, v) = api(
        &t.c,
        "PATCH",
        &t.main.url("/api/v1/smart-proxies/edge1"),
        Some(json!({"sync_after_push": false})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let push = token(&t.c, &t.main, "admin", PASSWORD, "repository:acme/web/fresh:pull,push")
        .await
        .unwrap();
    let config = common::config_blob("amd64");
    let layer = random_bytes(3000, 9);
    for blob in [&config, &layer] {
        let r =
            t.c.post(t.main.url(&format!(
                "/v2/acme/web/fresh/blobs/uploads/?digest={}",
                common::digest(blob)
            )))
            .bearer_auth(&push)
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let m = common::image_manifest(&config, &[&layer], json!({}));
    let r =
        t.c.put(t.main.url("/v2/acme/web/fresh/manifests/1.0"))
            .bearer_auth(&push)
            .header("content-type", common::OCI_MANIFEST)
            .body(m.clone())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 201);
    let at_edge = token(&t.c, &t.edge, "admin", PASSWORD, "repository:acme/web/fresh:pull")
        .await
        .unwrap();
    assert_eq!(
        manifest(&t.c, &t.edge, &at_edge, "acme/web/fresh", "1.0").await,
        (200, Some(common::digest(&m)))
    );
    let blob =
        t.c.get(
            t.edge
                .url(&format!("/v2/acme/web/fresh/blobs/{}", common::digest(&layer))),
        )
        .bearer_auth(&at_edge)
        .send()
        .await
        .unwrap();
    assert_eq!(blob.status(), 200);
    assert_eq!(blob.bytes().await.unwrap().as_ref(), layer.as_slice());

    // The main server rotates its signing key: its new tokens work at the edge at once
    // (an unknown key id makes the edge fetch the main server's keys).
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["keys", "rotate", "--data-dir"])
        .arg(t.dir.path().join("main"))
        .envs(common::backend_env(&t.dir.path().join("main")))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // SAFETY: signalling a child process this test started and still owns.
    let hup = unsafe { libc::kill(t.main.child.id() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(hup, 0);
    eventually(
        "the main server signs with the new key",
        Duration::from_secs(30),
        || async {
            let jwks: Value =
                t.c.get(t.main.url("/.well-known/jwks.json"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
            jwks["keys"].as_array().map(Vec::len) == Some(2)
        },
    )
    .await;
    let fresh = token(&t.c, &t.edge, "admin", PASSWORD, "repository:acme/base/alpine:pull")
        .await
        .unwrap();
    assert_eq!(
        manifest(&t.c, &t.edge, &fresh, "acme/base/alpine", "3.19").await.0,
        200,
        "a token signed with the rotated key is accepted at the edge right away"
    );

    // An edge registered later, for one product, gets what exists at its start.
    let (s, reg) = api(
        &t.c,
        "POST",
        &t.main.url("/api/v1/smart-proxies"),
        Some(json!({"name": "edge2", "url": "https://localhost:1", "orgs": ["acme/base"]})),
    )
    .await;
    assert_eq!(s, 201, "{reg}");
    let cred2 = t.dir.path().join("edge2.cred");
    std::fs::write(&cred2, reg["credential"]["secret"].as_str().unwrap()).unwrap();
    let late = spawn(
        &[
            "edge",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &t.main.url(""),
            "--name",
            "edge2",
            "--credential-file",
            cred2.to_str().unwrap(),
        ],
        &t.dir.path().join("edge2"),
        &t.dir.path().join("certs"),
    );
    let admin_late = token(&t.c, &late, "admin", PASSWORD, "repository:acme/base/alpine:pull")
        .await
        .unwrap();
    eventually("a late edge syncs what exists", Duration::from_secs(30), || async {
        manifest(&t.c, &late, &admin_late, "acme/base/alpine", "3.19").await.0 == 200
    })
    .await;

    // An edge started with a wrong credential is refused and says so.
    let wrong = t.dir.path().join("wrong.cred");
    std::fs::write(&wrong, "gpx_not-the-secret").unwrap();
    let bad = start_edge(
        &t.dir.path().join("edge-bad"),
        &t.dir.path().join("certs"),
        &t.main.url(""),
        &wrong,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bad.logged("refused this edge's credential (401)") {
        assert!(Instant::now() < deadline, "the edge did not log the refusal");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = &t.secret;
}

/// The main server as two replicas over one PostgreSQL database and one S3 bucket,
/// behind nginx balancing TCP round robin (TLS end to end, as docker-compose.scale.yml
/// runs it); the edge knows only the load balancer. podman pushes through the
/// balancer (requests of one push land on either replica), the edge gets the image,
/// a revocation made on either replica reaches the edge, and with one replica killed
/// the next push still reaches the edge through the other.
#[tokio::test(flavor = "multi_thread")]
async fn an_edge_follows_a_replicated_main_server_behind_a_load_balancer() {
    use common::scale::{LoadBalancer, SharedBackends};
    let backends = SharedBackends::start();
    let database = backends.database();
    let shared = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    make_certs(&certs);
    let replica = |name: &str| {
        spawn_with_env(
            &["serve", "--listen", "127.0.0.1:0"],
            &dir.path().join(name),
            &certs,
            backends.replica_env(&database, shared.path()),
        )
    };
    let main1 = replica("main1");
    let main2 = replica("main2");
    let lb = LoadBalancer::start(&[main1.port, main2.port]);
    let main = |path: &str| format!("https://localhost:{}{path}", lb.port);
    let main_host = format!("localhost:{}", lb.port);
    let c = client(&certs);
    let (edge, ps) = acme_with_edge(&c, &main(""), dir.path(), &certs, &["web"]).await;
    let (secret_user, secret) = (ps["username"].as_str().unwrap(), ps["secret"].as_str().unwrap());

    // podman pushes through the balancer.
    let cert_dir = podman_cert_dir(dir.path(), &certs);
    let cd = cert_dir.to_str().unwrap();
    let pusher = Podman::new();
    pusher.import_files("localhost/app:1.0", &[("etc/release", b"replicated main")]);
    pusher.run(&["login", "--cert-dir", cd, "-u", "admin", "-p", PASSWORD, &main_host]);
    pusher.run(&[
        "push",
        "--cert-dir",
        cd,
        "localhost/app:1.0",
        &format!("{main_host}/acme/web/app:1.0"),
    ]);

    // Both replicas serve it; the edge gets it, same digest, for the pull secret.
    let mut digests = Vec::new();
    for replica in [&main1, &main2] {
        let t = token(&c, replica, secret_user, secret, "repository:acme/web/app:pull")
            .await
            .unwrap();
        let (s, d) = manifest(&c, replica, &t, "acme/web/app", "1.0").await;
        assert_eq!(s, 200);
        digests.push(d);
    }
    assert_eq!(digests[0], digests[1]);
    let held = token(&c, &edge, secret_user, secret, "repository:acme/web/app:pull")
        .await
        .unwrap();
    eventually("the push reaches the edge", Duration::from_secs(30), || async {
        manifest(&c, &edge, &held, "acme/web/app", "1.0").await == (200, digests[0].clone())
    })
    .await;
    let puller = Podman::new();
    let edge_host = edge.host();
    puller.run(&["login", "--cert-dir", cd, "-u", secret_user, "-p", secret, &edge_host]);
    puller.run(&["pull", "--cert-dir", cd, &format!("{edge_host}/acme/web/app:1.0")]);

    // One replica dies: the balancer sends everything to the other, and the next push
    // reaches the edge all the same.
    drop(main1);
    pusher.import_files("localhost/app:2.0", &[("etc/release", b"after a replica died")]);
    pusher.run(&[
        "push",
        "--cert-dir",
        cd,
        "localhost/app:2.0",
        &format!("{main_host}/acme/web/app:2.0"),
    ]);
    let t = token(&c, &main2, secret_user, secret, "repository:acme/web/app:pull")
        .await
        .unwrap();
    let (s, d2) = manifest(&c, &main2, &t, "acme/web/app", "2.0").await;
    assert_eq!(s, 200);
    eventually("the second push reaches the edge", Duration::from_secs(30), || async {
        manifest(&c, &edge, &held, "acme/web/app", "2.0").await == (200, d2.clone())
    })
    .await;

    // The secret revoked through the balancer stops working at the edge.
    let (s, v) = api(&c, "DELETE", &main("/api/v1/orgs/acme/pull-secrets/edge-puller"), None).await;
    assert_eq!(s, 204, "{v}");
    eventually(
        "the revoked secret stops working at the edge",
        Duration::from_secs(30),
        || async { manifest(&c, &edge, &held, "acme/web/app", "1.0").await.0 == 401 },
    )
    .await;
    let (_, proxy) = api(&c, "GET", &main("/api/v1/smart-proxies/edge1"), None).await;
    assert!(proxy["last_error"].is_null(), "{proxy}");
}
