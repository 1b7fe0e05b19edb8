//! Post-push hook benchmark for `bench/run.sh`, on the store API in-process (the hook is
//! metadata only; HTTP would only add the same constant to both sides).
//!
//! ```text
//! hookbench <data-dir>        # SQLite + files, or what GATEHOUSE_DATABASE / _BLOBS … name
//! HOOKBENCH_TRACE=1 GATEHOUSE_LOG=warn,sqlx=debug hookbench <data-dir>   # and log every statement
//! ```
//! 1. An index of 10 architectures, each image with 50 layers, pushed to a push
//!    repository: the copy into the normal repository (a new version) is timed alone.
//! 2. 200 tags pushed in a row to a push repository (each copied, each a version) and to
//!    a plain repository without the hook: mean and p99 manifest PUT latency of both.

use gatehouse::oci::{Reference, RepoName};
use gatehouse::store::Registry;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::time::{Duration, Instant};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn desc(media_type: &str, b: &[u8]) -> serde_json::Value {
    json!({ "mediaType": media_type, "digest": digest(b), "size": b.len() })
}

async fn put_blob(reg: &Registry, repo: &RepoName, data: Vec<u8>) {
    let d = digest(&data).parse().expect("digest");
    let body = futures_util::stream::once(async move { Ok(bytes::Bytes::from(data)) });
    reg.upload_whole(repo, &d, Box::pin(body)).await.expect("blob");
}

async fn put_manifest(reg: &Registry, repo: &RepoName, reference: &str, media_type: &str, body: &[u8]) -> Duration {
    let r: Reference = reference.parse().expect("reference");
    let start = Instant::now();
    reg.put_manifest(repo, &r, Some(media_type), body, Vec::new())
        .await
        .expect("manifest");
    start.elapsed()
}

/// An image with `layers` small layers, its blobs stored in `repo`; returns the manifest.
async fn image(reg: &Registry, repo: &RepoName, arch: &str, layers: usize, seed: usize) -> Vec<u8> {
    let config = serde_json::to_vec(
        &json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "config": {}}),
    )
    .expect("json");
    put_blob(reg, repo, config.clone()).await;
    let mut descs = Vec::new();
    for i in 0..layers {
        let layer = format!("layer {seed} {i}").into_bytes();
        put_blob(reg, repo, layer.clone()).await;
        descs.push(desc("application/vnd.oci.image.layer.v1.tar", &layer));
    }
    serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", &config), "layers": descs,
    }))
    .expect("json")
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let mean = v.iter().map(Duration::as_secs_f64).sum::<f64>() / v.len() as f64;
    let p99 = v[(v.len() * 99 / 100).min(v.len() - 1)].as_secs_f64();
    (mean * 1000.0, p99 * 1000.0)
}

#[tokio::main]
async fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: hookbench <data-dir>");
        std::process::exit(2)
    });
    let mut cfg = gatehouse::config::Config::load(None, &gatehouse::config::ProcessEnv).expect("settings");
    if std::env::var_os("HOOKBENCH_TRACE").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(&cfg.log))
            .init();
    }
    cfg.data_dir = dir.into();
    let db = gatehouse::app::open_database(&cfg).await.expect("open database");
    let reg: Registry = gatehouse::app::open_store(&cfg, &db).await.expect("open store");

    // 1. The copy of a 10-architecture index of 50-layer images.
    let push: RepoName = "bench/big/app/push".parse().expect("name");
    reg.ensure_push_pair(push.as_str(), "bench/big/app")
        .await
        .expect("pair");
    let mut children = Vec::new();
    for (i, arch) in [
        "amd64", "arm64", "ppc64le", "s390x", "386", "arm", "mips64le", "riscv64", "loong64", "wasm",
    ]
    .iter()
    .enumerate()
    {
        let m = image(&reg, &push, arch, 50, i).await;
        put_manifest(&reg, &push, &digest(&m), OCI_MANIFEST, &m).await;
        let mut d = desc(OCI_MANIFEST, &m);
        d["platform"] = json!({"architecture": arch, "os": "linux"});
        children.push(d);
    }
    let index =
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})).expect("json");
    // Untagged child pushes made versions too; the index push is the one measured.
    let with_copy = put_manifest(&reg, &push, "1.0", OCI_INDEX, &index).await;
    let plain: RepoName = "bench/big/plain".parse().expect("name");
    let mut plain_children = Vec::new();
    for (i, arch) in [
        "amd64", "arm64", "ppc64le", "s390x", "386", "arm", "mips64le", "riscv64", "loong64", "wasm",
    ]
    .iter()
    .enumerate()
    {
        let m = image(&reg, &plain, arch, 50, i).await;
        put_manifest(&reg, &plain, &digest(&m), OCI_MANIFEST, &m).await;
        plain_children.push(m);
    }
    let without_copy = put_manifest(&reg, &plain, "1.0", OCI_INDEX, &index).await;
    let copy_ms = (with_copy.saturating_sub(without_copy)).as_secs_f64() * 1000.0;
    println!(
        "index_copy_ms={copy_ms:.2} index_put_with_hook_ms={:.2} index_put_plain_ms={:.2}",
        with_copy.as_secs_f64() * 1000.0,
        without_copy.as_secs_f64() * 1000.0
    );

    // 2. 200 tags in a row, with and without the hook.
    let mut results = Vec::new();
    for (name, paired) in [("bench/tags/plain", false), ("bench/tags/app/push", true)] {
        let repo: RepoName = name.parse().expect("name");
        if paired {
            reg.ensure_push_pair(name, "bench/tags/app").await.expect("pair");
        }
        let m = image(&reg, &repo, "amd64", 5, 1000).await;
        let mut lat = Vec::new();
        for t in 0..200 {
            lat.push(put_manifest(&reg, &repo, &format!("t{t}"), OCI_MANIFEST, &m).await);
        }
        results.push(stats(lat));
    }
    let ((plain_mean, plain_p99), (hook_mean, hook_p99)) = (results[0], results[1]);
    println!(
        "tags_plain_mean_ms={plain_mean:.2} tags_plain_p99_ms={plain_p99:.2} tags_hook_mean_ms={hook_mean:.2} tags_hook_p99_ms={hook_p99:.2} ratio={:.2}",
        hook_mean / plain_mean
    );
}
