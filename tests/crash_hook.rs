//! Crashes of the real binary (abort, as `kill -9`) in the post-push hook and in a
//! remote sync. The post-push copy runs inside the push's transaction: killed there,
//! nothing of the push is visible and the client's retry copies once. When that copy
//! fails (`fail:post_push_inline`), the push lands with the copy queued (the outbox):
//! killed right after that commit, or inside the queued copy's transaction, the copy
//! happens exactly once after a restart and the normal repository is complete.

mod common;

use common::http;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "crash-test-admin-password";

struct Server {
    child: Child,
    addr: String,
}

fn start(data: &std::path::Path, fault: Option<&str>) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(["serve", "--insecure-http", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .envs(common::backend_env(data))
        .env("GATEHOUSE_ADMIN_PASSWORD", PASSWORD)
        .env("GATEHOUSE_POLICY_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
        .env_remove("GATEHOUSE_FAULT")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(f) = fault {
        cmd.env("GATEHOUSE_FAULT", f);
    }
    let mut child = cmd.spawn().expect("start gatehouse");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listen=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("server address");
    Server { child, addr }
}

impl Server {
    fn url(&self, p: &str) -> String {
        format!("http://{}{}", self.addr, p)
    }

    async fn token(&self) -> String {
        let v: Value = http()
            .get(self.url("/v2/token?service=gatehouse&scope=repository:acme/web/app:pull,push"))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    /// acme/web/app:1.0 as a client pulls it (a fresh pull token).
    async fn pull_manifest(&self) -> reqwest::Response {
        http()
            .get(self.url("/v2/acme/web/app/manifests/1.0"))
            .header("accept", common::OCI_MANIFEST)
            .bearer_auth(self.token().await)
            .send()
            .await
            .unwrap()
    }

    async fn api(&self, path: &str) -> Value {
        http()
            .get(self.url(path))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Make the organisation, push an image's blobs to acme/web/app, then PUT its manifest
/// as 1.0. Returns what the PUT got and the manifest bytes.
async fn push_image(srv: &Server, seed: u64) -> (reqwest::Result<reqwest::Response>, Vec<u8>) {
    let c = http();
    let r = c
        .post(srv.url("/api/v1/orgs"))
        .basic_auth("admin", Some(PASSWORD))
        .json(&json!({"label": "acme"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success() || r.status() == 409);
    let token = srv.token().await;
    let config = common::config_blob("amd64");
    let layer = common::random_bytes(5000, seed);
    for blob in [&config, &layer] {
        let r = c
            .post(srv.url(&format!(
                "/v2/acme/web/app/blobs/uploads/?digest={}",
                common::digest(blob)
            )))
            .bearer_auth(&token)
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let manifest = common::image_manifest(&config, &[&layer], json!({}));
    let r = c
        .put(srv.url("/v2/acme/web/app/manifests/1.0"))
        .bearer_auth(&token)
        .header("content-type", common::OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await;
    (r, manifest)
}

/// Push an image whose manifest PUT the fault makes the server die on. Returns the
/// manifest bytes.
async fn push_until_crash(srv: &mut Server) -> Vec<u8> {
    let (r, manifest) = push_image(srv, 99).await;
    assert!(r.is_err(), "the server died answering the manifest PUT");
    let status = srv.child.wait().unwrap();
    assert!(!status.success(), "aborted by the fault point");
    manifest
}

/// The versions of acme/web/app once the job runner of a restarted server made one.
async fn versions_after_restart(srv: &Server) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = srv.api("/api/v1/repositories/acme/web/app/versions").await;
        if v["versions"].as_array().is_some_and(|a| !a.is_empty()) {
            return v["versions"].as_array().unwrap().clone();
        }
        assert!(Instant::now() < deadline, "no version after restart: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn recovers_exactly_once(fault: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut crashed = start(dir.path(), Some(fault));
    let manifest = push_until_crash(&mut crashed).await;
    drop(crashed);

    let srv = start(dir.path(), None);
    // The job runner picks the job up after the restart; wait for its version.
    let versions = versions_after_restart(&srv).await;
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(
        versions[0]["summary"]["present"],
        json!({"tags": 1, "manifests": 1, "blobs": 2, "signatures": 0})
    );
    let jobs = srv.api("/api/v1/jobs").await;
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["state"], "done");
    // Complete and served.
    let got = srv.pull_manifest().await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), manifest.as_slice());
    // The runner keeps going; nothing runs twice.
    assert_eq!(srv.api("/api/v1/events").await["events"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_between_push_and_queued_copy_copies_exactly_once_after_restart() {
    recovers_exactly_once("fail:post_push_inline,after_push_commit").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_inside_the_queued_copy_leaves_the_old_version_then_copies_once() {
    recovers_exactly_once("fail:post_push_inline,post_push_before_commit").await;
}

/// Killed inside the push's own transaction (after its copy, before the commit): the
/// client saw no answer and nothing of the push is visible (no tag, version or job);
/// its retry lands with exactly one version.
#[tokio::test(flavor = "multi_thread")]
async fn crash_inside_the_pushs_copy_leaves_nothing_and_the_retry_copies_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut crashed = start(dir.path(), Some("post_push_before_commit"));
    let manifest = push_until_crash(&mut crashed).await;
    drop(crashed);

    let srv = start(dir.path(), None);
    assert_eq!(srv.pull_manifest().await.status(), 404, "nothing of the push");
    let v = srv.api("/api/v1/repositories/acme/web/app/versions").await;
    assert_eq!(v["versions"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(srv.api("/api/v1/jobs").await["jobs"], json!([]));

    // The client's retry (the blobs stayed: each was acknowledged).
    let r = http()
        .put(srv.url("/v2/acme/web/app/manifests/1.0"))
        .bearer_auth(srv.token().await)
        .header("content-type", common::OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v = srv.api("/api/v1/repositories/acme/web/app/versions").await;
    assert_eq!(v["versions"].as_array().map(Vec::len), Some(1), "{v}");
    let got = srv.pull_manifest().await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), manifest.as_slice());
    let jobs = srv.api("/api/v1/jobs").await;
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1), "{jobs}");
    assert_eq!(jobs["jobs"][0]["state"], "done");
}

/// A copy that fails inside the push does not fail the push: it lands with the copy
/// queued, which runs before the answer (read-your-writes still holds).
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_failing_inside_the_push_is_queued_and_the_push_lands() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), Some("fail:post_push_inline"));
    let (r, _) = push_image(&srv, 98).await;
    assert_eq!(r.unwrap().status(), 201);
    assert_eq!(srv.pull_manifest().await.status(), 200, "copied before the answer");
    let jobs = srv.api("/api/v1/jobs").await;
    assert_eq!(jobs["jobs"].as_array().map(Vec::len), Some(1), "{jobs}");
    assert_eq!(jobs["jobs"][0]["state"], "done");
    assert_eq!(jobs["jobs"][0]["attempts"], 0, "{jobs}");
}

/// A remote sync killed after fetching every blob, before its version: nothing of it
/// is visible; after a restart the job is taken over (its lease ran out), completes
/// without fetching the blobs again, and makes exactly one version.
#[tokio::test]
async fn a_sync_killed_before_its_version_completes_after_restart() {
    let dist = common::distribution::start_distribution();
    let layers = vec![common::random_bytes(300_000, 5), common::random_bytes(200_000, 6)];
    let manifest = common::distribution::push_plain(&dist.base, "library/app", "1.0", &layers).await;
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), Some("sync_before_version"));
    let c = http();
    let post = |path: &str, body: Value| {
        c.post(srv.url(path))
            .basic_auth("admin", Some(PASSWORD))
            .json(&body)
            .send()
    };
    assert!(
        post("/api/v1/orgs", json!({"label": "acme"}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert!(
        post("/api/v1/orgs/acme/products", json!({"label": "base"}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let r = post(
        "/api/v1/orgs/acme/products/base/remotes",
        json!({"name": "app", "url": dist.base, "upstream_name": "library/app"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let r = post("/api/v1/orgs/acme/products/base/remotes/app/sync", json!({}))
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job = r.json::<Value>().await.unwrap()["job"].as_i64().unwrap();
    let mut srv = srv;
    let status = srv.child.wait().unwrap();
    assert!(!status.success(), "aborted by the fault point during the sync");
    drop(srv);

    let srv = start(dir.path(), None);
    let v = srv.api("/api/v1/repositories/acme/base/app/versions").await;
    assert_eq!(v["versions"].as_array().map(Vec::len), Some(0), "nothing partial: {v}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let j = srv.api(&format!("/api/v1/jobs/{job}")).await;
        if j["state"] == "done" {
            break j;
        }
        assert!(Instant::now() < deadline, "the sync was not taken over: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["progress"]["outcome"]["version"], 1, "{done}");
    assert_eq!(
        done["progress"]["outcome"]["blobs_fetched"], 0,
        "blobs fetched before the crash are kept: {done}"
    );
    let v = srv.api("/api/v1/repositories/acme/base/app/versions").await;
    assert_eq!(v["versions"].as_array().map(Vec::len), Some(1), "{v}");
    let token: Value = http()
        .get(srv.url("/v2/token?service=gatehouse&scope=repository:acme/base/app:pull"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let got = http()
        .get(srv.url("/v2/acme/base/app/manifests/1.0"))
        .header("accept", common::OCI_MANIFEST)
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), manifest.as_slice());
}

/// A product that signs on push, the server killed inside the copy (after signing,
/// before the commit): after a restart the copy runs again and its version has the
/// tag and a signature that verifies with the organisation's key, never one without
/// the other.
#[tokio::test(flavor = "multi_thread")]
async fn crash_inside_a_signing_copy_leaves_copy_and_signature_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut crashed = start(dir.path(), Some("fail:post_push_inline,post_push_before_commit"));
    let c = http();
    let post = |path: &str, body: Value| {
        c.request(reqwest::Method::POST, crashed.url(path))
            .basic_auth("admin", Some(PASSWORD))
            .json(&body)
            .send()
    };
    assert!(
        post("/api/v1/orgs", json!({"label": "acme"}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    assert!(
        post("/api/v1/orgs/acme/products", json!({"label": "web"}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let key: Value = post("/api/v1/orgs/acme/signing-keys", json!({"name": "release"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = c
        .patch(crashed.url("/api/v1/orgs/acme/products/web"))
        .basic_auth("admin", Some(PASSWORD))
        .json(&json!({"sign_on_push": "release"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let manifest = push_until_crash(&mut crashed).await;
    drop(crashed);

    let srv = start(dir.path(), None);
    let versions = versions_after_restart(&srv).await;
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(versions[0]["reason"], "push 1.0 (signed with release)");
    assert_eq!(versions[0]["summary"]["present"]["signatures"], 1);
    let token = srv.token().await;
    let digest = common::digest(&manifest);
    let sigs: Value = http()
        .get(srv.url(&format!("/extensions/v2/acme/web/app/signatures/{digest}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sigs = sigs["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), 1, "one signature, not one per attempt: {sigs:?}");
    use base64::Engine;
    let content = base64::engine::general_purpose::STANDARD
        .decode(sigs[0]["content"].as_str().unwrap())
        .unwrap();
    let claim = gatehouse::signing::verify(key["public_key"].as_str().unwrap(), &content).unwrap();
    assert_eq!(claim.manifest_digest, digest);
    assert!(claim.docker_reference.ends_with("/acme/web/app:1.0"), "{claim:?}");
}
