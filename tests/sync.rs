//! Remotes and the sync engine against real registries: Debian's docker-registry
//! (Distribution 2.8) and another gatehouse (token auth). Filters, mirror and additive
//! modes, incremental re-syncs, removals, and failures that leave the repository as it
//! was with the reason on the job.

mod common;

use common::distribution::{delete_manifest, push_plain, start_distribution};
use common::gateway::{ADMIN_PASSWORD, TestGateway, push_image_with};
use common::{OCI_MANIFEST, digest, http, random_bytes};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: (&str, &str) = ("admin", ADMIN_PASSWORD);

/// A gateway with org `acme` and product `base`.
async fn gateway() -> TestGateway {
    let gw = TestGateway::start().await;
    gw.create_org("acme").await;
    gw.create_product("acme", "base", false).await;
    gw
}

async fn create_remote(gw: &TestGateway, body: Value) -> Value {
    let (status, v) = gw
        .api("POST", "/api/v1/orgs/acme/products/base/remotes", ADMIN, Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v
}

/// Start a sync of remote `name` and wait for its job to end; returns the job.
async fn sync(gw: &TestGateway, name: &str) -> Value {
    gw.sync_remote("acme/base", name).await
}

async fn tags(gw: &TestGateway, repo: &str) -> Vec<String> {
    let token = gw.token(Some(ADMIN), &[&format!("repository:{repo}:pull")]).await;
    let v: Value = http()
        .get(gw.url(&format!("/v2/{repo}/tags/list")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut t: Vec<String> = v["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    t.sort();
    t
}

/// GET a manifest through the gateway as admin: (status, body).
async fn get_manifest(gw: &TestGateway, repo: &str, reference: &str, accept: &str) -> (u16, Vec<u8>) {
    let token = gw.token(Some(ADMIN), &[&format!("repository:{repo}:pull")]).await;
    let r = http()
        .get(gw.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("accept", accept)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

async fn versions(gw: &TestGateway, repo: &str) -> Vec<Value> {
    let (status, v) = gw
        .api("GET", &format!("/api/v1/repositories/{repo}/versions"), ADMIN, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["versions"].as_array().cloned().unwrap_or_default()
}

fn image_layers(seed: u64) -> Vec<Vec<u8>> {
    vec![random_bytes(3000, seed), random_bytes(5000, seed + 1000)]
}

#[tokio::test]
async fn sync_from_distribution_filters_mirrors_and_is_incremental() {
    let dist = start_distribution();
    let up = &dist.base;
    let mut manifests = std::collections::HashMap::new();
    for (i, tag) in ["3.18", "3.19", "3.20-rc1", "edge"].iter().enumerate() {
        manifests.insert(
            *tag,
            push_plain(up, "library/alpine", tag, &image_layers(i as u64 + 1)).await,
        );
    }
    let gw = gateway().await;
    let remote = create_remote(
        &gw,
        json!({"name": "alpine", "url": up, "upstream_name": "library/alpine",
               "include_tags": ["3.*"], "exclude_tags": ["*-rc*"], "mirror": true, "policy": "immediate"}),
    )
    .await;
    assert_eq!(remote["repository"], "acme/base/alpine");

    // First sync: exactly the filtered tags, the upstream's digests, one version.
    let job = sync(&gw, "alpine").await;
    assert_eq!(job["state"], "done", "{job}");
    let p = &job["progress"];
    assert_eq!(p["manifests"]["total"], 2, "{p}");
    assert_eq!(p["blobs"]["total"], 5, "one shared config, two layers each: {p}");
    assert_eq!(p["bytes"]["done"], p["bytes"]["total"], "{p}");
    assert_eq!(p["outcome"]["version"], 1, "{p}");
    assert_eq!(tags(&gw, "acme/base/alpine").await, ["3.18", "3.19"]);
    let token = gw.token(Some(ADMIN), &["repository:acme/base/alpine:pull"]).await;
    for tag in ["3.18", "3.19"] {
        let (status, body) = get_manifest(&gw, "acme/base/alpine", tag, OCI_MANIFEST).await;
        assert_eq!(status, 200);
        assert_eq!(body, manifests[tag]);
    }
    // A layer is served from the local store.
    let layer = digest(&image_layers(2)[1]);
    let r = http()
        .get(gw.url(&format!("/v2/acme/base/alpine/blobs/{layer}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), image_layers(2)[1].as_slice());

    // Nothing new upstream: nothing fetched, no version.
    let job = sync(&gw, "alpine").await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["progress"]["outcome"]["version"], Value::Null, "{job}");
    assert_eq!(job["progress"]["outcome"]["manifests_fetched"], 0, "{job}");
    assert_eq!(job["progress"]["outcome"]["blobs_fetched"], 0, "{job}");
    assert_eq!(versions(&gw, "acme/base/alpine").await.len(), 1);

    // Mirror: a tag deleted upstream goes; a new one comes, fetching only its new blobs.
    delete_manifest(up, "library/alpine", &digest(&manifests["3.18"])).await;
    push_plain(
        up,
        "library/alpine",
        "3.21",
        &[image_layers(2)[0].clone(), random_bytes(700, 77)],
    )
    .await;
    let job = sync(&gw, "alpine").await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["progress"]["outcome"]["version"], 2, "{job}");
    assert_eq!(
        job["progress"]["outcome"]["blobs_fetched"], 1,
        "only the new layer: {job}"
    );
    assert_eq!(tags(&gw, "acme/base/alpine").await, ["3.19", "3.21"]);
    let (status, _) = get_manifest(&gw, "acme/base/alpine", &digest(&manifests["3.18"]), OCI_MANIFEST).await;
    assert_eq!(status, 404, "mirror mode drops the manifest with its tag");

    // Additive: what went upstream stays here; what came is added.
    let (status, v) = gw
        .api(
            "PATCH",
            "/api/v1/orgs/acme/products/base/remotes/alpine",
            ADMIN,
            Some(json!({"mirror": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    delete_manifest(up, "library/alpine", &digest(&manifests["3.19"])).await;
    push_plain(up, "library/alpine", "3.22", &image_layers(9)).await;
    let job = sync(&gw, "alpine").await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(tags(&gw, "acme/base/alpine").await, ["3.19", "3.21", "3.22"]);
    let all = versions(&gw, "acme/base/alpine").await;
    assert_eq!(all.len(), 3);
    assert!(
        all.iter()
            .all(|v| v["reason"].as_str().unwrap().starts_with("sync from ")),
        "{all:?}"
    );
}

#[tokio::test]
async fn failed_syncs_say_why_and_keep_the_last_version() {
    let dist = start_distribution();
    let up = &dist.base;
    let m = push_plain(up, "library/good", "1.0", &image_layers(40)).await;
    let gw = gateway().await;
    create_remote(
        &gw,
        json!({"name": "good", "url": up, "upstream_name": "library/good", "mirror": true}),
    )
    .await;
    assert_eq!(sync(&gw, "good").await["state"], "done");
    assert_eq!(tags(&gw, "acme/base/good").await, ["1.0"]);

    async fn fails(gw: &TestGateway, name: &str, body: Value, expect: &str) {
        let (status, v) = gw
            .api(
                "PATCH",
                &format!("/api/v1/orgs/acme/products/base/remotes/{name}"),
                ADMIN,
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let job = sync(gw, name).await;
        assert_eq!(job["state"], "failed", "{job}");
        let error = job["last_error"].as_str().unwrap_or_default();
        assert!(error.contains(expect), "{expect:?} not in {error:?}");
    }
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    fails(
        &gw,
        "good",
        json!({"url": format!("http://127.0.0.1:{closed}")}),
        "cannot reach",
    )
    .await;
    fails(
        &gw,
        "good",
        json!({"url": up, "upstream_name": "library/missing"}),
        "does not exist on the remote",
    )
    .await;
    fails(
        &gw,
        "good",
        json!({"upstream_name": "library/good", "include_tags": ["9.*"]}),
        "matches none of the remote's 1 tags",
    )
    .await;

    // The upstream serves a new tag whose layer bytes are not what its digest says.
    let bad_layers = image_layers(50);
    push_plain(up, "library/good", "2.0", &bad_layers).await;
    let file = dist.blob_file(&digest(&bad_layers[1]));
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    fails(&gw, "good", json!({"include_tags": []}), "does not match its digest").await;

    // A manifest over 4 MiB (no real registry serves one: a hostile upstream does).
    let hostile = hostile_upstream().await;
    fails(
        &gw,
        "good",
        json!({"url": hostile, "upstream_name": "library/big"}),
        "over the 4194304-byte limit",
    )
    .await;

    // A layer that never ends is cut off at the size its manifest gives.
    fails(
        &gw,
        "good",
        json!({"upstream_name": "library/bloat"}),
        "more than the expected 10 bytes",
    )
    .await;
    // signed_only from a registry without the signature extension: nothing to keep.
    fails(
        &gw,
        "good",
        json!({"url": up, "upstream_name": "library/good", "signed_only": true}),
        "no signature extension",
    )
    .await;
    let staged: Vec<_> = std::fs::read_dir(gw.dir.path().join("data/uploads")).unwrap().collect();
    assert!(staged.is_empty(), "nothing left staged: {staged:?}");

    // After all that, the repository is still its first version, serving the same bytes.
    let all = versions(&gw, "acme/base/good").await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(tags(&gw, "acme/base/good").await, ["1.0"]);
    assert_eq!(get_manifest(&gw, "acme/base/good", "1.0", OCI_MANIFEST).await.1, m);
}

#[tokio::test]
async fn sync_from_another_gatehouse_with_token_auth_and_a_write_only_password() {
    // The upstream: a gatehouse with a private product and a pull secret for it.
    let upstream = TestGateway::start().await;
    upstream.create_org("vendor").await;
    let admin_token = upstream
        .token(Some(ADMIN), &["repository:vendor/tools/cli:pull,push"])
        .await;
    let (status, manifest) = push_image_with(&upstream, &admin_token, "vendor/tools/cli", "1.0", 5).await;
    assert_eq!(status, 201);
    let (user, secret, _) = upstream
        .create_pull_secret("vendor", json!({"name": "mirror", "products": ["tools"]}))
        .await;

    let gw = gateway().await;
    let created = create_remote(
        &gw,
        json!({"name": "cli", "url": upstream.url(""), "upstream_name": "vendor/tools/cli",
               "username": user, "password": "wrong"}),
    )
    .await;
    assert_eq!(created["has_password"], true);
    assert!(!created.to_string().contains("wrong"), "{created}");

    // Wrong password: the remote refuses, in plain words.
    let job = sync(&gw, "cli").await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["last_error"].as_str().unwrap().contains("refused the credentials"),
        "{job}"
    );

    let (status, v) = gw
        .api(
            "PATCH",
            "/api/v1/orgs/acme/products/base/remotes/cli",
            ADMIN,
            Some(json!({"password": secret})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(!v.to_string().contains(&secret), "{v}");
    let job = sync(&gw, "cli").await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(
        get_manifest(&gw, "acme/base/cli", "1.0", OCI_MANIFEST).await.1,
        manifest
    );
    // The password is nowhere in the remote's listing, nor in the database in clear.
    let (_, list) = gw
        .api("GET", "/api/v1/orgs/acme/products/base/remotes", ADMIN, None)
        .await;
    assert!(!list.to_string().contains(&secret));
    let sealed: Vec<Option<String>> = sqlx::query_scalar("SELECT password_sealed FROM remotes")
        .fetch_all(&gw.app_db.write_pool())
        .await
        .unwrap();
    assert!(sealed.iter().flatten().all(|s| !s.contains(&secret)), "{sealed:?}");
    // On SQLite, not in the files either (PostgreSQL runs keep no meta.db).
    let db = std::fs::read(gw.dir.path().join("data/meta.db")).unwrap_or_default();
    let wal = std::fs::read(gw.dir.path().join("data/meta.db-wal")).unwrap_or_default();
    for file in [db, wal] {
        assert!(!file.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }

    // A mirrored repository is not deleted while its remote would bring it back.
    let (s, err) = gw
        .api("DELETE", "/api/v1/repositories/acme/base/cli", ADMIN, None)
        .await;
    assert_eq!(
        (s.as_u16(), err["error"]["code"].as_str()),
        (409, Some("mirrored")),
        "{err}"
    );
    assert_eq!(get_manifest(&gw, "acme/base/cli", "1.0", OCI_MANIFEST).await.0, 200);
    let (s, _) = gw
        .api("DELETE", "/api/v1/orgs/acme/products/base/remotes/cli", ADMIN, None)
        .await;
    assert!(s.is_success());
    let (s, v) = gw
        .api("DELETE", "/api/v1/repositories/acme/base/cli", ADMIN, None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(get_manifest(&gw, "acme/base/cli", "1.0", OCI_MANIFEST).await.0, 404);
}

#[tokio::test]
async fn remote_fields_are_checked_and_named() {
    let gw = gateway().await;
    for (body, field) in [
        (json!({"url": "https://r.example", "upstream_name": "a/b"}), "name"),
        (json!({"name": "x", "upstream_name": "a/b"}), "url"),
        (json!({"name": "x", "url": "ftp://r", "upstream_name": "a/b"}), "url"),
        (
            json!({"name": "x", "url": "https://r.example/v2/", "upstream_name": "a/b"}),
            "url",
        ),
        (
            json!({"name": "x", "url": "https://r.example", "upstream_name": "A//b"}),
            "upstream_name",
        ),
        (
            json!({"name": "x", "url": "https://r.example", "upstream_name": "a/b", "include_tags": ["a b"]}),
            "include_tags",
        ),
        (
            json!({"name": "x", "url": "https://r.example", "upstream_name": "a/b", "ca_certificate": "nope"}),
            "ca_certificate",
        ),
        (
            json!({"name": "x", "url": "https://r.example", "upstream_name": "a/b", "policy": "sometimes"}),
            "policy",
        ),
        (
            json!({"name": "x", "url": "https://r.example", "upstream_name": "a/b", "sigstore": "ftp://sigs.example"}),
            "sigstore",
        ),
        (
            json!({"name": "x", "url": "https://r.example", "upstream_name": "a/b", "sigstore": "https://sigs.example/?a=1"}),
            "sigstore",
        ),
    ] {
        let (status, v) = gw
            .api(
                "POST",
                "/api/v1/orgs/acme/products/base/remotes",
                ADMIN,
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(v.to_string().contains(field), "{body}: {v}");
    }
    let (status, _) = gw
        .api(
            "POST",
            "/api/v1/orgs/acme/products/nope/remotes",
            ADMIN,
            Some(json!({"name": "x", "url": "https://r.example", "upstream_name": "a/b"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    create_remote(
        &gw,
        json!({"name": "x", "url": "https://r.example", "upstream_name": "a/b"}),
    )
    .await;
    let (status, _) = gw
        .api(
            "POST",
            "/api/v1/orgs/acme/products/base/remotes",
            ADMIN,
            Some(json!({"name": "x", "url": "https://r.example", "upstream_name": "a/b"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Another org's admin sees none of it.
    gw.create_org("other").await;
    gw.create_member("olga", "other", "org_admin", None).await;
    let (status, _) = gw
        .api(
            "GET",
            "/api/v1/orgs/acme/products/base/remotes/x",
            ("olga", common::gateway::USER_PASSWORD),
            None,
        )
        .await;
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "{status}"
    );
}

/// A registry that lists one tag whose manifest is 5 MiB, announced without a length
/// (`library/big`), and an image whose 10-byte layer never ends (`library/bloat`).
async fn hostile_upstream() -> String {
    use axum::routing::get;
    let config = common::config_blob("amd64");
    let small = b"ten bytes!".to_vec();
    let bloat_manifest = common::image_manifest(&config, &[&small], json!({}));
    let (config_digest, layer_digest) = (digest(&config), digest(&small));
    let app = axum::Router::new()
        .route(
            "/v2/library/bloat/tags/list",
            get(|| async { axum::Json(json!({"name": "library/bloat", "tags": ["1.0"]})) }),
        )
        .route(
            "/v2/library/bloat/manifests/{reference}",
            get(move || {
                let m = bloat_manifest.clone();
                async move { ([("content-type", OCI_MANIFEST)], m) }
            }),
        )
        .route(
            "/v2/library/bloat/blobs/{digest}",
            get(move |axum::extract::Path(d): axum::extract::Path<String>| {
                let config = config.clone();
                let (config_digest, layer_digest) = (config_digest.clone(), layer_digest.clone());
                async move {
                    if d == config_digest {
                        return axum::body::Body::from(config);
                    }
                    assert_eq!(d, layer_digest);
                    let endless = futures_util::stream::repeat_with(|| {
                        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0u8; 64 * 1024]))
                    });
                    axum::body::Body::from_stream(endless)
                }
            }),
        )
        .route(
            "/v2/library/big/tags/list",
            get(|| async { axum::Json(json!({"name": "library/big", "tags": ["1.0"]})) }),
        )
        .route(
            "/v2/library/big/manifests/1.0",
            get(|| async {
                let chunks = (0..80).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 64 * 1024])));
                (
                    [("content-type", OCI_MANIFEST)],
                    axum::body::Body::from_stream(futures_util::stream::iter(chunks)),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn on_demand_sync_fetches_each_blob_on_its_first_pull_and_keeps_it() {
    let dist = start_distribution();
    let layers = vec![random_bytes(3 * 1024 * 1024, 90), random_bytes(4000, 91)];
    let manifest = push_plain(&dist.base, "library/lazy", "1.0", &layers).await;
    let gw = gateway().await;
    create_remote(
        &gw,
        json!({"name": "lazy", "url": dist.base, "upstream_name": "library/lazy", "policy": "on_demand"}),
    )
    .await;
    let job = sync(&gw, "lazy").await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["progress"]["outcome"]["blobs_fetched"], 0, "{job}");
    assert_eq!(job["progress"]["outcome"]["version"], 1, "{job}");
    let store = gw.registry.clone().unwrap();
    let stored = |d: String| {
        let store = store.clone();
        async move {
            let d: gatehouse::oci::Digest = d.parse().unwrap();
            store.blob_store().stat(&d).await.unwrap().is_some()
        }
    };
    let big = digest(&layers[0]);
    assert!(!stored(big.clone()).await, "nothing fetched at sync time");

    let token = gw.token(Some(ADMIN), &["repository:acme/base/lazy:pull"]).await;
    let c = http();
    assert_eq!(
        get_manifest(&gw, "acme/base/lazy", "1.0", OCI_MANIFEST).await.1,
        manifest
    );
    // HEAD answers from what the sync recorded.
    let head = c
        .head(gw.url(&format!("/v2/acme/base/lazy/blobs/{big}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], layers[0].len().to_string().as_str());
    // The first pull streams it from the remote; a range of the small one fetches it whole.
    let got = c
        .get(gw.url(&format!("/v2/acme/base/lazy/blobs/{big}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), layers[0].as_slice());
    let small = digest(&layers[1]);
    let part = c
        .get(gw.url(&format!("/v2/acme/base/lazy/blobs/{small}")))
        .header("range", "bytes=10-19")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &layers[1][10..20]);

    // Stored: with the remote gone, every blob still comes back.
    drop(dist);
    assert!(stored(big.clone()).await);
    for layer in &layers {
        let r = c
            .get(gw.url(&format!("/v2/acme/base/lazy/blobs/{}", digest(layer))))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), layer.as_slice());
    }
}

#[tokio::test]
async fn on_demand_blob_with_wrong_bytes_is_refused_and_not_stored() {
    let dist = start_distribution();
    let layers = image_layers(95);
    push_plain(&dist.base, "library/lazy", "1.0", &layers).await;
    let gw = gateway().await;
    create_remote(
        &gw,
        json!({"name": "lazy", "url": dist.base, "upstream_name": "library/lazy", "policy": "on_demand"}),
    )
    .await;
    assert_eq!(sync(&gw, "lazy").await["state"], "done");
    let d = digest(&layers[0]);
    let file = dist.blob_file(&d);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let token = gw.token(Some(ADMIN), &["repository:acme/base/lazy:pull"]).await;
    let c = http();
    let r = c
        .get(gw.url(&format!("/v2/acme/base/lazy/blobs/{d}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    // Either refused outright or cut short: never the wrong bytes as a whole blob.
    if r.status() == 200 {
        assert!(r.bytes().await.is_err(), "a corrupt blob must not arrive complete");
    }
    let hex = d.trim_start_matches("sha256:");
    assert!(
        !gw.dir
            .path()
            .join("data/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .exists()
    );
}

#[tokio::test]
async fn sync_brings_indexes_with_their_children_and_referrers() {
    use common::{OCI_INDEX, config_blob, image_manifest, index_manifest};
    let upstream = TestGateway::start().await;
    upstream.create_org("vendor").await;
    let token = upstream
        .token(Some(ADMIN), &["repository:vendor/tools/multi:pull,push"])
        .await;
    let c = http();
    let put = |reference: String, media_type: &'static str, body: Vec<u8>| {
        let req = c
            .put(upstream.url(&format!("/v2/vendor/tools/multi/manifests/{reference}")))
            .bearer_auth(&token)
            .header("content-type", media_type)
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        }
    };
    let mut children = Vec::new();
    for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
        let config = config_blob(arch);
        let layer = random_bytes(4000, 300 + i as u64);
        for blob in [&config, &layer] {
            let r = c
                .post(upstream.url(&format!(
                    "/v2/vendor/tools/multi/blobs/uploads/?digest={}",
                    digest(blob)
                )))
                .bearer_auth(&token)
                .body(blob.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
        }
        let m = image_manifest(&config, &[&layer], json!({}));
        put(digest(&m), OCI_MANIFEST, m.clone()).await;
        children.push((m, *arch));
    }
    let refs: Vec<(&[u8], &str)> = children.iter().map(|(m, a)| (m.as_slice(), *a)).collect();
    let index = index_manifest(&refs);
    put("1.0".into(), OCI_INDEX, index.clone()).await;
    // A signature-like artifact whose subject is the index, pushed by digest only.
    let empty = b"{}".to_vec();
    let r = c
        .post(upstream.url(&format!(
            "/v2/vendor/tools/multi/blobs/uploads/?digest={}",
            digest(&empty)
        )))
        .bearer_auth(&token)
        .body(empty.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sig = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest(&empty), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest(&empty), "size": 2}],
        "subject": {"mediaType": OCI_INDEX, "digest": digest(&index), "size": index.len()},
    }))
    .unwrap();
    put(digest(&sig), OCI_MANIFEST, sig.clone()).await;

    let gw = gateway().await;
    create_remote(
        &gw,
        json!({"name": "multi", "url": upstream.url(""), "upstream_name": "vendor/tools/multi",
               "username": "admin", "password": ADMIN_PASSWORD, "mirror": true}),
    )
    .await;
    let job = sync(&gw, "multi").await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(
        job["progress"]["outcome"]["manifests_fetched"], 4,
        "index, two children, the signature: {job}"
    );
    let pull = gw.token(Some(ADMIN), &["repository:acme/base/multi:pull"]).await;
    let get = |reference: String, accept: &'static str| {
        let gw = &gw;
        async move { get_manifest(gw, "acme/base/multi", &reference, accept).await.1 }
    };
    assert_eq!(get("1.0".into(), OCI_INDEX).await, index);
    for (m, _) in &children {
        assert_eq!(&get(digest(m), OCI_MANIFEST).await, m);
    }
    assert_eq!(get(digest(&sig), OCI_MANIFEST).await, sig);
    let referrers: Value = c
        .get(gw.url(&format!("/v2/acme/base/multi/referrers/{}", digest(&index))))
        .bearer_auth(&pull)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [digest(&sig).as_str()], "{referrers}");
}
