//! A full disk: the data directory (database, blobs, upload staging) on a small tmpfs of
//! its own. Pushes that run out of space fail with a clear OCI error and leave nothing
//! behind, pulls go on, the server recovers once space is freed, and the database
//! passes SQLite's integrity check. Mounting needs root (as the CI runs): without it the
//! test fails saying so, it never skips.

mod common;

use common::gateway::{ADMIN_PASSWORD, TestGateway, push_blob, push_image_with};
use reqwest::StatusCode;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, megabytes: u32) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount(8)");
        assert!(
            out.status.success(),
            "the disk-full test mounts a {megabytes} MiB tmpfs and needs root for it: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir.to_owned())
    }

    fn free_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.0)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Leave about `leave` bytes free with a filler file.
fn fill(fs: &Tmpfs, filler: &Path, leave: u64) {
    let free = fs.free_bytes();
    let size = free.saturating_sub(leave);
    std::fs::write(filler, vec![0u8; size as usize]).unwrap();
}

async fn error_of(r: reqwest::Response) -> (StatusCode, String) {
    (r.status(), common::error_code(r).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_pushes_cleanly_keeps_serving_pulls_and_recovers() {
    let base = tempfile::tempdir().unwrap();
    let data = base.path().join("data");
    let fs = Tmpfs::mount(&data, 64);
    // Everything on the small disk: the embedded database and local blobs, on every
    // pass of the suite (PostgreSQL and S3 have disks of their own).
    let gw = TestGateway::start_with(false, |cfg| {
        cfg.data_dir = data.clone();
        cfg.database = None;
        cfg.blobs = None;
    })
    .await;
    gw.create_org("acme").await;
    gw.create_product("acme", "web", false).await;
    let token = gw
        .token(Some(("admin", ADMIN_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    let (status, manifest) = push_image_with(&gw, &token, "acme/web/app", "1.0", 1).await;
    assert_eq!(status, 201);

    // The disk fills up (something else wrote to it): 2 MiB left.
    let filler = data.join("filler");
    fill(&fs, &filler, 2 * 1024 * 1024);
    let before = fs.free_bytes();
    // A refused body is not read to its end, so the server closes that connection: each
    // step below uses a client of its own rather than a connection that may be closing.
    let c = gw.client();
    let big = common::random_bytes(8 * 1024 * 1024, 7);
    let d = common::digest(&big);

    // A monolithic push: a clear error, and nothing of it kept.
    let r = c
        .post(gw.url(&format!("/v2/acme/web/app/blobs/uploads/?digest={d}")))
        .bearer_auth(&token)
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (StatusCode::INSUFFICIENT_STORAGE, "STORAGE_FULL".to_owned())
    );
    let c = gw.client();
    let r = c
        .head(gw.url(&format!("/v2/acme/web/app/blobs/{d}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no partial blob is visible");
    assert!(fs.free_bytes() + 256 * 1024 >= before, "the staged part was removed");

    // A chunked push: the chunk that does not fit is refused, the session stays usable.
    let r = c
        .post(gw.url("/v2/acme/web/app/blobs/uploads/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let session = r.headers()["location"].to_str().unwrap().to_owned();
    let r = c
        .patch(gw.url(&session))
        .bearer_auth(&token)
        .header("content-range", format!("0-{}", big.len() - 1))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (StatusCode::INSUFFICIENT_STORAGE, "STORAGE_FULL".to_owned())
    );
    let c = gw.client();
    let r = c.get(gw.url(&session)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["range"],
        "0-0",
        "the refused chunk left nothing in the session"
    );

    // Pulls go on meanwhile.
    let r = c
        .get(gw.url("/v2/acme/web/app/manifests/1.0"))
        .bearer_auth(&token)
        .header("accept", common::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &manifest[..]);
    let doc: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let layer = doc["layers"][0]["digest"].as_str().unwrap();
    let r = c
        .get(gw.url(&format!("/v2/acme/web/app/blobs/{layer}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(common::digest(&r.bytes().await.unwrap()), layer);

    // Space comes back: the same pushes now succeed, without a restart.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(push_blob(&gw, &token, "acme/web/app", &big).await, 201);
    let (status, _) = push_image_with(&gw, &token, "acme/web/app", "2.0", 2).await;
    assert_eq!(status, 201);
    let r = c
        .patch(gw.url(&session))
        .bearer_auth(&token)
        .header("content-range", format!("0-{}", big.len() - 1))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "the session refused earlier takes the chunk now");

    // The database, which shared the full disk, is intact.
    drop(gw);
    let db = data.join("meta.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    pool.close().await;
}
