//! Load generator for `bench/run.sh`: measures what wrk cannot, because each operation
//! is a sequence of requests.
//!
//! ```text
//! loadgen small-push <base-url> <repo> <count> <concurrency> [blob-bytes]
//! ```
//! `small-push` uploads `count` distinct blobs (4 KiB by default) the way clients do
//! when they do not know the registry supports single-request uploads: `POST` to open
//! a session, then `PUT ?digest=` with the bytes. Prints pushes per second and p99.

use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!("usage: loadgen small-push <base-url> <repo> <count> <concurrency> [blob-bytes]");
    std::process::exit(2)
}

async fn push_one(c: &reqwest::Client, base: &str, repo: &str, data: Vec<u8>) -> Result<(), String> {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 202 {
        return Err(format!("POST: {}", r.status()));
    }
    let loc = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or("no Location")?
        .to_owned();
    let mut url = if loc.starts_with("http") {
        loc
    } else {
        format!("{base}{loc}")
    };
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str("digest=");
    url.push_str(&digest);
    let r = c.put(url).body(data).send().await.map_err(|e| e.to_string())?;
    if r.status() != 201 {
        return Err(format!("PUT: {}", r.status()));
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    gatehouse::tls::install_crypto_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 || args[0] != "small-push" {
        usage();
    }
    let base = args[1].trim_end_matches('/').to_owned();
    let repo = args[2].clone();
    let count: usize = args[3].parse().unwrap_or_else(|_| usage());
    let concurrency: usize = args[4].parse().unwrap_or_else(|_| usage());
    let size: usize = args
        .get(5)
        .map(|s| s.parse().unwrap_or_else(|_| usage()))
        .unwrap_or(4096);

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let next = Arc::new(AtomicUsize::new(0));
    // Distinct content per push: a run tag plus the push number, padded with filler.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, base, repo, next) = (client.clone(), base.clone(), repo.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return latencies;
                }
                let mut data = format!("{run}-{i}-").into_bytes();
                data.resize(size, b'x');
                let t = Instant::now();
                if let Err(e) = push_one(&client, &base, &repo, data).await {
                    eprintln!("push {i} failed: {e}");
                    std::process::exit(1);
                }
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut all: Vec<Duration> = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or_default();
    println!(
        "pushes_per_s={:.0} p99_ms={:.2} count={count} concurrency={concurrency}",
        count as f64 / secs,
        p99.as_secs_f64() * 1000.0
    );
}
