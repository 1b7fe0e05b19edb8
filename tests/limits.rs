//! Too much of anything is bounded by a documented limit with a clear answer: open
//! upload sessions per repository (429 with Retry-After), names per listing page (a
//! Link to the next page, even without `n`), connections (503 with Retry-After past
//! `max_connections`; idle ones closed), and an index with 1,000 children works.

mod common;

use common::*;
use gatehouse::server::ConnLimits;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn open_upload_sessions_per_repository_are_bounded() {
    let srv = TestServer::start().await;
    let c = http();
    let limit = gatehouse::store::MAX_OPEN_UPLOADS;
    let mut last = String::new();
    for _ in 0..limit {
        last = open_session(&c, &srv, "a").await;
    }
    let r = c.post(srv.url("/v2/a/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "60");
    assert_eq!(error_code(r).await, "TOOMANYREQUESTS");
    // Another repository is not affected; ending a session makes room.
    open_session(&c, &srv, "b").await;
    assert_eq!(c.delete(srv.url(&last)).send().await.unwrap().status(), 204);
    open_session(&c, &srv, "a").await;
}

#[tokio::test]
async fn tag_listings_come_in_pages_of_at_most_ten_thousand() {
    let srv = TestServer::start().await;
    let c = http();
    let config = config_blob("amd64");
    push_blob(&c, &srv, "many", &config).await;
    let manifest = image_manifest(&config, &[], json!({}));
    // 10,500 tags, 50 per push (the OCI 1.1 `tag` parameters; each is echoed in an
    // OCI-Tag header, and HTTP clients take about 100 headers).
    for batch in 0..210 {
        let tags: Vec<String> = (0..50).map(|i| format!("tag=t{:05}", batch * 50 + i)).collect();
        let r = c
            .put(srv.url(&format!("/v2/many/manifests/{}?{}", digest(&manifest), tags.join("&"))))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = c.get(srv.url("/v2/many/tags/list")).send().await.unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["tags"].as_array().unwrap().len(), 10_000);
    assert_eq!(link, "</v2/many/tags/list?n=10000&last=t09999>; rel=\"next\"");
    let next: Value = get_json(&c, &srv.url("/v2/many/tags/list?n=10000&last=t09999")).await;
    assert_eq!(next["tags"].as_array().unwrap().len(), 500);
    // A larger n is capped too.
    let r = c.get(srv.url("/v2/many/tags/list?n=50000")).send().await.unwrap();
    assert!(r.headers().contains_key("link"));
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["tags"].as_array().unwrap().len(), 10_000);
}

#[tokio::test]
async fn an_index_with_a_thousand_children_is_pushed_and_pulled() {
    let srv = TestServer::start().await;
    let c = http();
    let config = config_blob("amd64");
    push_blob(&c, &srv, "wide", &config).await;
    let mut children = Vec::new();
    for i in 0..1000 {
        let m = image_manifest(&config, &[], json!({ "annotations": { "n": i.to_string() } }));
        let r = put_manifest(&c, &srv, "wide", &digest(&m), OCI_MANIFEST, &m).await;
        assert_eq!(r.status(), 201);
        children.push(m);
    }
    let refs: Vec<(&[u8], &str)> = children.iter().map(|m| (m.as_slice(), "amd64")).collect();
    let index = index_manifest(&refs);
    let r = put_manifest(&c, &srv, "wide", "all", OCI_INDEX, &index).await;
    assert_eq!(r.status(), 201);
    let got = c
        .get(srv.url("/v2/wide/manifests/all"))
        .header("accept", OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), &index[..]);
}

async fn request_on(stream: &mut tokio::net::TcpStream, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn connections_past_the_limit_are_told_to_retry_and_idle_ones_close() {
    let limits = ConnLimits {
        max_connections: 16,
        header_read_timeout: Duration::from_secs(2),
        ..ConnLimits::default()
    };
    let srv = TestServer::start_with_limits(false, limits).await;
    let mut open = Vec::new();
    for _ in 0..16 {
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        assert!(request_on(&mut s, "/v2/").await.starts_with("HTTP/1.1 200"));
        open.push(s);
    }
    // The 17th is answered, clearly, and closed.
    let mut extra = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let answer = request_on(&mut extra, "/v2/").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("max_connections"), "{answer}");
    let mut rest = Vec::new();
    assert_eq!(
        extra.read_to_end(&mut rest).await.unwrap_or(0),
        0,
        "closed after the answer"
    );
    // One ends: there is room again.
    drop(open.pop());
    let mut s = None;
    for _ in 0..50 {
        let mut c = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        if request_on(&mut c, "/v2/").await.starts_with("HTTP/1.1 200") {
            s = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(s.is_some(), "a connection is served once another ended");
    // An idle keep-alive connection is closed by the server after header_read_timeout.
    let idle = &mut open[0];
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf))
        .await
        .expect("the server closes an idle connection")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_silent_connection_past_the_limit_is_let_go_long_before_the_idle_timeout() {
    let limits = ConnLimits {
        max_connections: 1,
        header_read_timeout: Duration::from_secs(300),
        ..ConnLimits::default()
    };
    let srv = TestServer::start_with_limits(false, limits).await;
    let mut admitted = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    assert!(request_on(&mut admitted, "/v2/").await.starts_with("HTTP/1.1 200"));
    // Over the limit and sending nothing: holding its socket for the admitted
    // connections' idle allowance (300 s here) would let idle sockets pile up unbounded.
    let mut silent = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut buf))
        .await
        .expect("the server lets a silent connection over the limit go")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer: it asked nothing");
    // The admitted connection is still served.
    assert!(request_on(&mut admitted, "/v2/").await.starts_with("HTTP/1.1 200"));
}
