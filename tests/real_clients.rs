//! The store driven by the real clients, podman and skopeo, over the real protocol.
//! Images are made offline: a tarball imported into podman, or an OCI layout written
//! here. Every test checks that what comes back is byte-for-byte what went in.

mod common;

use common::clients::{Podman, Skopeo};
use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn podman_push_then_pull_into_fresh_storage() {
    let srv = TestServer::start().await;
    let secret_content = random_bytes(64, 21);
    let hex: String = secret_content.iter().map(|b| format!("{b:02x}")).collect();
    let pusher = Podman::new();
    pusher.import_files("localhost/app:1.0", &[("etc/marker", hex.as_bytes())]);
    let remote = format!("{}/acme/web/app:1.0", srv.host());
    let out = tokio::task::spawn_blocking(move || {
        pusher.run(&["push", "--tls-verify=false", "localhost/app:1.0", &remote]);
        let puller = Podman::new();
        puller.run(&["pull", "--tls-verify=false", &remote]);
        let archive = puller.save_archive(&remote);
        let digest = puller
            .run(&["image", "inspect", "--format", "{{.Digest}}", &remote])
            .stdout;
        (archive, String::from_utf8(digest).unwrap())
    })
    .await
    .unwrap();
    let (archive, pulled_digest) = out;
    // The saved archive holds the uncompressed layer, so the file's bytes appear verbatim.
    assert!(
        archive.windows(hex.len()).any(|w| w == hex.as_bytes()),
        "pulled image has the pushed file"
    );
    let r = http()
        .head(srv.url("/v2/acme/web/app/manifests/1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["docker-content-digest"].to_str().unwrap(),
        pulled_digest.trim()
    );
    let tags: Value = get_json(&http(), &srv.url("/v2/acme/web/app/tags/list")).await;
    assert_eq!(tags["tags"], json!(["1.0"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_copies_a_multi_arch_index_both_ways_unchanged() {
    let srv = TestServer::start().await;
    let src = tempfile::tempdir().unwrap();
    let (cfg_a, cfg_b) = (config_blob("amd64"), config_blob("arm64"));
    let (layer_a, layer_b) = (random_bytes(300_000, 22), random_bytes(200_000, 23));
    let man_a = image_manifest(&cfg_a, &[&layer_a], json!({}));
    let man_b = image_manifest(&cfg_b, &[&layer_b], json!({}));
    let index = index_manifest(&[(&man_a, "amd64"), (&man_b, "arm64")]);
    write_oci_layout(
        src.path(),
        &[&cfg_a, &cfg_b, &layer_a, &layer_b, &man_a, &man_b],
        &[(&index, OCI_INDEX, "multi")],
    );

    let dst = tempfile::tempdir().unwrap();
    let (s, d, host) = (src.path().to_owned(), dst.path().to_owned(), srv.host());
    tokio::task::spawn_blocking(move || {
        let skopeo = Skopeo::new();
        let remote = format!("docker://{host}/acme/multi:2.0");
        skopeo.copy(
            &["--all", "--preserve-digests"],
            &format!("oci:{}:multi", s.display()),
            &remote,
        );
        skopeo.copy(
            &["--all", "--preserve-digests"],
            &remote,
            &format!("oci:{}:multi", d.display()),
        );
    })
    .await
    .unwrap();

    let r = http()
        .get(srv.url("/v2/acme/multi/manifests/2.0"))
        .header("accept", OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["docker-content-digest"].to_str().unwrap(), digest(&index));
    for blob in [&index, &man_a, &man_b, &cfg_a, &cfg_b, &layer_a, &layer_b] {
        assert_eq!(
            &layout_blob(dst.path(), &digest(blob)),
            blob,
            "round-tripped {}",
            digest(blob)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_copies_an_artifact_with_annotations_and_referrers_list_it() {
    let srv = TestServer::start().await;
    let src = tempfile::tempdir().unwrap();
    let cfg = config_blob("amd64");
    let layer = random_bytes(1000, 24);
    let image = image_manifest(&cfg, &[&layer], json!({}));
    let empty = b"{}".to_vec();
    let sbom = br#"{"spdxVersion":"SPDX-2.3","name":"app"}"#.to_vec();
    let artifact = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": digest(&empty), "size": 2 },
        "layers": [{ "mediaType": "application/spdx+json", "digest": digest(&sbom), "size": sbom.len(),
                     "annotations": { "org.opencontainers.image.title": "sbom.spdx.json" } }],
        "subject": descriptor(OCI_MANIFEST, &image),
        "annotations": { "org.example.scanner": "syft", "org.opencontainers.image.created": "2026-11-23T10:00:00Z" }
    }))
    .unwrap();
    write_oci_layout(
        src.path(),
        &[&cfg, &layer, &empty, &sbom],
        &[(&image, OCI_MANIFEST, "app"), (&artifact, OCI_MANIFEST, "sbom")],
    );
    let dst = tempfile::tempdir().unwrap();
    let (s, d, host) = (src.path().to_owned(), dst.path().to_owned(), srv.host());
    let raw = tokio::task::spawn_blocking(move || {
        let skopeo = Skopeo::new();
        skopeo.copy(
            &["--preserve-digests"],
            &format!("oci:{}:app", s.display()),
            &format!("docker://{host}/acme/app:1.0"),
        );
        skopeo.copy(
            &["--preserve-digests"],
            &format!("oci:{}:sbom", s.display()),
            &format!("docker://{host}/acme/app:sbom"),
        );
        skopeo.copy(
            &["--preserve-digests"],
            &format!("docker://{host}/acme/app:sbom"),
            &format!("oci:{}:sbom", d.display()),
        );
        skopeo.inspect_raw(&format!("docker://{host}/acme/app:sbom"))
    })
    .await
    .unwrap();
    assert_eq!(raw, artifact, "artifact manifest is served byte-for-byte");
    assert_eq!(layout_blob(dst.path(), &digest(&sbom)), sbom);

    let r = http()
        .get(srv.url(&format!("/v2/acme/app/referrers/{}", digest(&image))))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["manifests"][0]["digest"], digest(&artifact).as_str());
    assert_eq!(v["manifests"][0]["artifactType"], "application/spdx+json");
    assert_eq!(v["manifests"][0]["annotations"]["org.example.scanner"], "syft");
}
