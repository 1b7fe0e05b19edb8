//! The gateway in front of a backend reached over HTTP: a separately started gatehouse
//! store, and Debian's docker-registry (Distribution 2.8). Names, `Location`s (with the
//! backend's own `_state`), ranges and error bodies pass through.

mod common;

use common::distribution::start_distribution;
use common::gateway::{ADMIN_PASSWORD, TestGateway, push_image_with};
use common::{OCI_MANIFEST, TestServer, http};
use serde_json::Value;

async fn exercise(gw: &TestGateway, backend_base: &str) {
    gw.create_org("acme").await;
    let token = gw
        .token(
            Some(("admin", ADMIN_PASSWORD)),
            &[
                "repository:acme/web/app:pull,push,delete",
                "repository:acme/app:pull,push",
            ],
        )
        .await;
    let c = http();

    // A complete push through the gateway, then the bytes back.
    let (status, manifest) = push_image_with(gw, &token, "acme/web/app", "1.0", 21).await;
    assert_eq!(status, 201);
    let got = c
        .get(gw.url("/v2/acme/web/app/manifests/1.0"))
        .header("accept", OCI_MANIFEST)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), manifest.as_slice());
    // The backend holds it under the backend name.
    let direct = c
        .get(format!("{backend_base}/v2/acme/web/app/manifests/1.0"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 200);

    // Chunked upload: every Location is public and keeps the backend's query.
    let blob = common::random_bytes(200_000, 22);
    let r = c
        .post(gw.url("/v2/acme/app/blobs/uploads/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mut location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/v2/acme/app/blobs/uploads/"), "{location}");
    for (i, chunk) in blob.chunks(100_000).enumerate() {
        let start = i * 100_000;
        let r = c
            .patch(gw.url(&location))
            .bearer_auth(&token)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{start}-{}", start + chunk.len() - 1))
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        location = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with("/v2/acme/app/blobs/uploads/"), "{location}");
    }
    let sep = if location.contains('?') { '&' } else { '?' };
    let d = common::digest(&blob);
    let r = c
        .put(gw.url(&format!("{location}{sep}digest={d}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/v2/acme/app/blobs/{d}")
    );

    // Ranges and digests pass through.
    let r = c
        .get(gw.url(&format!("/v2/acme/app/blobs/{d}")))
        .bearer_auth(&token)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &blob[10..20]);

    // Error bodies pass through unchanged.
    let r = c
        .get(gw.url("/v2/acme/web/app/manifests/nope"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(common::error_code(r).await, "MANIFEST_UNKNOWN");

    // Tags list shows the public name.
    let tags: Value = c
        .get(gw.url("/v2/acme/web/app/tags/list"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["name"], "acme/web/app");
    assert_eq!(tags["tags"], serde_json::json!(["1.0"]));
}

#[tokio::test]
async fn gateway_in_front_of_a_separate_gatehouse_store() {
    let store = TestServer::start().await;
    let base = format!("http://{}", store.addr);
    let gw = TestGateway::start_with(false, |cfg| cfg.backend = Some(base.clone())).await;
    exercise(&gw, &base).await;
}

#[tokio::test]
async fn an_unreachable_backend_is_a_503_with_an_oci_error() {
    // A port with nothing behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = TestGateway::start_with(false, |cfg| cfg.backend = Some(format!("http://127.0.0.1:{port}"))).await;
    gw.create_org("acme").await;
    let token = gw
        .token(Some(("admin", ADMIN_PASSWORD)), &["repository:acme/web/app:pull"])
        .await;
    let r = http()
        .get(gw.url("/v2/acme/web/app/manifests/1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(common::error_code(r).await, "UNAVAILABLE");
}

#[tokio::test]
async fn gateway_in_front_of_distribution() {
    let dist = start_distribution();
    let base = dist.base.clone();
    let gw = TestGateway::start_with(false, |cfg| cfg.backend = Some(base.clone())).await;
    exercise(&gw, &dist.base).await;
}
