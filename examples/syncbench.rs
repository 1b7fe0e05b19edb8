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
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

use support::*;

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

    let (main, edge) = main_with_edge(&c, bin, work, &[]).await;
    let (m, e) = (main.1.clone(), edge.1.clone());

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
