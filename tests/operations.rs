//! Operating gatehouse: `/metrics` values move with real pushes, pulls, token requests,
//! denials and failed logins (the exposition parsed by an OpenMetrics parser), only the
//! right callers may scrape, and no secret shows in it; `/healthz` and `/readyz`, which
//! turns 503 when the data directory or the backend is unusable; request ids; and the
//! real binary with `log_format = "json"` and a `metrics_listen` address.

mod common;

use common::gateway::{ADMIN_PASSWORD, TestGateway, USER_PASSWORD, push_image_with};
use openmetrics_parser::{OpenMetricsValue, openmetrics::parse_openmetrics};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SCRAPE_TOKEN: &str = "scrape-token-for-the-tests-0123456789";

/// The sum of the samples of `family` whose labels include `labels` (a histogram's
/// count), from an exposition that must parse as OpenMetrics.
fn value(text: &str, family: &str, labels: &[(&str, &str)]) -> f64 {
    let exposition = parse_openmetrics(text).unwrap_or_else(|e| panic!("not OpenMetrics: {e:?}\n{text}"));
    let Some(f) = exposition.families.get(family) else {
        return 0.0;
    };
    f.iter_samples()
        .filter(|s| {
            let set = s.get_labelset().unwrap();
            labels.iter().all(|(k, v)| set.get_label_value(k) == Some(v))
        })
        .map(|s| match &s.value {
            OpenMetricsValue::Counter(c) => c.value.as_f64(),
            OpenMetricsValue::Gauge(n) | OpenMetricsValue::Unknown(n) => n.as_f64(),
            OpenMetricsValue::Histogram(h) => h.count.unwrap_or(0) as f64,
            _ => 0.0,
        })
        .sum()
}

async fn scrape(gw: &TestGateway) -> String {
    let r = gw
        .client()
        .get(gw.url("/metrics"))
        .bearer_auth(SCRAPE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    r.text().await.unwrap()
}

#[tokio::test]
async fn metrics_follow_pushes_pulls_tokens_denials_and_logins() {
    let gw = TestGateway::start_with(true, |cfg| cfg.metrics_token = Some(SCRAPE_TOKEN.into())).await;
    gw.create_org("acme").await;
    gw.create_member("dev", "acme", "pusher", None).await;
    let before = scrape(&gw).await;

    // A push and a pull of an image, with tokens.
    let token = gw
        .token(Some(("admin", ADMIN_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    let (status, manifest) = push_image_with(&gw, &token, "acme/web/app", "v7-tag", 7).await;
    assert_eq!(status, 201);
    let r = gw
        .client()
        .get(gw.url("/v2/acme/web/app/manifests/v7-tag"))
        .header("accept", common::OCI_MANIFEST)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let layer: Value = serde_json::from_slice(&manifest).unwrap();
    let layer = layer["layers"][0]["digest"].as_str().unwrap().to_owned();
    let r = gw
        .client()
        .get(gw.url(&format!("/v2/acme/web/app/blobs/{layer}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 2048);

    // A failed login at the token endpoint, a token that lacks a scope, and one whose
    // holder lost the role that granted it.
    let (s, _) = gw.token_request(Some(("dev", "wrong password")), &[]).await;
    assert_eq!(s, 401);
    let pull_only = gw
        .token(Some(("dev", USER_PASSWORD)), &["repository:acme/web/app:pull"])
        .await;
    let r = gw
        .client()
        .delete(gw.url(&format!("/v2/acme/web/app/manifests/{layer}")))
        .bearer_auth(&pull_only)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    gw.admin("DELETE", "/api/v1/orgs/acme/members/dev?role=pusher", json!({}))
        .await;
    let r = gw
        .client()
        .get(gw.url("/v2/acme/web/app/manifests/v7-tag"))
        .bearer_auth(&pull_only)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let after = scrape(&gw).await;
    let delta = |family: &str, labels: &[(&str, &str)]| value(&after, family, labels) - value(&before, family, labels);
    assert_eq!(delta("gatehouse_manifest_pushes", &[("org", "acme")]), 1.0);
    assert_eq!(delta("gatehouse_manifest_pulls", &[("org", "acme")]), 1.0);
    assert_eq!(
        delta(
            "gatehouse_http_requests",
            &[("route", "manifest"), ("method", "PUT"), ("status", "201")]
        ),
        1.0
    );
    assert!(delta("gatehouse_http_request_duration_seconds", &[("route", "manifest")]) >= 2.0);
    assert!(delta("gatehouse_http_received_bytes", &[("route", "upload")]) >= 2048.0);
    assert!(delta("gatehouse_http_sent_bytes", &[("route", "blob")]) >= 2048.0);
    assert!(delta("gatehouse_tokens_issued", &[("kind", "access")]) >= 2.0);
    assert_eq!(
        delta("gatehouse_token_requests_refused", &[("reason", "UNAUTHORIZED")]),
        1.0
    );
    assert_eq!(delta("gatehouse_login_failures", &[("kind", "token")]), 1.0);
    assert_eq!(
        delta("gatehouse_policy_denials", &[("action", "delete"), ("reason", "scope")]),
        1.0
    );
    assert_eq!(
        delta("gatehouse_policy_denials", &[("action", "pull"), ("reason", "policy")]),
        1.0
    );
    assert!(delta("gatehouse_job_duration_seconds", &[("kind", "post_push")]) >= 1.0);
    assert!(value(&after, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&after, "process_open_fds", &[]) > 0.0);

    // Labels stay bounded: no repository, user or tag names; and no secret anywhere.
    for needle in ["acme/web/app", "dev", "v7-tag", &token, ADMIN_PASSWORD, SCRAPE_TOKEN] {
        assert!(!after.contains(needle), "{needle:?} in the exposition");
    }
}

/// Storage per organisation counts each blob once for it, however many of its
/// repositories (a push repository and its normal one, two images) hold it.
#[tokio::test]
async fn storage_per_organisation_counts_a_shared_blob_once() {
    let gw = TestGateway::start_with(false, |cfg| cfg.metrics_token = Some(SCRAPE_TOKEN.into())).await;
    gw.create_org("acme").await;
    gw.create_org("beta").await;
    let token = gw
        .token(
            Some(("admin", ADMIN_PASSWORD)),
            &[
                "repository:acme/web/app:pull,push",
                "repository:acme/web/other:pull,push",
                "repository:beta/web/app:pull,push",
            ],
        )
        .await;
    // The same image twice in acme, once in beta: config and one 2,048-byte layer.
    let mut size = 0.0;
    for repo in ["acme/web/app", "acme/web/other", "beta/web/app"] {
        let (s, m) = push_image_with(&gw, &token, repo, "1.0", 3).await;
        assert_eq!(s, 201);
        let m: Value = serde_json::from_slice(&m).unwrap();
        size = m["config"]["size"].as_f64().unwrap() + m["layers"][0]["size"].as_f64().unwrap();
    }
    let text = scrape(&gw).await;
    assert_eq!(value(&text, "gatehouse_storage_bytes", &[("org", "acme")]), size);
    assert_eq!(value(&text, "gatehouse_storage_bytes", &[("org", "beta")]), size);
}

#[tokio::test]
async fn only_global_admins_and_the_scrape_token_read_metrics() {
    let gw = TestGateway::start_with(false, |cfg| cfg.metrics_token = Some(SCRAPE_TOKEN.into())).await;
    gw.create_org("acme").await;
    gw.create_member("dev", "acme", "org_admin", None).await;
    let get = |auth: Option<(&'static str, &'static str)>, bearer: Option<&'static str>| {
        let mut r = gw.client().get(gw.url("/metrics"));
        if let Some((u, p)) = auth {
            r = r.basic_auth(u, Some(p));
        }
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        async move { r.send().await.unwrap().status() }
    };
    assert_eq!(get(None, None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(get(None, Some("not-the-token")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(Some(("dev", USER_PASSWORD)), None).await,
        StatusCode::FORBIDDEN,
        "an org admin is not an operator"
    );
    assert_eq!(get(Some(("admin", ADMIN_PASSWORD)), None).await, StatusCode::OK);
    assert_eq!(get(None, Some(SCRAPE_TOKEN)).await, StatusCode::OK);

    // Turned off, there is nothing to scrape.
    let off = TestGateway::start_with(false, |cfg| cfg.metrics = false).await;
    let r = off
        .client()
        .get(off.url("/metrics"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn readyz_turns_503_when_the_data_dir_is_unusable_and_back() {
    let gw = TestGateway::start().await;
    let r = gw.client().get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ready = |gw: &TestGateway| {
        let r = gw.client().get(gw.url("/readyz"));
        async move {
            let r = r.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, v) = ready(&gw).await;
    assert_eq!(s, 200, "{v}");
    for check in ["database", "data_dir", "blob_store", "token_keys"] {
        assert_eq!(v["checks"][check]["ok"], true, "{check}: {v}");
    }

    // The upload staging directory becomes a file: nothing can be written there.
    let uploads = gw.dir.path().join("data/uploads");
    let aside = gw.dir.path().join("data/uploads-aside");
    std::fs::rename(&uploads, &aside).unwrap();
    std::fs::write(&uploads, b"not a directory").unwrap();
    let (s, v) = ready(&gw).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["status"], "not ready");
    assert_eq!(v["checks"]["data_dir"]["ok"], false, "{v}");
    assert!(
        v["checks"]["data_dir"]["error"].as_str().unwrap().contains("uploads"),
        "{v}"
    );
    assert_eq!(v["checks"]["database"]["ok"], true, "only what failed is named: {v}");

    std::fs::remove_file(&uploads).unwrap();
    std::fs::rename(&aside, &uploads).unwrap();
    let (s, v) = ready(&gw).await;
    assert_eq!(s, 200, "recovered: {v}");
}

#[tokio::test]
async fn readyz_turns_503_when_the_backend_is_down() {
    // A gateway in front of a registry that is not there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = TestGateway::start_with(false, |cfg| cfg.backend = Some(format!("http://127.0.0.1:{port}"))).await;
    let r = gw.client().get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["checks"]["backend"]["ok"], false, "{v}");
    let r = gw.client().get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the process itself is alive");
}

#[tokio::test]
async fn request_ids_are_echoed_and_made_when_missing_or_unfit() {
    let gw = TestGateway::start().await;
    let r = gw
        .client()
        .get(gw.url("/v2/"))
        .header("x-request-id", "abc-123.xyz")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123.xyz");
    let r = gw.client().get(gw.url("/v2/")).send().await.unwrap();
    let made = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 32, "{made}");
    let r = gw
        .client()
        .get(gw.url("/v2/"))
        .header("x-request-id", "a b <script>")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "a b <script>");
}

/// The real binary: JSON log lines (one object each, with the request id), and
/// `/metrics` without credentials on the `metrics_listen` address only.
#[tokio::test(flavor = "multi_thread")]
async fn the_binary_logs_json_and_serves_metrics_on_its_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin_password = "Adm1n-p4ssword-for-json-logs";
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--insecure-http", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .envs(common::backend_env(&dir.path().join("data")))
        .env("GATEHOUSE_ADMIN_PASSWORD", admin_password)
        .env("GATEHOUSE_LOG_FORMAT", "json")
        .env("GATEHOUSE_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
        .env("GATEHOUSE_POLICY_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["message"] == "gatehouse serving"
                {
                    let _ = tx.send(v["listen"].as_str().unwrap_or_default().to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        })
    };
    let listen = rx.recv_timeout(Duration::from_secs(60)).expect("the server starts");
    let c = common::http();
    let r = c
        .get(format!("http://{listen}/v2/"))
        .header("x-request-id", "json-log-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // On the metrics address: no credentials needed; the main port still asks.
    let r = c
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        value(
            &text,
            "gatehouse_http_requests",
            &[("route", "base"), ("status", "401")]
        ) >= 1.0,
        "{text}"
    );
    let r = c
        .get(format!("http://127.0.0.1:{metrics_port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(format!("http://{listen}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let lines = lines.lock().unwrap();
    assert!(!lines.is_empty());
    for line in lines.iter() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
        assert!(!line.contains(admin_password), "the password is never logged");
    }
    let logged = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["request_id"] == "json-log-test-1")
        .expect("the request's line carries its id");
    assert_eq!(logged["status"], 401);
    assert_eq!(logged["path"], "/v2/");
}

/// With `gc_interval`, the server collects garbage itself and counts it: runs, the last
/// one's duration, bytes freed (here the blobs of a deleted repository).
#[tokio::test]
async fn scheduled_garbage_collection_is_counted() {
    let gw = TestGateway::start_with(false, |cfg| {
        cfg.metrics_token = Some(SCRAPE_TOKEN.into());
        cfg.gc_interval = "3s".into();
        cfg.gc_grace = "0s".into();
    })
    .await;
    gw.create_org("acme").await;
    let token = gw
        .token(Some(("admin", ADMIN_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    assert_eq!(push_image_with(&gw, &token, "acme/web/app", "1.0", 11).await.0, 201);
    let (s, v) = gw
        .api(
            "DELETE",
            "/api/v1/repositories/acme/web/app",
            ("admin", ADMIN_PASSWORD),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(&gw).await;
        let freed = value(&text, "gatehouse_gc_freed_bytes", &[]);
        if freed >= 2048.0 {
            assert!(value(&text, "gatehouse_gc_runs", &[]) >= 1.0);
            assert!(text.contains("gatehouse_gc_last_duration_seconds "), "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no collection freed the deleted repository's blobs: {text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A forwarding gateway passes the request's id on to its backend (here one that
/// answers with the id it was sent), so one id follows a request through both logs.
#[tokio::test]
async fn the_request_id_reaches_the_backend() {
    let backend = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        (
            [
                ("content-type", common::OCI_MANIFEST),
                ("docker-content-digest", "sha256:00"),
            ],
            serde_json::json!({ "received_request_id": id }).to_string(),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, backend).await });
    let gw = TestGateway::start_with(false, |cfg| cfg.backend = Some(format!("http://127.0.0.1:{port}"))).await;
    gw.create_org("acme").await;
    let token = gw
        .token(Some(("admin", ADMIN_PASSWORD)), &["repository:acme/web/app:pull"])
        .await;
    let r = gw
        .client()
        .get(gw.url("/v2/acme/web/app/manifests/1.0"))
        .bearer_auth(&token)
        .header("x-request-id", "follow-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "follow-me-42");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["received_request_id"], "follow-me-42");
}
