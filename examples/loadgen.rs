//! Load generator for `bench/run.sh`: measures what wrk cannot, because each operation
//! is a sequence of requests.
//!
//! ```text
//! loadgen small-push <base-url> <repo> <count> <concurrency> [blob-bytes]
//! loadgen many-repos <base-url> <prefix> <count> <concurrency>
//! loadgen catalog <base-url>
//! loadgen idle-conns <host:port> <count> <hold-seconds>
//! ```
//! `small-push` uploads `count` distinct blobs (4 KiB by default) the way clients do
//! when they do not know the registry supports single-request uploads: `POST` to open
//! a session, then `PUT ?digest=` with the bytes. Prints pushes per second and p99.
//! `many-repos` makes `count` repositories `<prefix>/rNNNNNN`, one small blob each
//! (single-request uploads). `catalog` walks `/v2/_catalog` page by page through its
//! `Link` headers and prints the names, pages and slowest page. `idle-conns` opens
//! `count` TCP connections that send nothing, holds them, and prints how many the
//! server kept open and how many it answered (503 past `max_connections`) or closed.

use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!(
        "usage: loadgen small-push <base-url> <repo> <count> <concurrency> [blob-bytes]\n       \
         loadgen many-repos <base-url> <prefix> <count> <concurrency>\n       \
         loadgen catalog <base-url>\n       loadgen idle-conns <host:port> <count> <hold-seconds>"
    );
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
    match args.first().map(String::as_str) {
        Some("small-push") if args.len() >= 5 => small_push(&args).await,
        Some("many-repos") if args.len() == 5 => many_repos(&args).await,
        Some("catalog") if args.len() == 2 => catalog(&args[1]).await,
        Some("idle-conns") if args.len() == 4 => idle_conns(&args).await,
        _ => usage(),
    }
}

/// Operations `0..count`, `concurrency` at a time over one connection pool; stops the
/// process at the first failure. Returns each operation's latency and the seconds taken.
async fn run_concurrently<F, Fut>(count: usize, concurrency: usize, op: F) -> (Vec<Duration>, f64)
where
    F: Fn(reqwest::Client, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, next, op) = (client.clone(), next.clone(), op.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return latencies;
                }
                let t = Instant::now();
                if let Err(e) = op(client.clone(), i).await {
                    eprintln!("operation {i} failed: {e}");
                    std::process::exit(1);
                }
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    (all, start.elapsed().as_secs_f64())
}

async fn small_push(args: &[String]) {
    let base = args[1].trim_end_matches('/').to_owned();
    let repo = args[2].clone();
    let count: usize = args[3].parse().unwrap_or_else(|_| usage());
    let concurrency: usize = args[4].parse().unwrap_or_else(|_| usage());
    let size: usize = args
        .get(5)
        .map(|s| s.parse().unwrap_or_else(|_| usage()))
        .unwrap_or(4096);

    // Distinct content per push: a run tag plus the push number, padded with filler.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let (mut all, secs) = run_concurrently(count, concurrency, move |client, i| {
        let (base, repo) = (base.clone(), repo.clone());
        async move {
            let mut data = format!("{run}-{i}-").into_bytes();
            data.resize(size, b'x');
            push_one(&client, &base, &repo, data).await
        }
    })
    .await;
    all.sort();
    let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or_default();
    println!(
        "pushes_per_s={:.0} p99_ms={:.2} count={count} concurrency={concurrency}",
        count as f64 / secs,
        p99.as_secs_f64() * 1000.0
    );
}

/// A single-request upload (`POST ?digest=` with the bytes).
async fn push_whole(c: &reqwest::Client, base: &str, repo: &str, data: Vec<u8>) -> Result<(), String> {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
        .body(data)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 201 {
        return Err(format!("POST: {}", r.status()));
    }
    Ok(())
}

async fn many_repos(args: &[String]) {
    let base = args[1].trim_end_matches('/').to_owned();
    let prefix = args[2].clone();
    let count: usize = args[3].parse().unwrap_or_else(|_| usage());
    let concurrency: usize = args[4].parse().unwrap_or_else(|_| usage());
    let (_, secs) = run_concurrently(count, concurrency, move |client, i| {
        let (base, repo) = (base.clone(), format!("{prefix}/r{i:06}"));
        async move { push_whole(&client, &base, &repo, format!("blob of {repo}").into_bytes()).await }
    })
    .await;
    println!("repositories={count} repos_per_s={:.0}", count as f64 / secs);
}

async fn catalog(base: &str) {
    let base = base.trim_end_matches('/');
    let client = reqwest::Client::new();
    let mut url = format!("{base}/v2/_catalog");
    let (mut names, mut pages, mut slowest) = (0usize, 0usize, Duration::ZERO);
    let start = Instant::now();
    loop {
        let t = Instant::now();
        let r = client.get(&url).send().await.expect("catalog page");
        assert!(r.status().is_success(), "catalog page: {}", r.status());
        let next = r
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.strip_prefix('<'))
            .and_then(|l| l.split_once('>'))
            .map(|(u, _)| format!("{base}{u}"));
        let page: serde_json::Value = r.json().await.expect("catalog json");
        slowest = slowest.max(t.elapsed());
        names += page["repositories"].as_array().map(Vec::len).unwrap_or(0);
        pages += 1;
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    println!(
        "names={names} pages={pages} total_ms={:.0} slowest_page_ms={:.1}",
        start.elapsed().as_secs_f64() * 1000.0,
        slowest.as_secs_f64() * 1000.0
    );
}

async fn idle_conns(args: &[String]) {
    use tokio::io::AsyncReadExt;
    let addr = args[1].clone();
    let count: usize = args[2].parse().unwrap_or_else(|_| usage());
    let hold = Duration::from_secs(args[3].parse().unwrap_or_else(|_| usage()));
    raise_open_files();
    let mut conns = Vec::with_capacity(count);
    for _ in 0..count {
        match tokio::net::TcpStream::connect(&addr).await {
            Ok(c) => conns.push(c),
            Err(e) => {
                eprintln!("connect failed after {} connections: {e}", conns.len());
                break;
            }
        }
    }
    tokio::time::sleep(hold).await;
    // A connection the server refused has its 503 (or its end) waiting to be read.
    let (mut open, mut answered, mut closed) = (0, 0, 0);
    let mut buf = [0u8; 512];
    for c in &mut conns {
        match tokio::time::timeout(Duration::from_millis(1), c.read(&mut buf)).await {
            Err(_) => open += 1,
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            Ok(Ok(n)) => {
                answered += 1;
                if answered == 1 {
                    let head = String::from_utf8_lossy(&buf[..n]);
                    eprintln!("first answer: {}", head.lines().next().unwrap_or(""));
                }
            }
        }
    }
    println!(
        "attempted={count} connected={} open={open} answered={answered} closed={closed}",
        conns.len()
    );
}

/// Each connection is a file descriptor; the soft limit is often 1,024.
fn raise_open_files() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}
