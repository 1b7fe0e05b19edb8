//! Push repositories, versioned normal repositories and the post-push hook, through the
//! real gateway: versions with summaries, read-your-writes, rollback, deletions as
//! versions, index closure, concurrent first pushes, jobs and events, GC; and, at the
//! store's API, what a push may take from its normal repository.

mod common;

use common::gateway::{ADMIN_PASSWORD, TestGateway, push_image_with};
use common::{OCI_INDEX, OCI_MANIFEST, http};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: (&str, &str) = ("admin", ADMIN_PASSWORD);

async fn setup() -> (TestGateway, String) {
    let gw = TestGateway::start().await;
    gw.create_org("acme").await;
    let token = gw
        .token(
            Some(ADMIN),
            &[
                "repository:acme/web/app:pull,push,delete",
                "repository:acme/web/multi:pull,push",
                "repository:acme/race:pull,push",
            ],
        )
        .await;
    (gw, token)
}

async fn versions(gw: &TestGateway, repo: &str) -> Vec<Value> {
    let (status, v) = gw
        .api("GET", &format!("/api/v1/repositories/{repo}/versions"), ADMIN, None)
        .await;
    assert_eq!(status, 200, "{v}");
    v["versions"].as_array().unwrap().clone()
}

async fn get_manifest(gw: &TestGateway, token: &str, repo: &str, reference: &str) -> (StatusCode, Vec<u8>) {
    let r = http()
        .get(gw.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn each_push_is_a_new_version_readable_at_once() {
    let (gw, token) = setup().await;
    let (status, m1) = push_image_with(&gw, &token, "acme/web/app", "1.0", 1).await;
    assert_eq!(status, 201);
    // The push was audited with the version its copy made.
    let (_, audit) = gw.api("GET", "/api/v1/orgs/acme/audit", ADMIN, None).await;
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "push" && e["detail"] == "repository version 1"),
        "{audit}"
    );
    // Read-your-writes: served from the normal repository right after the PUT.
    assert_eq!(
        get_manifest(&gw, &token, "acme/web/app", "1.0").await,
        (StatusCode::OK, m1.clone())
    );
    let (status, m2) = push_image_with(&gw, &token, "acme/web/app", "1.1", 2).await;
    assert_eq!(status, 201);
    assert_eq!(get_manifest(&gw, &token, "acme/web/app", "1.1").await.1, m2);

    let v = versions(&gw, "acme/web/app").await;
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(v[0]["number"], 2);
    assert_eq!(v[0]["reason"], "push 1.1");
    // Same config blob, a new layer.
    assert_eq!(
        v[0]["summary"]["added"],
        json!({"tags": 1, "manifests": 1, "blobs": 1, "signatures": 0})
    );
    assert_eq!(
        v[0]["summary"]["removed"],
        json!({"tags": 0, "manifests": 0, "blobs": 0, "signatures": 0})
    );
    assert_eq!(
        v[0]["summary"]["present"],
        json!({"tags": 2, "manifests": 2, "blobs": 3, "signatures": 0})
    );
    assert_eq!(
        v[1]["summary"]["added"],
        json!({"tags": 1, "manifests": 1, "blobs": 2, "signatures": 0})
    );

    // Version detail lists its tags.
    let (_, detail) = gw
        .api("GET", "/api/v1/repositories/acme/web/app/versions/1", ADMIN, None)
        .await;
    assert_eq!(detail["tags"].as_object().unwrap().len(), 1);
    assert!(detail["tags"]["1.0"].as_str().unwrap().starts_with("sha256:"));
    let (_, v2) = gw
        .api("GET", "/api/v1/repositories/acme/web/app/versions/2", ADMIN, None)
        .await;
    let added = v2["diff"]["added"].as_array().unwrap();
    assert_eq!(added.len(), 3, "{v2}");
    assert!(added.iter().any(|i| i["kind"] == "tag" && i["name"] == "1.1"));
    assert_eq!(v2["diff"]["removed"], json!([]));

    // A push of the same content changes nothing: no new version.
    let (status, _) = push_image_with(&gw, &token, "acme/web/app", "1.1", 2).await;
    assert_eq!(status, 201);
    assert_eq!(versions(&gw, "acme/web/app").await.len(), 2);

    // The push repository never shows in the catalog.
    let cat = gw.token(Some(ADMIN), &["registry:catalog:*"]).await;
    let list: Value = http()
        .get(gw.url("/v2/_catalog"))
        .bearer_auth(cat)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["repositories"], json!(["acme/web/app"]));
}

#[tokio::test]
async fn rollback_makes_a_new_version_equal_to_an_old_one() {
    let (gw, token) = setup().await;
    let (_, m1) = push_image_with(&gw, &token, "acme/web/app", "1.0", 3).await;
    let (_, _m2) = push_image_with(&gw, &token, "acme/web/app", "1.0", 4).await; // the tag moves
    let (status, v) = gw
        .api(
            "POST",
            "/api/v1/repositories/acme/web/app/rollback",
            ADMIN,
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["version"], 3);
    assert_eq!(get_manifest(&gw, &token, "acme/web/app", "1.0").await.1, m1);
    let list = versions(&gw, "acme/web/app").await;
    assert_eq!(list[0]["reason"], "rollback to version 1");

    // Bad rollbacks: a clear 4xx and no new version.
    for (body, status) in [
        (json!({"version": 99}), 404),
        (json!({"version": 0}), 400),
        (json!({"versoin": 1}), 400),
    ] {
        let (s, err) = gw
            .api(
                "POST",
                "/api/v1/repositories/acme/web/app/rollback",
                ADMIN,
                Some(body.clone()),
            )
            .await;
        assert_eq!(s.as_u16(), status, "{body}: {err}");
        assert!(err["error"]["message"].is_string());
    }
    let (s, _) = gw
        .api(
            "POST",
            "/api/v1/repositories/acme/web/none/rollback",
            ADMIN,
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(versions(&gw, "acme/web/app").await.len(), 3);
}

#[tokio::test]
async fn deleting_a_tag_or_manifest_is_a_version_too() {
    let (gw, token) = setup().await;
    push_image_with(&gw, &token, "acme/web/app", "1.0", 5).await;
    let (_, m) = push_image_with(&gw, &token, "acme/web/app", "2.0", 6).await;
    let c = http();
    let r = c
        .delete(gw.url("/v2/acme/web/app/manifests/1.0"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(get_manifest(&gw, &token, "acme/web/app", "1.0").await.0, 404);
    let d = common::digest(&m);
    let r = c
        .delete(gw.url(&format!("/v2/acme/web/app/manifests/{d}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(get_manifest(&gw, &token, "acme/web/app", "2.0").await.0, 404);
    let v = versions(&gw, "acme/web/app").await;
    assert_eq!(v[1]["reason"], "delete tag 1.0");
    assert_eq!(v[0]["reason"], format!("delete manifest {d}"));
    assert_eq!(v[0]["summary"]["removed"]["manifests"], 1);
}

#[tokio::test]
async fn an_index_brings_its_children() {
    let (gw, token) = setup().await;
    let c = http();
    let mut children = Vec::new();
    for (arch, seed) in [("amd64", 7u64), ("arm64", 8)] {
        let config = common::config_blob(arch);
        let layer = common::random_bytes(1000, seed);
        for blob in [&config, &layer] {
            let d = common::digest(blob);
            let r = c
                .post(gw.url(&format!("/v2/acme/web/multi/blobs/uploads/?digest={d}")))
                .bearer_auth(&token)
                .body(blob.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
        let m = common::image_manifest(&config, &[&layer], json!({}));
        let r = c
            .put(gw.url(&format!("/v2/acme/web/multi/manifests/{}", common::digest(&m))))
            .bearer_auth(&token)
            .header("content-type", OCI_MANIFEST)
            .body(m.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        children.push((m, arch));
    }
    let refs: Vec<(&[u8], &str)> = children.iter().map(|(m, a)| (m.as_slice(), *a)).collect();
    let index = common::index_manifest(&refs);
    let r = c
        .put(gw.url("/v2/acme/web/multi/manifests/latest"))
        .bearer_auth(&token)
        .header("content-type", OCI_INDEX)
        .body(index.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(get_manifest(&gw, &token, "acme/web/multi", "latest").await.1, index);
    for (m, _) in &children {
        assert_eq!(
            get_manifest(&gw, &token, "acme/web/multi", &common::digest(m)).await.1,
            *m
        );
    }
    let (_, detail) = gw
        .api("GET", "/api/v1/repositories/acme/web/multi/versions", ADMIN, None)
        .await;
    let latest = &detail["versions"][0];
    assert_eq!(latest["summary"]["present"]["manifests"], 3, "{detail}");
    assert_eq!(latest["summary"]["present"]["blobs"], 4, "{detail}");
}

#[tokio::test]
async fn concurrent_first_pushes_to_a_new_repository_both_succeed() {
    let (gw, token) = setup().await;
    let (a, b) = tokio::join!(
        push_image_with(&gw, &token, "acme/race", "a", 9),
        push_image_with(&gw, &token, "acme/race", "b", 10)
    );
    assert_eq!((a.0, b.0), (StatusCode::CREATED, StatusCode::CREATED));
    let (_, products) = gw.api("GET", "/api/v1/orgs/acme/products", ADMIN, None).await;
    assert_eq!(products.as_array().unwrap().len(), 1, "{products}");
    let v = versions(&gw, "acme/race").await;
    assert_eq!(v[0]["summary"]["present"]["tags"], 2);
    for tag in ["a", "b"] {
        assert_eq!(get_manifest(&gw, &token, "acme/race", tag).await.0, 200);
    }
}

#[tokio::test]
async fn jobs_and_content_events_are_visible() {
    let (gw, token) = setup().await;
    push_image_with(&gw, &token, "acme/web/app", "1.0", 11).await;
    let (status, jobs) = gw.api("GET", "/api/v1/jobs?state=done", ADMIN, None).await;
    assert_eq!(status, 200);
    let job = &jobs["jobs"][0];
    assert_eq!(job["kind"], "post_push");
    assert_eq!(job["payload"]["normal_repository"], "acme/web/app");
    assert_eq!(job["payload"]["change"]["tags"], json!(["1.0"]));
    let (_, queued) = gw.api("GET", "/api/v1/jobs?state=queued", ADMIN, None).await;
    assert_eq!(queued["jobs"], json!([]));
    let (status, _) = gw.api("GET", "/api/v1/jobs?state=bogus", ADMIN, None).await;
    assert_eq!(status, 400);
    let (_, events) = gw.api("GET", "/api/v1/events", ADMIN, None).await;
    assert_eq!(events["events"][0]["repository"], "acme/web/app");
    assert_eq!(events["events"][0]["version"], 1);
}

#[tokio::test]
async fn garbage_collection_keeps_what_old_versions_reference() {
    let (gw, token) = setup().await;
    let (_, m1) = push_image_with(&gw, &token, "acme/web/app", "1.0", 12).await;
    let d1 = common::digest(&m1);
    push_image_with(&gw, &token, "acme/web/app", "2.0", 13).await;
    // Remove 1.0's manifest everywhere current, then collect with no grace period.
    let r = http()
        .delete(gw.url(&format!("/v2/acme/web/app/manifests/{d1}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let registry = gw.gateway.versioned().unwrap().clone();
    gatehouse::store::gc::collect(&registry, std::time::Duration::ZERO)
        .await
        .unwrap();
    // Version 1 still has it: rolling back brings it back, bytes and all.
    let (status, _) = gw
        .api(
            "POST",
            "/api/v1/repositories/acme/web/app/rollback",
            ADMIN,
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        get_manifest(&gw, &token, "acme/web/app", "1.0").await,
        (StatusCode::OK, m1.clone())
    );
    let manifest: Value = serde_json::from_slice(&m1).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let r = http()
        .get(gw.url(&format!("/v2/acme/web/app/blobs/{layer}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(common::digest(&r.bytes().await.unwrap()), layer);
}

#[tokio::test]
async fn content_operations_copy_remove_tag_untag() {
    let (gw, token) = setup().await;
    let (_, m1) = push_image_with(&gw, &token, "acme/web/app", "1.0", 20).await;
    let d1 = common::digest(&m1);
    let dest = gw.token(Some(ADMIN), &["repository:acme/prod/app:pull,push"]).await;
    let post = |op: &'static str, body: Value| {
        let gw = &gw;
        async move {
            gw.api(
                "POST",
                &format!("/api/v1/repositories/acme/prod/app/{op}"),
                ADMIN,
                Some(body),
            )
            .await
        }
    };

    // Copy a tag into a repository that does not exist yet: created, version 1.
    let (s, v) = post("copy", json!({"from": "acme/web/app", "tags": ["1.0"]})).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["version"], 1);
    assert_eq!(
        get_manifest(&gw, &dest, "acme/prod/app", "1.0").await,
        (StatusCode::OK, m1.clone())
    );

    // Tag and untag by digest.
    let (s, v) = post("tag", json!({"digest": d1, "tag": "stable"})).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(get_manifest(&gw, &dest, "acme/prod/app", "stable").await.0, 200);
    let (s, _) = post("untag", json!({"tag": "1.0"})).await;
    assert_eq!(s, 201);
    assert_eq!(get_manifest(&gw, &dest, "acme/prod/app", "1.0").await.0, 404);
    assert_eq!(
        get_manifest(&gw, &dest, "acme/prod/app", &d1).await.0,
        200,
        "untag keeps the manifest"
    );

    // Bad requests change nothing: unknown source tag, unknown source, bad digest, a
    // misspelt field, untag of a missing tag.
    let before = versions(&gw, "acme/prod/app").await.len();
    for (op, body, status) in [
        ("copy", json!({"from": "acme/web/app", "tags": ["nope"]}), 404),
        ("copy", json!({"from": "acme/web/none", "tags": ["1.0"]}), 404),
        ("copy", json!({"from": "acme/web/app"}), 400),
        ("tag", json!({"digest": "sha256:zz", "tag": "x"}), 400),
        ("tag", json!({"digets": d1, "tag": "x"}), 400),
        ("untag", json!({"tag": "never"}), 404),
        (
            "remove",
            json!({"digests": ["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}),
            404,
        ),
    ] {
        let (s, err) = post(op, body.clone()).await;
        assert_eq!(s.as_u16(), status, "{op} {body}: {err}");
        assert!(err["error"]["message"].is_string(), "{err}");
    }
    assert_eq!(versions(&gw, "acme/prod/app").await.len(), before);

    // Remove the manifest: its tags and blobs go with it.
    let (s, v) = post("remove", json!({"digests": [d1]})).await;
    assert_eq!(s, 201, "{v}");
    let latest = &versions(&gw, "acme/prod/app").await[0];
    assert_eq!(
        latest["summary"]["present"],
        json!({"tags": 0, "manifests": 0, "blobs": 0, "signatures": 0}),
        "{latest}"
    );
    assert_eq!(latest["summary"]["removed"]["blobs"], 2);
}

#[tokio::test]
async fn a_manifest_listed_by_an_index_is_removed_only_when_forced() {
    let (gw, token) = setup().await;
    let c = http();
    let config = common::config_blob("amd64");
    let layer = common::random_bytes(500, 30);
    for blob in [&config, &layer] {
        let r = c
            .post(gw.url(&format!(
                "/v2/acme/web/multi/blobs/uploads/?digest={}",
                common::digest(blob)
            )))
            .bearer_auth(&token)
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let child = common::image_manifest(&config, &[&layer], json!({}));
    let d = common::digest(&child);
    let r = c
        .put(gw.url(&format!("/v2/acme/web/multi/manifests/{d}")))
        .bearer_auth(&token)
        .header("content-type", OCI_MANIFEST)
        .body(child.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let index = common::index_manifest(&[(&child, "amd64")]);
    let r = c
        .put(gw.url("/v2/acme/web/multi/manifests/latest"))
        .bearer_auth(&token)
        .header("content-type", OCI_INDEX)
        .body(index)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let path = "/api/v1/repositories/acme/web/multi/remove";
    let (s, err) = gw.api("POST", path, ADMIN, Some(json!({"digests": [d]}))).await;
    assert_eq!(s, 403, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("index"), "{err}");
    let (s, _) = gw
        .api("POST", path, ADMIN, Some(json!({"digests": [d], "force": true})))
        .await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn retention_prunes_old_versions_and_lets_gc_collect_their_content() {
    let gw = TestGateway::start_with(false, |cfg| cfg.version_retention = 2).await;
    gw.create_org("acme").await;
    let token = gw
        .token(Some(ADMIN), &["repository:acme/web/app:pull,push,delete"])
        .await;
    let (_, m1) = push_image_with(&gw, &token, "acme/web/app", "1.0", 40).await;
    let d1 = common::digest(&m1);
    let layer1 = serde_json::from_slice::<Value>(&m1).unwrap()["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = http()
        .delete(gw.url(&format!("/v2/acme/web/app/manifests/{d1}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    push_image_with(&gw, &token, "acme/web/app", "2.0", 41).await;
    push_image_with(&gw, &token, "acme/web/app", "3.0", 42).await;
    let v = versions(&gw, "acme/web/app").await;
    let numbers: Vec<i64> = v.iter().map(|v| v["number"].as_i64().unwrap()).collect();
    assert_eq!(numbers, vec![4, 3]);
    let (s, _) = gw
        .api(
            "POST",
            "/api/v1/repositories/acme/web/app/rollback",
            ADMIN,
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(s, 404, "a pruned version is gone");

    let registry = gw.gateway.versioned().unwrap().clone();
    let report = gatehouse::store::gc::collect(&registry, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(report.manifests_dropped >= 1 && report.blobs_deleted >= 1, "{report:?}");
    assert_eq!(get_manifest(&gw, &token, "acme/web/app", &d1).await.0, 404);
    let r = http()
        .get(gw.url(&format!("/v2/acme/web/app/blobs/{layer1}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // What the kept versions hold is intact.
    for tag in ["2.0", "3.0"] {
        assert_eq!(get_manifest(&gw, &token, "acme/web/app", tag).await.0, 200);
    }
}

/// The distribution-spec flows that a conformance run exercises, through push and
/// normal repositories: untagged pushes, referrers by digest, mounts, blob deletion.
#[tokio::test]
async fn oci_flows_hold_across_push_and_normal_repositories() {
    let gw = TestGateway::start().await;
    gw.create_org("acme").await;
    let token = gw
        .token(
            Some(ADMIN),
            &[
                "repository:acme/web/a:pull,push,delete",
                "repository:acme/web/b:pull,push,delete",
            ],
        )
        .await;
    let c = http();
    let blob = |data: Vec<u8>, repo: &'static str| {
        let c = c.clone();
        let url = gw.url(&format!("/v2/{repo}/blobs/uploads/?digest={}", common::digest(&data)));
        let token = token.clone();
        async move {
            let r = c.post(url).bearer_auth(token).body(data).send().await.unwrap();
            assert_eq!(r.status(), 201);
        }
    };
    let config = common::config_blob("amd64");
    let layer = common::random_bytes(800, 50);
    blob(config.clone(), "acme/web/a").await;
    blob(layer.clone(), "acme/web/a").await;
    // An untagged manifest, then an artifact whose subject is it, both by digest.
    let subject = common::image_manifest(&config, &[&layer], json!({}));
    let sd = common::digest(&subject);
    let put = |repo: &'static str, reference: String, body: Vec<u8>| {
        let c = c.clone();
        let url = gw.url(&format!("/v2/{repo}/manifests/{reference}"));
        let token = token.clone();
        async move {
            c.put(url)
                .bearer_auth(token)
                .header("content-type", OCI_MANIFEST)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(put("acme/web/a", sd.clone(), subject.clone()).await, 201);
    let artifact = common::image_manifest(
        &config,
        &[&layer],
        json!({"artifactType": "application/vnd.example.sig", "subject": {"mediaType": OCI_MANIFEST, "digest": sd, "size": subject.len()}}),
    );
    let ad = common::digest(&artifact);
    assert_eq!(put("acme/web/a", ad.clone(), artifact).await, 201);
    assert_eq!(get_manifest(&gw, &token, "acme/web/a", &sd).await.0, 200);
    let refs: Value = c
        .get(gw.url(&format!("/v2/acme/web/a/referrers/{sd}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refs["manifests"][0]["digest"], ad.as_str(), "{refs}");

    // Mount from a repository whose blob was pushed but never tagged.
    let r = c
        .post(gw.url(&format!(
            "/v2/acme/web/b/blobs/uploads/?mount={}&from=acme/web/a",
            common::digest(&layer)
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "mounted");
    let r = c
        .head(gw.url(&format!("/v2/acme/web/b/blobs/{}", common::digest(&layer))))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Delete a manifest and a blob: both are gone for readers.
    let r = c
        .delete(gw.url(&format!("/v2/acme/web/a/manifests/{ad}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(get_manifest(&gw, &token, "acme/web/a", &ad).await.0, 404);
    let lone = common::random_bytes(300, 51);
    blob(lone.clone(), "acme/web/a").await;
    let url = gw.url(&format!("/v2/acme/web/a/blobs/{}", common::digest(&lone)));
    assert_eq!(c.delete(&url).bearer_auth(&token).send().await.unwrap().status(), 202);
    assert_eq!(c.get(&url).bearer_auth(&token).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn distributions_serve_the_latest_or_a_pinned_version() {
    let gw = TestGateway::start().await;
    gw.create_org("acme").await;
    let token = gw
        .token(
            Some(ADMIN),
            &[
                "repository:acme/web/app:pull,push",
                "repository:acme/prod/app:pull,push",
            ],
        )
        .await;
    push_image_with(&gw, &token, "acme/web/app", "1.0", 60).await;
    push_image_with(&gw, &token, "acme/web/app", "1.1", 61).await;
    let put = |body: Value| gw.api("PUT", "/api/v1/distributions/acme/prod/app", ADMIN, Some(body));
    let (s, v) = put(json!({"repository": "acme/web/app", "version": 1})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 1);
    assert_eq!(get_manifest(&gw, &token, "acme/prod/app", "1.0").await.0, 200);
    assert_eq!(
        get_manifest(&gw, &token, "acme/prod/app", "1.1").await.0,
        404,
        "pinned at version 1"
    );
    push_image_with(&gw, &token, "acme/web/app", "2.0", 62).await;
    assert_eq!(get_manifest(&gw, &token, "acme/prod/app", "2.0").await.0, 404);
    // A pinned distribution is read-only.
    let (status, _) = push_image_with(&gw, &token, "acme/prod/app", "x", 63).await;
    assert_eq!(status, 403);
    // Following the latest version.
    let (s, _) = put(json!({"repository": "acme/web/app", "version": null})).await;
    assert_eq!(s, 200);
    for tag in ["1.0", "1.1", "2.0"] {
        assert_eq!(get_manifest(&gw, &token, "acme/prod/app", tag).await.0, 200, "{tag}");
    }
    // Bad requests.
    let (s, _) = put(json!({"repository": "acme/web/app", "version": 42})).await;
    assert_eq!(s, 404);
    let (s, _) = put(json!({"repository": "acme/web/none"})).await;
    assert_eq!(s, 404);
    let (s, err) = put(json!({"repo": "acme/web/app"})).await;
    assert_eq!(s, 400, "{err}");
    let (s, _) = gw
        .api("DELETE", "/api/v1/distributions/acme/prod/app", ADMIN, None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(get_manifest(&gw, &token, "acme/prod/app", "1.0").await.0, 404);
}

#[tokio::test]
async fn the_naming_pattern_names_the_normal_repository() {
    let gw = TestGateway::start().await;
    gw.create_org("acme").await;
    let (s, err) = gw
        .api(
            "PATCH",
            "/api/v1/orgs/acme",
            ADMIN,
            Some(json!({"naming_pattern": "{org}/{name}"})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(err["error"]["field"], "naming_pattern");
    let (s, v) = gw
        .api(
            "PATCH",
            "/api/v1/orgs/acme",
            ADMIN,
            Some(json!({"naming_pattern": "{org}/{product}-released/{name}"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let token = gw
        .token(
            Some(ADMIN),
            &[
                "repository:acme/web/app:pull,push",
                "repository:acme/web-released/app:pull",
            ],
        )
        .await;
    let (_, m) = push_image_with(&gw, &token, "acme/web/app", "1.0", 70).await;
    assert_eq!(
        get_manifest(&gw, &token, "acme/web-released/app", "1.0").await,
        (StatusCode::OK, m.clone())
    );
    // The push path still reads what was pushed.
    assert_eq!(get_manifest(&gw, &token, "acme/web/app", "1.0").await.1, m);
    assert_eq!(versions(&gw, "acme/web-released/app").await.len(), 1);
}

#[tokio::test]
async fn deleting_a_repository_removes_it_whole_and_a_new_push_starts_afresh() {
    let (gw, token) = setup().await;
    let (_, m1) = push_image_with(&gw, &token, "acme/web/app", "1.0", 80).await;
    push_image_with(&gw, &token, "acme/web/app", "2.0", 81).await;
    gw.api(
        "POST",
        "/api/v1/repositories/acme/web/app/readme",
        ADMIN,
        Some(json!({"content": "# app"})),
    )
    .await;

    // A pusher may push but not delete the repository; someone outside the org does not
    // learn that it exists.
    gw.create_member("dev", "acme", "pusher", None).await;
    let dev = ("dev", common::gateway::USER_PASSWORD);
    let (s, err) = gw.api("DELETE", "/api/v1/repositories/acme/web/app", dev, None).await;
    assert_eq!(s, 403, "{err}");
    gw.create_org("other").await;
    gw.create_member("stranger", "other", "viewer", None).await;
    let (s, _) = gw
        .api(
            "DELETE",
            "/api/v1/repositories/acme/web/app",
            ("stranger", common::gateway::USER_PASSWORD),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, err) = gw
        .api("DELETE", "/api/v1/repositories/acme/web/nope", ADMIN, None)
        .await;
    assert_eq!(s, 404, "{err}");
    let (s, err) = gw
        .api("DELETE", "/api/v1/repositories/acme/Bad Name", ADMIN, None)
        .await;
    assert_eq!(
        (s.as_u16(), err["error"]["field"].as_str()),
        (400, Some("repository")),
        "{err}"
    );
    assert_eq!(get_manifest(&gw, &token, "acme/web/app", "1.0").await.0, 200);

    // The org admin deletes it: what went is counted.
    let (s, v) = gw.api("DELETE", "/api/v1/repositories/acme/web/app", ADMIN, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["deleted"]["versions"], 2, "{v}");
    assert_eq!(v["deleted"]["tags"], 2, "{v}");
    assert_eq!(v["deleted"]["manifests"], 2, "{v}");

    // Gone from every view: pulls by tag and digest, tags list, catalog, versions,
    // the README, the org's listing. The deletion is audited.
    assert_eq!(get_manifest(&gw, &token, "acme/web/app", "1.0").await.0, 404);
    assert_eq!(
        get_manifest(&gw, &token, "acme/web/app", &common::digest(&m1)).await.0,
        404
    );
    let r = http()
        .get(gw.url("/v2/acme/web/app/tags/list"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(common::error_code(r).await, "NAME_UNKNOWN");
    let (s, _) = gw
        .api("GET", "/api/v1/repositories/acme/web/app/versions", ADMIN, None)
        .await;
    assert_eq!(s, 404, "its versions went with it");
    let (_, readme) = gw
        .api("GET", "/api/v1/repositories/acme/web/app/readme", ADMIN, None)
        .await;
    assert!(readme["readme"].is_null(), "{readme}");
    let (_, listing) = gw.api("GET", "/api/v1/orgs/acme/repositories", ADMIN, None).await;
    assert!(!listing.to_string().contains("acme/web/app"), "{listing}");
    let (_, audit) = gw
        .api("GET", "/api/v1/orgs/acme/audit?action=delete_repository", ADMIN, None)
        .await;
    assert!(audit.to_string().contains("acme/web/app (2 versions"), "{audit}");

    // Deleting it again: nothing to delete.
    let (s, _) = gw.api("DELETE", "/api/v1/repositories/acme/web/app", ADMIN, None).await;
    assert_eq!(s, 404);

    // The name can be pushed again: a new repository from version 1, with none of the
    // old tags.
    let (s, m3) = push_image_with(&gw, &token, "acme/web/app", "3.0", 82).await;
    assert_eq!(s, 201);
    assert_eq!(
        get_manifest(&gw, &token, "acme/web/app", "3.0").await,
        (StatusCode::OK, m3)
    );
    assert_eq!(get_manifest(&gw, &token, "acme/web/app", "2.0").await.0, 404);
    let now = versions(&gw, "acme/web/app").await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0]["number"], 1);
}

/// A push repository sees what its normal repository holds: a manifest pushed to it may
/// reference a blob or a child manifest that only the normal repository has (a client
/// found it there and did not upload it again), and the push links it. A reference held
/// by neither is refused with MANIFEST_BLOB_UNKNOWN, and nothing of that push is kept.
#[tokio::test]
async fn a_push_may_reference_what_only_the_normal_repository_holds() {
    use gatehouse::error::ErrorCode;
    use gatehouse::oci::{Reference, RepoName};
    let dir = tempfile::tempdir().unwrap();
    let reg = common::open_registry(dir.path()).await;
    reg.ensure_push_pair("acme/web/app/push", "acme/web/app").await.unwrap();
    let push: RepoName = "acme/web/app/push".parse().unwrap();
    let normal: RepoName = "acme/web/app".parse().unwrap();
    let blob = |repo: RepoName, data: Vec<u8>| {
        let reg = reg.clone();
        async move {
            let d = common::digest(&data).parse().unwrap();
            let body = futures_util::stream::once(async move { Ok(bytes::Bytes::from(data)) });
            reg.upload_whole(&repo, &d, Box::pin(body)).await.unwrap();
        }
    };
    let oci_manifest = Some(OCI_MANIFEST);
    let tag = |t: &str| -> Reference { t.parse().unwrap() };

    // Blobs and an image only in the normal repository.
    let config = common::config_blob("amd64");
    let layer = common::random_bytes(700, 71);
    blob(normal.clone(), config.clone()).await;
    blob(normal.clone(), layer.clone()).await;
    let image = common::image_manifest(&config, &[&layer], json!({}));
    let image_ref: Reference = common::digest(&image).parse().unwrap();
    reg.put_manifest(&normal, &image_ref, oci_manifest, &image, vec![])
        .await
        .unwrap();

    // An image referencing those blobs, and an index listing that image, pushed to the
    // push repository, which holds none of them.
    let other = common::image_manifest(&config, &[&layer], json!({"annotations": {"n": "2"}}));
    let pushed = reg
        .put_manifest(&push, &tag("1.0"), oci_manifest, &other, vec![])
        .await
        .unwrap();
    assert_eq!(pushed.version, Some(1), "copied into the normal repository");
    let index = common::index_manifest(&[(&image, "amd64")]);
    let pushed = reg
        .put_manifest(&push, &tag("multi"), Some(OCI_INDEX), &index, vec![])
        .await
        .unwrap();
    assert_eq!(pushed.version, Some(2));
    for reference in [tag("1.0"), tag("multi"), image_ref.clone()] {
        reg.get_manifest(&push, &reference).await.unwrap();
        reg.get_manifest(&normal, &reference).await.unwrap();
    }

    // A layer neither holds, and a child neither holds: refused, nothing kept.
    let stray = common::random_bytes(700, 72);
    let bad = common::image_manifest(&config, &[&stray], json!({}));
    let e = reg
        .put_manifest(&push, &tag("bad"), oci_manifest, &bad, vec![])
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ManifestBlobUnknown, "{}", e.message);
    let unknown_child = common::image_manifest(&config, &[&layer], json!({"annotations": {"n": "3"}}));
    let bad_index = common::index_manifest(&[(&unknown_child, "amd64")]);
    let e = reg
        .put_manifest(&push, &tag("bad"), Some(OCI_INDEX), &bad_index, vec![])
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ManifestBlobUnknown, "{}", e.message);
    assert!(reg.get_manifest(&push, &tag("bad")).await.is_err());
    assert!(reg.get_manifest(&normal, &tag("bad")).await.is_err());
    assert_eq!(
        reg.versions("acme/web/app").await.unwrap().len(),
        2,
        "no version for a refused push"
    );
}
