//! Soak run for `bench/soak.sh`: real processes on loopback under mixed load for a set
//! time, sampling each server's memory, open files and threads every 10 s.
//!
//! ```text
//! soak <gatehouse-binary> <work-dir> <seconds>
//! ```
//! A main server (running its own garbage collection), an edge site synced after every
//! push, and a bare `gatehouse store` as a remote's upstream. Load, all at once: pushes
//! of images that share a base layer and add a new one; pulls (checked byte for byte)
//! at the main server and at the edge; token requests; admin changes (pull secrets,
//! members); tag removals that give GC work; remote syncs of a growing upstream.
//! Any error answer is counted and shown. At the end every image still tagged is pulled
//! and verified, at the main server and at the edge. Prints the samples as CSV, then
//! `key=value` summary lines; exits 1 on any error or failed verification.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[path = "support/mod.rs"]
mod support;

use support::*;

/// What the load did, and what went wrong.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    errors: AtomicU64,
}

impl Tally {
    fn ok(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self, what: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let n = self.errors.fetch_add(1, Ordering::Relaxed);
        if n < 50 {
            eprintln!("soak error: {what}");
        }
    }

    /// Count an answer: a success, or an error described with `what`.
    fn check(&self, r: Result<reqwest::Response, reqwest::Error>, what: &str) -> Option<reqwest::Response> {
        match r {
            Ok(r) if r.status().is_success() => {
                self.ok();
                Some(r)
            }
            Ok(r) => {
                self.error(&format!("{what}: {}", r.status()));
                None
            }
            Err(e) => {
                self.error(&format!("{what}: {e}"));
                None
            }
        }
    }
}

/// A pushed image: its manifest and every blob it names.
#[derive(Clone)]
struct Image {
    manifest: Vec<u8>,
    blobs: Vec<String>,
}

struct Soak {
    c: reqwest::Client,
    main: String,
    edge: String,
    upstream: String,
    tally: Tally,
    images: Mutex<BTreeMap<String, Image>>,
    until: Instant,
}

impl Soak {
    fn running(&self) -> bool {
        Instant::now() < self.until
    }

    async fn token(&self, base: &str, scope: &str) -> Option<String> {
        let r = self
            .c
            .get(format!("{base}/v2/token?service=gatehouse&scope={scope}"))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await;
        let v: Value = self.tally.check(r, "token")?.json().await.ok()?;
        v["token"].as_str().map(str::to_owned)
    }

    async fn push_blob(&self, token: &str, data: Vec<u8>) -> Option<String> {
        let d = digest(&data);
        let r = self
            .c
            .post(format!("{}/v2/acme/web/app/blobs/uploads/?digest={d}", self.main))
            .bearer_auth(token)
            .body(data)
            .send()
            .await;
        self.tally.check(r, "blob push")?;
        Some(d)
    }

    /// One image: the shared base layer, a layer of its own, a config.
    async fn push_image(&self, n: u64, base: &[u8]) {
        let Some(token) = self.token(&self.main, "repository:acme/web/app:pull,push").await else {
            return;
        };
        let config = format!(r#"{{"architecture":"amd64","os":"linux","n":{n}}}"#).into_bytes();
        let own = bytes(64 * 1024, n + 1000);
        let mut blobs = Vec::new();
        for data in [config.clone(), base.to_vec(), own] {
            match self.push_blob(&token, data).await {
                Some(d) => blobs.push(d),
                None => return,
            }
        }
        let layers = vec![(blobs[1].clone(), base.len()), (blobs[2].clone(), 64 * 1024)];
        let tag = format!("p{n}");
        let m = manifest(&config, &layers, &tag);
        let r = self
            .c
            .put(format!("{}/v2/acme/web/app/manifests/{tag}", self.main))
            .bearer_auth(&token)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(m.clone())
            .send()
            .await;
        if self.tally.check(r, "manifest push").is_some() {
            self.images.lock().await.insert(tag, Image { manifest: m, blobs });
        }
    }

    /// Pull `tag` from `base` and check it byte for byte; `blobs`: also every blob.
    async fn pull(&self, base: &str, token: &str, tag: &str, image: &Image, blobs: bool) -> bool {
        let r = self
            .c
            .get(format!("{base}/v2/acme/web/app/manifests/{tag}"))
            .bearer_auth(token)
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await;
        // A tag removed while this pull was on its way is gone, rightly.
        if r.as_ref().is_ok_and(|r| r.status() == 404) && !self.images.lock().await.contains_key(tag) {
            self.tally.ok();
            return false;
        }
        let Some(r) = self.tally.check(r, &format!("pull {tag} at {base}")) else {
            return false;
        };
        if r.bytes().await.ok().as_deref() != Some(&image.manifest[..]) {
            self.tally.error(&format!("{tag} at {base}: another manifest"));
            return false;
        }
        if !blobs {
            return true;
        }
        for d in &image.blobs {
            let r = self
                .c
                .get(format!("{base}/v2/acme/web/app/blobs/{d}"))
                .bearer_auth(token)
                .send()
                .await;
            let Some(r) = self.tally.check(r, &format!("blob {d}")) else {
                return false;
            };
            match r.bytes().await {
                Ok(b) if digest(&b) == *d => {}
                _ => {
                    self.tally.error(&format!("blob {d} at {base}: other bytes"));
                    return false;
                }
            }
        }
        true
    }

    async fn some_image(&self, n: u64) -> Option<(String, Image)> {
        let images = self.images.lock().await;
        if images.is_empty() {
            return None;
        }
        let i = (n as usize * 7919) % images.len();
        images.iter().nth(i).map(|(t, im)| (t.clone(), im.clone()))
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Option<Value> {
        let mut r = self
            .c
            .request(method.parse().ok()?, format!("{}{path}", self.main))
            .basic_auth("admin", Some(PASSWORD));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = self.tally.check(r.send().await, &format!("{method} {path}"))?;
        Some(r.json().await.unwrap_or(Value::Null))
    }

    async fn wait_job(&self, id: i64) {
        loop {
            let Some(job) = self.admin("GET", &format!("/api/v1/jobs/{id}"), None).await else {
                return;
            };
            match job["state"].as_str() {
                Some("done") => return,
                Some("failed") => return self.tally.error(&format!("job {id} failed: {}", job["last_error"])),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// `VmRSS` (KiB) and `Threads` of a process, and how many files it has open.
fn sample(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    (field("VmRSS:"), fds, field("Threads:"))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (bin, work) = (&args[1], Path::new(&args[2]));
    let seconds: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1800);
    gatehouse::tls::install_crypto_provider();
    let c = reqwest::Client::new();

    let gc_interval = std::env::var("SOAK_GC_INTERVAL").unwrap_or_else(|_| "2m".into());
    let (main_proc, edge_proc) = main_with_edge(
        &c,
        bin,
        work,
        &[("GATEHOUSE_GC_INTERVAL", &gc_interval), ("GATEHOUSE_GC_GRACE", "1m")],
    )
    .await;
    let (m, e) = (main_proc.1.clone(), edge_proc.1.clone());
    let upstream_proc = spawn(
        bin,
        &[
            "store",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            work.join("upstream").to_str().expect("utf8"),
        ],
    );
    api(
        &c,
        "POST",
        &format!("{m}/api/v1/users"),
        Some(json!({"username": "dev", "password": "soak-user-password"})),
    )
    .await;
    let up = upstream_proc.1.clone();
    api(
        &c,
        "POST",
        &format!("{m}/api/v1/orgs/acme/products/base/remotes"),
        Some(json!({"name": "mirror", "url": up, "upstream_name": "library/base", "mirror": true})),
    )
    .await;

    let soak = Arc::new(Soak {
        c: c.clone(),
        main: m.clone(),
        edge: e.clone(),
        upstream: up,
        tally: Tally::default(),
        images: Mutex::new(BTreeMap::new()),
        until: Instant::now() + Duration::from_secs(seconds),
    });
    let base_layer = Arc::new(bytes(256 * 1024, 1));
    let pushed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();

    // Pushers: images sharing the base layer, each with a new one.
    for worker in 0..2u64 {
        let (s, base, pushed) = (soak.clone(), base_layer.clone(), pushed.clone());
        tasks.push(tokio::spawn(async move {
            while s.running() {
                let n = pushed.fetch_add(1, Ordering::Relaxed) * 2 + worker;
                s.push_image(n, &base).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    // Pullers at the main server (whole images) and at the edge (manifests, once synced).
    for (worker, at_edge) in [(0u64, false), (1, false), (2, true)] {
        let s = soak.clone();
        tasks.push(tokio::spawn(async move {
            let base = if at_edge { s.edge.clone() } else { s.main.clone() };
            let mut n = worker;
            while s.running() {
                n += 3;
                let Some(token) = s.token(&base, "repository:acme/web/app:pull").await else {
                    continue;
                };
                for _ in 0..20 {
                    if let Some((tag, image)) = s.some_image(n).await {
                        // The edge may not have the newest push yet: it reads it through.
                        s.pull(&base, &token, &tag, &image, !at_edge).await;
                    }
                    n += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    // Admin changes: pull secrets made and revoked, a member added and removed.
    {
        let s = soak.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while s.running() {
                n += 1;
                let name = format!("ci{n}");
                s.admin("POST", "/api/v1/orgs/acme/pull-secrets", Some(json!({"name": name})))
                    .await;
                s.admin("DELETE", &format!("/api/v1/orgs/acme/pull-secrets/{name}"), None)
                    .await;
                let member = json!({"username": "dev", "role": "viewer", "product": "web"});
                s.admin("POST", "/api/v1/orgs/acme/members", Some(member.clone())).await;
                s.admin("DELETE", "/api/v1/orgs/acme/members", Some(member)).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }
    // Old tags removed (their own layers become garbage for GC), keeping the newest 200.
    {
        let s = soak.clone();
        tasks.push(tokio::spawn(async move {
            while s.running() {
                tokio::time::sleep(Duration::from_secs(15)).await;
                let old: Vec<String> = {
                    let mut images = s.images.lock().await;
                    let mut tags: Vec<(u64, String)> = images
                        .keys()
                        .filter_map(|t| t[1..].parse().ok().map(|n| (n, t.clone())))
                        .collect();
                    tags.sort();
                    let excess = tags.len().saturating_sub(200);
                    let old: Vec<String> = tags.into_iter().take(excess).map(|(_, t)| t).collect();
                    for t in &old {
                        images.remove(t);
                    }
                    old
                };
                if !old.is_empty() {
                    s.admin(
                        "POST",
                        "/api/v1/repositories/acme/web/app/remove",
                        Some(json!({"tags": old})),
                    )
                    .await;
                }
            }
        }));
    }
    // The upstream grows; the remote syncs it.
    {
        let s = soak.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while s.running() {
                n += 1;
                let config = format!(r#"{{"architecture":"amd64","os":"linux","up":{n}}}"#).into_bytes();
                let layer = bytes(128 * 1024, n + 50_000);
                push_blob(&s.c, &s.upstream, None, "library/base", config.clone()).await;
                let l = push_blob(&s.c, &s.upstream, None, "library/base", layer).await;
                put_manifest(
                    &s.c,
                    &s.upstream,
                    None,
                    "library/base",
                    &format!("u{n}"),
                    &manifest(&config, &[(l, 128 * 1024)], "up"),
                )
                .await;
                let sync = "/api/v1/orgs/acme/products/base/remotes/mirror/sync";
                if let Some(id) = s.admin("POST", sync, None).await.and_then(|v| v["job"].as_i64()) {
                    s.wait_job(id).await;
                }
                tokio::time::sleep(Duration::from_secs(20)).await;
            }
        }));
    }

    // Samples every 10 s.
    let main_pid = main_proc.0.id();
    let edge_pid = edge_proc.0.id();
    println!("seconds,main_rss_kib,main_fds,main_threads,edge_rss_kib,edge_fds,edge_threads,requests,errors,images");
    let started = Instant::now();
    let mut samples = Vec::new();
    while soak.running() {
        let (mr, mf, mt) = sample(main_pid);
        let (er, ef, et) = sample(edge_pid);
        let images = soak.images.lock().await.len();
        println!(
            "{},{mr},{mf},{mt},{er},{ef},{et},{},{},{images}",
            started.elapsed().as_secs(),
            soak.tally.requests.load(Ordering::Relaxed),
            soak.tally.errors.load(Ordering::Relaxed)
        );
        samples.push((mr, mf, er, ef));
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    for t in tasks {
        let _ = t.await;
    }

    // Every image still tagged: whole at the main server, its manifest at the edge once
    // the edge caught up.
    let images = soak.images.lock().await.clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let state = api(&c, "GET", &format!("{m}/api/v1/smart-proxies/edge1"), None).await;
        if state["behind_by_events"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut verified = 0;
    let main_token = soak.token(&m, "repository:acme/web/app:pull").await.unwrap_or_default();
    let edge_token = soak.token(&e, "repository:acme/web/app:pull").await.unwrap_or_default();
    for (tag, image) in &images {
        if soak.pull(&m, &main_token, tag, image, true).await && soak.pull(&e, &edge_token, tag, image, true).await {
            verified += 1;
        }
    }
    let errors = soak.tally.errors.load(Ordering::Relaxed);
    // Flat: the last quarter's highest against the second quarter's (after warm-up).
    let quarter = samples.len() / 4;
    let peak = |from: usize, to: usize, f: fn(&(u64, u64, u64, u64)) -> u64| {
        samples[from..to.max(from + 1).min(samples.len())]
            .iter()
            .map(f)
            .max()
            .unwrap_or(0)
    };
    let n = samples.len();
    println!("duration_s={}", started.elapsed().as_secs());
    println!("requests={}", soak.tally.requests.load(Ordering::Relaxed));
    println!("errors={errors}");
    println!("images_pushed={}", pushed.load(Ordering::Relaxed));
    println!("images_verified={verified}/{}", images.len());
    println!("main_rss_kib_q2_peak={}", peak(quarter, 2 * quarter, |s| s.0));
    println!("main_rss_kib_q4_peak={}", peak(3 * quarter, n, |s| s.0));
    println!("main_fds_q2_peak={}", peak(quarter, 2 * quarter, |s| s.1));
    println!("main_fds_q4_peak={}", peak(3 * quarter, n, |s| s.1));
    println!("edge_rss_kib_q2_peak={}", peak(quarter, 2 * quarter, |s| s.2));
    println!("edge_rss_kib_q4_peak={}", peak(3 * quarter, n, |s| s.2));
    println!("edge_fds_q4_peak={}", peak(3 * quarter, n, |s| s.3));
    if errors > 0 || verified != images.len() {
        std::process::exit(1);
    }
}
