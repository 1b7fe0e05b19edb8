//! Sync and edge benchmark for `bench/run.sh`: real processes on loopback.
//!
//! ```text
//! syncbench <gatehouse-binary> <docker-registry-url> <work-dir> [big-MiB]
//! ```
//! 1. A main server and an edge site (`gatehouse serve`, `gatehouse edge`): a 10-layer
//!    image pushed to the main server; time from the manifest PUT's answer to the edge
//!    holding it in its own store and having told the main server so (ten pushes;
//!    median and worst).
//! 2. A remote of 500 tags on Distribution: the re-sync when nothing changed (median of
//!    five).
//! 3. A `big-MiB` image (four layers) on Distribution: `skopeo copy` to a directory
//!    versus a remote sync (immediate), same run.
//!
//! Prints `key=value` lines.

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "syncbench-admin-password";

struct Proc(Child, String);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(bin: &str, args: &[&str]) -> Proc {
    let mut child = Command::new(bin)
        .args(args)
        .env("GATEHOUSE_ADMIN_PASSWORD", PASSWORD)
        .env(
            "GATEHOUSE_LOG",
            std::env::var("SYNCBENCH_LOG").unwrap_or_else(|_| "warn,gatehouse=info".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gatehouse");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listen=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
            }
            if line.contains("sync: ") {
                eprintln!("{line}");
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("listen address");
    Proc(child, format!("http://{addr}"))
}

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Deterministic incompressible bytes.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn api(c: &reqwest::Client, method: &str, url: &str, body: Option<Value>) -> Value {
    let mut r = c
        .request(method.parse().expect("method"), url)
        .basic_auth("admin", Some(PASSWORD));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.expect("api");
    assert!(r.status().is_success(), "{method} {url}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

async fn token(c: &reqwest::Client, base: &str, scope: &str) -> String {
    let v: Value = c
        .get(format!("{base}/v2/token?service=gatehouse&scope={scope}"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    v["token"].as_str().expect("token").to_owned()
}

/// Push a blob: one POST (gatehouse) or a session and a PUT (Distribution).
async fn push_blob(c: &reqwest::Client, base: &str, token: Option<&str>, repo: &str, data: Vec<u8>) -> String {
    let d = digest(&data);
    let auth = |r: reqwest::RequestBuilder| match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    let r = auth(c.post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}")))
        .body(data.clone())
        .send()
        .await
        .expect("post blob");
    if r.status() == 202 {
        let loc = r.headers()["location"].to_str().expect("location").to_owned();
        let loc = if loc.starts_with("http") {
            loc
        } else {
            format!("{base}{loc}")
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = auth(c.put(format!("{loc}{sep}digest={d}")))
            .body(data)
            .send()
            .await
            .expect("put blob");
        assert_eq!(r.status(), 201, "blob put");
    } else {
        assert_eq!(r.status(), 201, "blob post");
    }
    d
}

fn manifest(config: &[u8], layers: &[(String, usize)], note: &str) -> Vec<u8> {
    let layers: Vec<Value> = layers
        .iter()
        .map(|(d, n)| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n}))
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": config.len()},
        "layers": layers, "annotations": {"note": note},
    }))
    .expect("json")
}

async fn put_manifest(c: &reqwest::Client, base: &str, token: Option<&str>, repo: &str, tag: &str, m: &[u8]) {
    let mut r = c
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(m.to_vec());
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.expect("manifest");
    assert_eq!(r.status(), 201, "manifest put");
}

async fn wait_job(c: &reqwest::Client, base: &str, id: i64) -> Value {
    loop {
        let job = api(c, "GET", &format!("{base}/api/v1/jobs/{id}"), None).await;
        if job["state"] == "done" {
            return job;
        }
        assert!(job["state"] != "failed", "job failed: {job}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Start a sync of remote `name` and return its wall time.
async fn timed_sync(c: &reqwest::Client, main: &str, name: &str) -> Duration {
    let start = Instant::now();
    let v = api(
        c,
        "POST",
        &format!("{main}/api/v1/orgs/acme/products/base/remotes/{name}/sync"),
        None,
    )
    .await;
    wait_job(c, main, v["job"].as_i64().expect("job")).await;
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (bin, dist, work) = (&args[1], args[2].trim_end_matches('/'), Path::new(&args[3]));
    let big_mb: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1024);
    gatehouse::tls::install_crypto_provider();
    let c = reqwest::Client::new();

    let main_dir = work.join("main");
    let main = spawn(
        bin,
        &[
            "serve",
            "--insecure-http",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            main_dir.to_str().expect("utf8"),
        ],
    );
    let m = main.1.clone();
    api(&c, "POST", &format!("{m}/api/v1/orgs"), Some(json!({"label": "acme"}))).await;
    for p in ["web", "base"] {
        api(
            &c,
            "POST",
            &format!("{m}/api/v1/orgs/acme/products"),
            Some(json!({"label": p})),
        )
        .await;
    }
    let reg = api(
        &c,
        "POST",
        &format!("{m}/api/v1/smart-proxies"),
        Some(json!({"name": "edge1", "url": "http://127.0.0.1:1", "orgs": ["acme"]})),
    )
    .await;
    let cred = work.join("edge1.cred");
    std::fs::write(&cred, reg["credential"]["secret"].as_str().expect("secret")).expect("cred");
    let edge_dir = work.join("edge");
    let edge = spawn(
        bin,
        &[
            "edge",
            "--insecure-http",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &m,
            "--name",
            "edge1",
            "--credential-file",
            cred.to_str().expect("utf8"),
            "--data-dir",
            edge_dir.to_str().expect("utf8"),
        ],
    );
    let e = edge.1.clone();
    api(
        &c,
        "PATCH",
        &format!("{m}/api/v1/smart-proxies/edge1"),
        Some(json!({"url": e})),
    )
    .await;

    // 1. push -> pullable at the edge.
    let push_token = token(&c, &m, "repository:acme/web/app:pull,push").await;
    let edge_token = token(&c, &e, "repository:acme/web/app:pull").await;
    let mut latencies = Vec::new();
    for i in 0..10u64 {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","run":{i}}}"#).into_bytes();
        push_blob(&c, &m, Some(&push_token), "acme/web/app", config.clone()).await;
        let mut layers = Vec::new();
        for l in 0..10u64 {
            let data = bytes(1 << 20, i * 100 + l + 1);
            let n = data.len();
            layers.push((push_blob(&c, &m, Some(&push_token), "acme/web/app", data).await, n));
        }
        let tag = format!("v{i}");
        put_manifest(
            &c,
            &m,
            Some(&push_token),
            "acme/web/app",
            &tag,
            &manifest(&config, &layers, &tag),
        )
        .await;
        let pushed = Instant::now();
        // The edge would read a tag it lacks from the main server: what is timed is the
        // edge holding it in its own store, which the main server learns from its report.
        loop {
            let state = api(&c, "GET", &format!("{m}/api/v1/smart-proxies/edge1"), None).await;
            if state["behind_by_events"] == 0 {
                break;
            }
            assert!(
                pushed.elapsed() < Duration::from_secs(60),
                "tag {tag} never reached the edge"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let r = c
            .head(format!("{e}/v2/acme/web/app/manifests/{tag}"))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .bearer_auth(&edge_token)
            .send()
            .await
            .expect("edge head");
        assert_eq!(r.status(), 200, "tag {tag} at the edge");
        latencies.push(pushed.elapsed());
    }
    let worst = latencies.iter().max().copied().unwrap_or_default();
    let all: Vec<String> = latencies.iter().map(|d| d.as_millis().to_string()).collect();
    println!("edge_latencies_ms={}", all.join(","));
    println!("edge_latency_median_ms={}", median(latencies).as_millis());
    println!("edge_latency_max_ms={}", worst.as_millis());

    // 2. 500 tags on Distribution: re-sync with nothing new.
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    push_blob(&c, dist, None, "library/many", config.clone()).await;
    let layer = bytes(4096, 7);
    let layers = vec![(push_blob(&c, dist, None, "library/many", layer).await, 4096)];
    for i in 0..500 {
        let tag = format!("t{i}");
        put_manifest(&c, dist, None, "library/many", &tag, &manifest(&config, &layers, &tag)).await;
    }
    api(
        &c,
        "POST",
        &format!("{m}/api/v1/orgs/acme/products/base/remotes"),
        Some(json!({"name": "many", "url": dist, "upstream_name": "library/many", "mirror": true})),
    )
    .await;
    let first = timed_sync(&c, &m, "many").await;
    let mut again = Vec::new();
    for _ in 0..5 {
        again.push(timed_sync(&c, &m, "many").await);
    }
    let all: Vec<String> = again.iter().map(|d| d.as_millis().to_string()).collect();
    println!("resync500_all_ms={}", all.join(","));
    println!("sync500_first_ms={}", first.as_millis());
    println!("resync500_ms={}", median(again).as_millis());
    // The same 500 tags with a gatehouse as the upstream (what an edge re-sync does).
    api(
        &c,
        "POST",
        &format!("{m}/api/v1/orgs/acme/products/base/remotes"),
        Some(
            json!({"name": "many2", "url": m, "upstream_name": "acme/base/many", "mirror": true,
                    "username": "admin", "password": PASSWORD}),
        ),
    )
    .await;
    timed_sync(&c, &m, "many2").await;
    let mut again = Vec::new();
    for _ in 0..5 {
        again.push(timed_sync(&c, &m, "many2").await);
    }
    println!("resync500_gatehouse_ms={}", median(again).as_millis());

    // 3. A big image: skopeo copy vs a remote sync.
    let config = br#"{"architecture":"amd64","os":"linux","big":true}"#.to_vec();
    push_blob(&c, dist, None, "library/big", config.clone()).await;
    let mut layers = Vec::new();
    for l in 0..4u64 {
        let data = bytes((big_mb / 4) << 20, 1000 + l);
        let n = data.len();
        layers.push((push_blob(&c, dist, None, "library/big", data).await, n));
    }
    put_manifest(&c, dist, None, "library/big", "1", &manifest(&config, &layers, "big")).await;
    let host = dist.trim_start_matches("http://");
    let dir = work.join("skopeo-dir");
    let start = Instant::now();
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--src-tls-verify=false"])
        .arg(format!("docker://{host}/library/big:1"))
        .arg(format!("dir:{}", dir.display()))
        .output()
        .expect("skopeo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let skopeo = start.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    api(
        &c,
        "POST",
        &format!("{m}/api/v1/orgs/acme/products/base/remotes"),
        Some(json!({"name": "big", "url": dist, "upstream_name": "library/big"})),
    )
    .await;
    let sync = timed_sync(&c, &m, "big").await;
    println!("big_mb={big_mb}");
    println!("skopeo_big_ms={}", skopeo.as_millis());
    println!("sync_big_ms={}", sync.as_millis());
    drop(edge);
    drop(main);
}
