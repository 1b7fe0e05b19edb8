//! Web console benchmark for `bench/run.sh`: a real `gatehouse serve` on loopback.
//!
//! ```text
//! consolebench <gatehouse-binary> <work-dir>
//! ```
//! An organisation with 1,000 repositories and 10,000 tags (10 per repository), pushed
//! with the OCI protocol; then, logged in through the login form, the repository list
//! page (the first 100, by name) and a repository's page (10 tags with their signature
//! status), each requested 300 times one after another: p50 and p99 latency as the
//! browser's side sees it on loopback, and the page sizes.
//!
//! Prints `key=value` lines.

#[path = "support/mod.rs"]
mod support;

use futures_util::{StreamExt, stream};
use std::time::{Duration, Instant};
use support::*;

const REPOS: usize = 1000;
const TAGS: usize = 10;
const SAMPLES: usize = 300;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Log in through the form; returns the `Cookie` header of the session.
async fn log_in(c: &reqwest::Client, base: &str) -> String {
    let form = c.get(format!("{base}/ui/login")).send().await.expect("login form");
    let cookie = form.headers()["set-cookie"].to_str().expect("cookie").to_owned();
    let login_cookie = cookie.split(';').next().expect("cookie pair").to_owned();
    let html = form.text().await.expect("login html");
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf field")
        .to_owned();
    let r = c
        .post(format!("{base}/ui/login"))
        .header("cookie", &login_cookie)
        .form(&[
            ("username", "admin"),
            ("password", PASSWORD),
            ("csrf", csrf.as_str()),
            ("next", "/ui/"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303, "login");
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-gatehouse-session="))
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned()
}

/// Request `url` `SAMPLES` times in a row; returns (p50 ms, p99 ms, bytes).
async fn measure(c: &reqwest::Client, url: &str, cookie: &str) -> (f64, f64, usize) {
    let mut times = Vec::with_capacity(SAMPLES);
    let mut size = 0;
    for _ in 0..SAMPLES {
        let t = Instant::now();
        let r = c.get(url).header("cookie", cookie).send().await.expect("page");
        assert_eq!(r.status(), 200, "{url}");
        size = r.bytes().await.expect("body").len();
        times.push(t.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99), size)
}

#[tokio::main]
async fn main() {
    gatehouse::tls::install_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    let (bin, work) = (&args[1], &args[2]);
    let data = format!("{work}/console");
    let _ = std::fs::remove_dir_all(&data);
    let server = spawn(
        bin,
        &[
            "serve",
            "--insecure-http",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
        ],
    );
    let base = server.1.clone();
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    api(
        &c,
        "POST",
        &format!("{base}/api/v1/orgs"),
        Some(serde_json::json!({"label": "bench", "name": "Bench"})),
    )
    .await;
    api(
        &c,
        "POST",
        &format!("{base}/api/v1/orgs/bench/products"),
        Some(serde_json::json!({"label": "web"})),
    )
    .await;

    let started = Instant::now();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#.to_vec();
    let layer = bytes(4096, 1);
    stream::iter(0..REPOS)
        .for_each_concurrent(16, |i| {
            let (c, base, config, layer) = (&c, &base, config.clone(), layer.clone());
            async move {
                let repo = format!("bench/web/r{i:04}");
                let t = token(c, base, &format!("repository:{repo}:pull,push")).await;
                let cd = push_blob(c, base, Some(&t), &repo, config.clone()).await;
                let ld = push_blob(c, base, Some(&t), &repo, layer.clone()).await;
                let m = manifest(&config, &[(ld, layer.len())], &format!("{i}"));
                let _ = cd;
                for n in 0..TAGS {
                    put_manifest(c, base, Some(&t), &repo, &format!("1.{n}"), &m).await;
                }
            }
        })
        .await;
    println!("setup_secs={:.1}", started.elapsed().as_secs_f64());
    // The post-push copies run in the background: wait until the last repository has
    // all its tags.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let v = api(
            &c,
            "GET",
            &format!("{base}/api/v1/orgs/bench/repositories?q=r{:04}", REPOS - 1),
            None,
        )
        .await;
        if v["repositories"][0]["tags"].as_i64() == Some(TAGS as i64) {
            break;
        }
        assert!(Instant::now() < deadline, "post-push copies did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let cookie = log_in(&c, &base).await;
    let (p50, p99, size) = measure(&c, &format!("{base}/ui/orgs/bench"), &cookie).await;
    println!(
        "list_p50_ms={p50:.2}\nlist_p99_ms={p99:.2}\nlist_kib={:.1}",
        size as f64 / 1024.0
    );
    let (p50, p99, size) = measure(&c, &format!("{base}/ui/repos/bench/web/r0500"), &cookie).await;
    println!(
        "detail_p50_ms={p50:.2}\ndetail_p99_ms={p99:.2}\ndetail_kib={:.1}",
        size as f64 / 1024.0
    );
}
