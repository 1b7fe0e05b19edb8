//! Durability and garbage collection: `kill -9` of the server during pushes, then a
//! restart, serves everything that was committed and nothing partial; `gatehouse gc`
//! removes what nothing references and never what is in use.

mod common;

use common::*;
use gatehouse::store::gc;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The real binary on an ephemeral port; the bound address is read from its log.
struct Proc {
    child: Child,
    addr: String,
}

impl Proc {
    fn start(data: &std::path::Path) -> Self {
        Self::start_with_env(data, &[])
    }

    fn start_with_env(data: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["store", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .envs(common::backend_env(data))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start gatehouse");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Read the log on a thread (and keep draining it so the server never blocks on
        // a full pipe); the address arrives through the channel.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listen=").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("gatehouse did not log `listen=<addr>` within 60 s of starting");
        Self { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

struct Pushed {
    tag: String,
    manifest: Vec<u8>,
    blobs: Vec<Vec<u8>>,
}

/// Push one image with a chunked layer upload; `Ok` only when the manifest PUT got 201.
async fn push_chunked(c: &reqwest::Client, base: &str, i: u64) -> Result<Pushed, reqwest::Error> {
    let config = config_blob("amd64");
    let layer = random_bytes(256 * 1024, 100 + i);
    for blob in [&config, &layer] {
        let r = c.post(format!("{base}/v2/crash/app/blobs/uploads/")).send().await?;
        let loc = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        for (n, chunk) in blob.chunks(64 * 1024).enumerate() {
            let start = n * 64 * 1024;
            c.patch(format!("{base}{loc}"))
                .header("content-range", format!("{start}-{}", start + chunk.len() - 1))
                .body(chunk.to_vec())
                .send()
                .await?
                .error_for_status()?;
        }
        c.put(format!("{base}{loc}?digest={}", digest(blob)))
            .send()
            .await?
            .error_for_status()?;
    }
    let manifest = image_manifest(&config, &[&layer], json!({}));
    let tag = format!("t{i}");
    c.put(format!("{base}/v2/crash/app/manifests/{tag}"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await?
        .error_for_status()?;
    Ok(Pushed {
        tag,
        manifest,
        blobs: vec![config, layer],
    })
}

/// Every tag the registry lists must resolve to a manifest whose blobs are all present
/// and hash to their digests: no partial image is ever visible.
async fn assert_consistent(c: &reqwest::Client, base: &str) -> usize {
    let tags: Value = get_json(c, &format!("{base}/v2/crash/app/tags/list")).await;
    let tags = tags["tags"].as_array().cloned().unwrap_or_default();
    for tag in &tags {
        let tag = tag.as_str().unwrap();
        let m = c
            .get(format!("{base}/v2/crash/app/manifests/{tag}"))
            .send()
            .await
            .unwrap();
        assert_eq!(m.status(), 200, "tag {tag}");
        let m: Value = m.json().await.unwrap();
        let mut descs = vec![m["config"].clone()];
        descs.extend(m["layers"].as_array().unwrap().iter().cloned());
        for d in descs {
            let want = d["digest"].as_str().unwrap();
            let bytes = get_bytes(c, &format!("{base}/v2/crash/app/blobs/{want}")).await;
            assert_eq!(digest(&bytes), want, "blob of tag {tag} is complete");
        }
    }
    tags.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_pushes_then_restart_serves_all_committed_and_nothing_partial() {
    let data = tempfile::tempdir().unwrap();
    let c = http();
    let server = Proc::start(data.path());
    let base = server.url("");

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pusher = {
        let (c, base) = (c.clone(), base.clone());
        tokio::spawn(async move {
            for i in 0.. {
                match push_chunked(&c, &base, i).await {
                    Ok(p) => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Err(_) => return, // the server is gone
                }
            }
        })
    };
    // Kill while the pusher is in the middle of its next image.
    let mut committed = Vec::new();
    while committed.len() < 5 {
        committed.push(rx.recv().await.expect("pushes succeed while the server runs"));
    }
    server.kill9();
    pusher.await.unwrap();
    while let Ok(p) = rx.try_recv() {
        committed.push(p);
    }

    let server = Proc::start(data.path());
    let base = server.url("");
    for p in &committed {
        let r = c
            .get(format!("{base}/v2/crash/app/manifests/{}", p.tag))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "committed tag {} survives", p.tag);
        assert_eq!(r.bytes().await.unwrap().as_ref(), &p.manifest[..]);
        for b in &p.blobs {
            let got = get_bytes(&c, &format!("{base}/v2/crash/app/blobs/{}", digest(b))).await;
            assert_eq!(got.as_ref(), &b[..]);
        }
    }
    let visible = assert_consistent(&c, &base).await;
    assert!(visible >= committed.len());

    // A push after the restart works, and gc (run as the CLI, beside the live server)
    // keeps every committed image.
    push_chunked(&c, &base, 999).await.expect("push after restart");
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["gc", "--grace", "0s", "--data-dir"])
        .arg(data.path())
        .envs(common::backend_env(data.path()))
        .output()
        .unwrap();
    assert!(out.status.success(), "gc: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(assert_consistent(&c, &base).await, visible + 1);
    server.kill9();
}

#[tokio::test]
async fn gc_removes_unreferenced_blobs_and_abandoned_uploads_only() {
    let srv = TestServer::start().await;
    let c = http();
    let kept = push_image(&c, &srv, "keep", "v1", 31).await;
    let orphan = push_blob(&c, &srv, "keep", b"never referenced").await;
    let abandoned = open_session(&c, &srv, "keep").await;
    c.patch(srv.url(&abandoned))
        .body("half an upload")
        .send()
        .await
        .unwrap();

    // Young content is protected by the grace period.
    let report = gc::collect(&srv.registry, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(report, gc::GcReport::default());
    assert_eq!(
        head_status(&c, &srv.url(&format!("/v2/keep/blobs/{orphan}"))).await,
        200
    );

    let report = gc::collect(&srv.registry, Duration::ZERO).await.unwrap();
    assert_eq!(report.blobs_deleted, 1);
    assert_eq!(report.uploads_removed, 1);
    assert_eq!(
        head_status(&c, &srv.url(&format!("/v2/keep/blobs/{orphan}"))).await,
        404
    );
    assert_eq!(c.get(srv.url(&abandoned)).send().await.unwrap().status(), 404);
    let m: Value = serde_json::from_slice(&kept).unwrap();
    for d in [&m["config"]["digest"], &m["layers"][0]["digest"]] {
        let d = d.as_str().unwrap();
        assert_eq!(head_status(&c, &srv.url(&format!("/v2/keep/blobs/{d}"))).await, 200);
    }
    // The orphan's bytes are gone from the blob store too (files or object storage).
    let orphan: gatehouse::oci::Digest = orphan.parse().unwrap();
    assert_eq!(srv.registry.blob_store().stat(&orphan).await.unwrap(), None);
}

#[tokio::test]
async fn gc_after_manifest_delete_keeps_blobs_shared_with_other_repositories() {
    let srv = TestServer::start().await;
    let c = http();
    let m = push_image(&c, &srv, "one", "v1", 32).await;
    let v: Value = serde_json::from_slice(&m).unwrap();
    let layer = v["layers"][0]["digest"].as_str().unwrap().to_owned();
    let cfg = v["config"]["digest"].as_str().unwrap().to_owned();
    // Same image in a second repository, by mount.
    for d in [&cfg, &layer] {
        let r = c
            .post(srv.url(&format!("/v2/two/blobs/uploads/?mount={d}&from=one")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    assert_eq!(
        put_manifest(&c, &srv, "two", "v1", OCI_MANIFEST, &m).await.status(),
        201
    );

    c.delete(srv.url(&format!("/v2/one/manifests/{}", digest(&m))))
        .send()
        .await
        .unwrap();
    gc::collect(&srv.registry, Duration::ZERO).await.unwrap();
    assert_eq!(head_status(&c, &srv.url(&format!("/v2/one/blobs/{layer}"))).await, 404);
    let got = get_bytes(&c, &srv.url(&format!("/v2/two/blobs/{layer}"))).await;
    assert_eq!(digest(&got), layer);

    c.delete(srv.url(&format!("/v2/two/manifests/{}", digest(&m))))
        .send()
        .await
        .unwrap();
    let report = gc::collect(&srv.registry, Duration::ZERO).await.unwrap();
    assert_eq!(report.blobs_deleted, 2);
    assert_eq!(report.manifests_dropped, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_running_during_pushes_never_breaks_a_successful_push() {
    let srv = TestServer::start().await;
    let c = http();
    let gc_loop = {
        let reg = srv.registry.clone();
        tokio::spawn(async move {
            for _ in 0..30 {
                gc::collect(&reg, Duration::ZERO).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut ok = Vec::new();
    for i in 0..30u64 {
        let config = config_blob("amd64");
        let layer = random_bytes(4096, 200 + i);
        push_blob(&c, &srv, "busy", &config).await;
        push_blob(&c, &srv, "busy", &layer).await;
        let m = image_manifest(&config, &[&layer], json!({}));
        let r = put_manifest(&c, &srv, "busy", &format!("t{i}"), OCI_MANIFEST, &m).await;
        // With a zero grace period gc may take a blob before its manifest arrives; that
        // push then fails cleanly. A push that succeeded must stay whole.
        match r.status().as_u16() {
            201 => ok.push((i, layer)),
            400 => assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN"),
            s => panic!("unexpected status {s}"),
        }
    }
    gc_loop.await.unwrap();
    for (i, layer) in ok {
        let r = c
            .get(srv.url(&format!("/v2/busy/manifests/t{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let got = get_bytes(&c, &srv.url(&format!("/v2/busy/blobs/{}", digest(&layer)))).await;
        assert_eq!(got.as_ref(), &layer[..]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_purges_abandoned_upload_sessions_on_its_own() {
    let data = tempfile::tempdir().unwrap();
    let server = Proc::start_with_env(
        data.path(),
        &[("GATEHOUSE_UPLOAD_PURGE_INTERVAL", "1s"), ("GATEHOUSE_GC_GRACE", "0s")],
    );
    let c = http();
    let r = c.post(server.url("/v2/abandoned/blobs/uploads/")).send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    c.patch(server.url(&loc)).body("half a layer").send().await.unwrap();
    // Wait (bounded) for the purge to come round; the assertion is on the outcome.
    let mut gone = false;
    for _ in 0..300 {
        if c.get(server.url(&loc)).send().await.unwrap().status() == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "abandoned session purged by the server");
    assert_eq!(
        std::fs::read_dir(data.path().join("uploads")).unwrap().count(),
        0,
        "its bytes too"
    );
    server.kill9();
}
