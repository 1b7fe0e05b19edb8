//! What the benchmark programs share: a gatehouse process, its admin API and tokens,
//! and pushing content with the OCI protocol.
#![allow(dead_code)]

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const PASSWORD: &str = "syncbench-admin-password";

pub struct Proc(pub Child, pub String);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn(bin: &str, args: &[&str]) -> Proc {
    spawn_with(Command::new(bin), args)
}

/// `spawn` with a command prepared by the caller (extra environment).
pub fn spawn_with(mut cmd: Command, args: &[&str]) -> Proc {
    let mut child = cmd
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
    // BENCH_SERVER_LOG=<file>: every server's log lines, appended there.
    let mut log = std::env::var_os("BENCH_SERVER_LOG")
        .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
    let pid = child.id();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(f) = log.as_mut() {
                use std::io::Write as _;
                let _ = writeln!(f, "[{pid}] {line}");
            }
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

pub fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Deterministic incompressible bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
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

pub async fn api(c: &reqwest::Client, method: &str, url: &str, body: Option<Value>) -> Value {
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

pub async fn token(c: &reqwest::Client, base: &str, scope: &str) -> String {
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
pub async fn push_blob(c: &reqwest::Client, base: &str, token: Option<&str>, repo: &str, data: Vec<u8>) -> String {
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

pub fn manifest(config: &[u8], layers: &[(String, usize)], note: &str) -> Vec<u8> {
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

pub async fn put_manifest(c: &reqwest::Client, base: &str, token: Option<&str>, repo: &str, tag: &str, m: &[u8]) {
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

/// A main server (`gatehouse serve`, plain HTTP, `main_env` added to its environment)
/// with organisation `acme` (products `web` and `base`), and an edge site `edge1`
/// mirroring `acme`, registered and started.
pub async fn main_with_edge(
    c: &reqwest::Client,
    bin: &str,
    work: &std::path::Path,
    main_env: &[(&str, &str)],
) -> (Proc, Proc) {
    let mut cmd = Command::new(bin);
    cmd.envs(main_env.iter().copied());
    let dir = work.join("main");
    let main = spawn_with(
        cmd,
        &[
            "serve",
            "--insecure-http",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.to_str().expect("utf8"),
        ],
    );
    let m = main.1.clone();
    api(c, "POST", &format!("{m}/api/v1/orgs"), Some(json!({"label": "acme"}))).await;
    for p in ["web", "base"] {
        api(
            c,
            "POST",
            &format!("{m}/api/v1/orgs/acme/products"),
            Some(json!({"label": p})),
        )
        .await;
    }
    let reg = api(
        c,
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
        c,
        "PATCH",
        &format!("{m}/api/v1/smart-proxies/edge1"),
        Some(json!({"url": e})),
    )
    .await;
    (main, edge)
}
