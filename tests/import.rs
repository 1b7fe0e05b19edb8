//! Importing image archives made by real clients (podman save, skopeo oci-archive) into
//! a versioned repository, and refusing broken ones with nothing stored.

mod common;

use common::clients::{Podman, Skopeo};
use common::gateway::{ADMIN_PASSWORD, TestGateway};
use common::http;
use serde_json::{Value, json};

async fn import(gw: &TestGateway, repo: &str, query: &str, body: Vec<u8>) -> (u16, Value) {
    let r = http()
        .post(gw.url(&format!("/api/v1/repositories/{repo}/import{query}")))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("content-type", "application/x-tar")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn versions(gw: &TestGateway, repo: &str) -> usize {
    let (s, v) = gw
        .api(
            "GET",
            &format!("/api/v1/repositories/{repo}/versions"),
            ("admin", ADMIN_PASSWORD),
            None,
        )
        .await;
    if s == 404 {
        return 0;
    }
    v["versions"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_save_and_skopeo_oci_archives_import_as_versions() {
    let gw = TestGateway::start().await;
    gw.create_org("acme").await;
    let work = tempfile::tempdir().unwrap();
    let (docker_tar, oci_tar) = {
        let work = work.path().to_owned();
        tokio::task::spawn_blocking(move || {
            let p = Podman::new();
            p.import_files("localhost/app:1.0", &[("etc/hello", b"imported by test")]);
            let docker = p.save_archive("localhost/app:1.0");
            // An OCI archive as skopeo writes it, from a layout made offline.
            let layout = work.join("layout");
            let config = common::config_blob("arm64");
            let layer = common::random_bytes(4000, 5);
            let manifest = common::image_manifest(&config, &[&layer], json!({}));
            common::write_oci_layout(&layout, &[&config, &layer], &[(&manifest, common::OCI_MANIFEST, "2.0")]);
            let archive = work.join("image.tar");
            Skopeo::new().copy(
                &[],
                &format!("oci:{}:2.0", layout.display()),
                &format!("oci-archive:{}:2.0", archive.display()),
            );
            (docker, std::fs::read(&archive).unwrap())
        })
        .await
        .unwrap()
    };

    let (s, v) = import(&gw, "acme/web/app", "", docker_tar).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["import"]["format"], "docker-archive");
    assert_eq!(v["import"]["tags"], json!(["1.0"]));
    let (s, v) = import(&gw, "acme/web/app", "", oci_tar).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["import"]["format"], "oci-archive");
    assert_eq!(versions(&gw, "acme/web/app").await, 2);

    // Both pull with podman from the gateway: the imported file is in the image.
    let token = gw
        .token(Some(("admin", ADMIN_PASSWORD)), &["repository:acme/web/app:pull"])
        .await;
    let r = http()
        .get(gw.url("/v2/acme/web/app/manifests/2.0"))
        .header("accept", common::OCI_MANIFEST)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let host = format!("{}", gw.addr);
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let out = tempfile::tempdir().unwrap();
    let out_path = out.path().to_owned();
    tokio::task::spawn_blocking(move || {
        Skopeo::new().copy(
            &["--src-creds", &creds],
            &format!("docker://{host}/acme/web/app:1.0"),
            &format!("oci:{}:1.0", out_path.display()),
        );
    })
    .await
    .unwrap();
    let index: Value = serde_json::from_slice(&std::fs::read(out.path().join("index.json")).unwrap()).unwrap();
    assert!(index["manifests"][0]["digest"].is_string());
}

#[tokio::test]
async fn broken_archives_are_refused_and_store_nothing() {
    let gw = TestGateway::start().await;
    gw.create_org("acme").await;
    // A valid OCI archive, built by hand, then broken in different ways.
    let config = common::config_blob("amd64");
    let layer = common::random_bytes(3000, 6);
    let manifest = common::image_manifest(&config, &[&layer], json!({}));
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{ "mediaType": common::OCI_MANIFEST, "digest": common::digest(&manifest), "size": manifest.len(),
                        "annotations": {"org.opencontainers.image.ref.name": "1.0"} }]
    }))
    .unwrap();
    let build = common::tar_of;
    let blob = common::layout_file;
    let good = vec![
        ("oci-layout".to_owned(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        blob(&config),
        blob(&layer),
        blob(&manifest),
        ("index.json".to_owned(), index.clone()),
    ];
    let good_tar = build(&good);

    // Truncated in the middle of the layer.
    let (s, v) = import(&gw, "acme/web/app", "", good_tar[..1800].to_vec()).await;
    assert!((400..500).contains(&s), "{s} {v}");
    // A layer whose bytes do not match its name.
    let mut tampered = good.clone();
    tampered[2].1[0] ^= 0xff;
    let (s, v) = import(&gw, "acme/web/app", "", build(&tampered)).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["error"]["message"].as_str().map(|m| m.contains("does not match")),
        Some(true),
        "{v}"
    );
    // A layer missing altogether.
    let missing: Vec<_> = good.iter().filter(|(n, _)| *n != blob(&layer).0).cloned().collect();
    let (s, v) = import(&gw, "acme/web/app", "", build(&missing)).await;
    assert_eq!(s, 400, "{v}");
    // Not an archive at all.
    let (s, _) = import(&gw, "acme/web/app", "", b"hello".to_vec()).await;
    assert_eq!(s, 400);
    assert_eq!(
        versions(&gw, "acme/web/app").await,
        0,
        "no version from any broken archive"
    );

    // The good one works, with the tag from the index.
    let (s, v) = import(&gw, "acme/web/app", "", good_tar).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["import"]["tags"], json!(["1.0"]));
}
