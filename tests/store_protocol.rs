//! The store's /v2/ API at protocol level: every endpoint of the OCI Distribution spec,
//! its headers, and its errors, against the real server on an ephemeral port.

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn base_endpoint_answers_200_with_api_version() {
    let srv = TestServer::start().await;
    let r = http().get(srv.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["docker-distribution-api-version"], "registry/2.0");
}

#[tokio::test]
async fn monolithic_upload_then_get_head_and_ranges() {
    let srv = TestServer::start().await;
    let c = http();
    let data = random_bytes(10_000, 1);
    let d = push_blob(&c, &srv, "acme/web/app", &data).await;

    let r = c
        .get(srv.url(&format!("/v2/acme/web/app/blobs/{d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["docker-content-digest"], d.as_str());
    assert_eq!(r.headers()["content-length"], "10000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[..]);

    let r = c
        .head(srv.url(&format!("/v2/acme/web/app/blobs/{d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "10000");
    assert_eq!(r.headers()["docker-content-digest"], d.as_str());

    let r = c
        .get(srv.url(&format!("/v2/acme/web/app/blobs/{d}")))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 100-199/10000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[100..200]);

    let r = c
        .get(srv.url(&format!("/v2/acme/web/app/blobs/{d}")))
        .header("range", "bytes=20000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */10000");
    assert_eq!(error_code(r).await, "RANGE_INVALID");
}

#[tokio::test]
async fn post_then_put_upload_and_sha512() {
    let srv = TestServer::start().await;
    let c = http();
    let data = random_bytes(5000, 2);
    let r = c.post(srv.url("/v2/a/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(r.headers().contains_key("docker-upload-uuid"));
    let d512 = gatehouse::oci::Digest::of(gatehouse::oci::DigestAlgorithm::Sha512, &data).to_string();
    let r = c
        .put(srv.url(&format!("{loc}?digest={d512}")))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"], format!("/v2/a/blobs/{d512}").as_str());
    let got = c.get(srv.url(&format!("/v2/a/blobs/{d512}"))).send().await.unwrap();
    assert_eq!(got.headers()["docker-content-digest"], d512.as_str());
    assert_eq!(got.bytes().await.unwrap().as_ref(), &data[..]);
}

#[tokio::test]
async fn chunked_upload_with_status_and_out_of_order_chunk() {
    let srv = TestServer::start().await;
    let c = http();
    let data = random_bytes(3000, 3);
    let loc = open_session(&c, &srv, "a").await;

    let r = patch_chunk(&c, &srv.url(&loc), Some("0-999"), &data[..1000]).await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["range"], "0-999");

    // A chunk that does not continue at byte 1000 is refused and changes nothing.
    let r = patch_chunk(&c, &srv.url(&loc), Some("1500-2999"), &data[1500..]).await;
    assert_eq!(r.status(), 416);
    assert_eq!(error_code(r).await, "RANGE_INVALID");

    let r = c.get(srv.url(&loc)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"], "0-999");

    let r = patch_chunk(&c, &srv.url(&loc), Some("1000-1999"), &data[1000..2000]).await;
    assert_eq!(r.headers()["range"], "0-1999");
    let d = digest(&data);
    let r = c
        .put(srv.url(&format!("{loc}?digest={d}")))
        .body(data[2000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let got = get_bytes(&c, &srv.url(&format!("/v2/a/blobs/{d}"))).await;
    assert_eq!(got.as_ref(), &data[..]);

    // The session is gone once completed.
    let r = c.get(srv.url(&loc)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn blob_whose_bytes_do_not_match_its_digest_is_rejected_and_nothing_stored() {
    let srv = TestServer::start().await;
    let c = http();
    let claimed = digest(b"the real content");
    let r = c
        .post(srv.url(&format!("/v2/a/blobs/uploads/?digest={claimed}")))
        .body("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = c.head(srv.url(&format!("/v2/a/blobs/{claimed}"))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let forged = digest(b"forged");
    let r = c.head(srv.url(&format!("/v2/a/blobs/{forged}"))).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Same through a session: the PUT fails and the session is discarded.
    let loc = open_session(&c, &srv, "a").await;
    let r = c
        .put(srv.url(&format!("{loc}?digest={claimed}")))
        .body("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    assert_eq!(c.get(srv.url(&loc)).send().await.unwrap().status(), 404);
    let staged: Vec<_> = std::fs::read_dir(srv.dir.path().join("uploads")).unwrap().collect();
    assert!(staged.is_empty(), "no staged bytes left behind: {staged:?}");
    let blobs = srv.registry.blob_store().list().await.unwrap();
    assert!(blobs.is_empty(), "no stored blobs: {blobs:?}");
}

#[tokio::test]
async fn bad_digests_and_unknown_uploads() {
    let srv = TestServer::start().await;
    let c = http();
    let r = c.get(srv.url("/v2/a/blobs/sha256:1234")).send().await.unwrap();
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = c
        .post(srv.url("/v2/a/blobs/uploads/?digest=md5:abc"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c.get(srv.url("/v2/a/blobs/uploads/../../etc")).send().await.unwrap();
    assert!(r.status().is_client_error());
    let r = c
        .patch(srv.url("/v2/a/blobs/uploads/not-a-session"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    let r = c
        .get(srv.url(&format!("/v2/a/blobs/{}", digest(b"nope"))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
    // A session of repository a is not usable through repository b.
    let r = c.post(srv.url("/v2/a/blobs/uploads/")).send().await.unwrap();
    let id = r.headers()["docker-upload-uuid"].to_str().unwrap().to_owned();
    let r = c
        .get(srv.url(&format!("/v2/b/blobs/uploads/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
    // PUT without digest
    let r = c
        .put(srv.url(&format!("/v2/a/blobs/uploads/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
}

#[tokio::test]
async fn cancel_upload_removes_session() {
    let srv = TestServer::start().await;
    let c = http();
    let loc = open_session(&c, &srv, "a").await;
    c.patch(srv.url(&loc)).body("partial").send().await.unwrap();
    let r = c.delete(srv.url(&loc)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = c.get(srv.url(&loc)).send().await.unwrap();
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn invalid_names_are_refused() {
    let srv = TestServer::start().await;
    let long = "a".repeat(300);
    for name in [
        "a/../b",
        "../etc",
        "Acme/web",
        long.as_str(),
        "a//b",
        "-a",
        "a/%2e%2e/b",
    ] {
        for (method, path) in [
            ("POST", format!("/v2/{name}/blobs/uploads/")),
            ("GET", format!("/v2/{name}/tags/list")),
        ] {
            let (status, body) = raw_request(srv.addr, method, &path).await;
            assert_eq!(status, 400, "{method} {path}: {body}");
            assert!(body.contains("NAME_INVALID"), "{method} {path}: {body}");
        }
    }
}

#[tokio::test]
async fn manifest_push_get_head_by_tag_and_digest() {
    let srv = TestServer::start().await;
    let c = http();
    let m = push_image(&c, &srv, "acme/web/app", "1.0", 4).await;
    let d = digest(&m);
    for reference in ["1.0", d.as_str()] {
        let r = c
            .get(srv.url(&format!("/v2/acme/web/app/manifests/{reference}")))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], OCI_MANIFEST);
        assert_eq!(r.headers()["docker-content-digest"], d.as_str());
        assert_eq!(r.bytes().await.unwrap().as_ref(), &m[..]);
        let r = c
            .head(srv.url(&format!("/v2/acme/web/app/manifests/{reference}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-length"], m.len().to_string().as_str());
    }
    let r = c.get(srv.url("/v2/acme/web/app/manifests/2.0")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    let r = c.get(srv.url("/v2/acme/nothing/manifests/1.0")).send().await.unwrap();
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
    let r = c
        .get(srv.url("/v2/acme/web/app/manifests/bad@tag"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "TAG_INVALID");
}

#[tokio::test]
async fn manifest_with_missing_blob_is_rejected_and_tag_unchanged() {
    let srv = TestServer::start().await;
    let c = http();
    let good = push_image(&c, &srv, "a", "latest", 5).await;
    let config = config_blob("amd64");
    let missing = random_bytes(100, 6);
    let bad = image_manifest(&config, &[&missing], json!({}));
    let r = put_manifest(&c, &srv, "a", "latest", OCI_MANIFEST, &bad).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(body["errors"][0]["detail"]["digest"], digest(&missing).as_str());
    let r = c.get(srv.url("/v2/a/manifests/latest")).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &good[..]);
    let r = c
        .get(srv.url(&format!("/v2/a/manifests/{}", digest(&bad))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn garbage_truncated_and_mismatched_manifests_are_invalid() {
    let srv = TestServer::start().await;
    let c = http();
    let good = push_image(&c, &srv, "a", "v1", 7).await;
    let truncated = &good[..good.len() / 2];
    for body in [
        truncated,
        b"not json at all".as_slice(),
        b"{}".as_slice(),
        b"[1,2]".as_slice(),
    ] {
        let r = put_manifest(&c, &srv, "a", "v2", OCI_MANIFEST, body).await;
        assert_eq!(r.status(), 400);
        assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    }
    // Content-Type disagrees with the document's mediaType.
    let r = put_manifest(&c, &srv, "a", "v2", OCI_INDEX, &good).await;
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");
    // PUT by digest with a digest that is not the body's.
    let wrong = digest(b"other");
    let r = put_manifest(&c, &srv, "a", &wrong, OCI_MANIFEST, &good).await;
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = c.get(srv.url("/v2/a/manifests/v2")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn oversized_manifest_is_413() {
    let srv = TestServer::start().await;
    let c = http();
    let big = vec![b' '; 4 * 1024 * 1024 + 1];
    let r = put_manifest(&c, &srv, "a", "big", OCI_MANIFEST, &big).await;
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r).await, "SIZE_INVALID");
}

/// A client still writing an oversized manifest (no `Expect: 100-continue`) reads the
/// 413 with the OCI error, not a broken pipe; one that waits for `100 Continue` gets the
/// 413 before sending anything.
#[tokio::test]
async fn oversized_manifest_body_is_read_before_the_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TestServer::start().await;
    let body = vec![b' '; 6 * 1024 * 1024];
    for chunked in [false, true] {
        let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
        let framing = if chunked {
            "Transfer-Encoding: chunked".to_owned()
        } else {
            format!("Content-Length: {}", body.len())
        };
        let head = format!(
            "PUT /v2/a/manifests/big HTTP/1.1\r\nHost: test\r\nContent-Type: {OCI_MANIFEST}\r\n{framing}\r\nConnection: close\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        // The whole body goes out: more than the socket buffers hold, so a server that
        // closed early would make these writes fail.
        if chunked {
            for part in body.chunks(256 * 1024) {
                s.write_all(format!("{:x}\r\n", part.len()).as_bytes()).await.unwrap();
                s.write_all(part).await.unwrap();
                s.write_all(b"\r\n").await.unwrap();
            }
            s.write_all(b"0\r\n\r\n").await.unwrap();
        } else {
            s.write_all(&body)
                .await
                .expect("the server reads the body before answering");
        }
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).await.unwrap();
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 413"), "chunked={chunked}: {text}");
        assert!(text.contains("\"SIZE_INVALID\""), "{text}");
    }
    // Expect: 100-continue: answered at once, the body never sent.
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let head = format!(
        "PUT /v2/a/manifests/big HTTP/1.1\r\nHost: test\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(
        srv.registry
            .tags(&"a".parse().unwrap(), None, None)
            .await
            .unwrap_or_default()
            .is_empty(),
        "nothing was stored"
    );
}

/// The PUT that closes an upload may carry a last chunk; its `Content-Range` must
/// continue where the upload stands, as for PATCH (416 otherwise, and nothing changes).
#[tokio::test]
async fn closing_put_with_a_range_that_does_not_continue_is_416() {
    let srv = TestServer::start().await;
    let c = http();
    let data = random_bytes(3000, 4);
    let d = digest(&data);
    let loc = open_session(&c, &srv, "a").await;
    let r = patch_chunk(&c, &srv.url(&loc), Some("0-999"), &data[..1000]).await;
    assert_eq!(r.status(), 202);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let put = |range: &'static str, part: Vec<u8>| {
        c.put(srv.url(&format!("{loc}{sep}digest={d}")))
            .header("content-range", range)
            .header("content-type", "application/octet-stream")
            .body(part)
            .send()
    };
    let r = put("1500-2999", data[1500..].to_vec()).await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["range"], "0-999");
    assert_eq!(error_code(r).await, "RANGE_INVALID");
    let r = c.get(srv.url(&loc)).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["range"].to_str().unwrap()),
        (204, "0-999")
    );
    let r = put("1000-2999", data[1000..].to_vec()).await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        get_bytes(&c, &srv.url(&format!("/v2/a/blobs/{d}"))).await.as_ref(),
        &data[..]
    );
}

#[tokio::test]
async fn chunk_length_must_match_content_range_and_range_must_parse() {
    let srv = TestServer::start().await;
    let c = http();
    let loc = open_session(&c, &srv, "a").await;
    let r = c
        .patch(srv.url(&loc))
        .header("content-range", "0-99")
        .body(vec![1u8; 50])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "SIZE_INVALID");
    let r = c.get(srv.url(&loc)).send().await.unwrap();
    assert_eq!(r.headers()["range"], "0-0", "the mismatched chunk was not kept");
    let r = c
        .patch(srv.url(&loc))
        .header("content-range", "zero-to-ten")
        .body(vec![1u8; 11])
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_INVALID");
    // An end offset at the top of the u64 range is refused, not overflowed.
    let r = c
        .patch(srv.url(&loc))
        .header("content-range", format!("0-{}", u64::MAX))
        .body(vec![1u8; 11])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "SIZE_INVALID");
}

#[tokio::test]
async fn index_requires_children_and_negotiates_on_accept() {
    let srv = TestServer::start().await;
    let c = http();
    let amd = push_image(&c, &srv, "multi", "amd", 8).await;
    let arm_cfg = config_blob("arm64");
    let arm_layer = random_bytes(500, 9);
    push_blob(&c, &srv, "multi", &arm_cfg).await;
    push_blob(&c, &srv, "multi", &arm_layer).await;
    let arm = image_manifest(&arm_cfg, &[&arm_layer], json!({}));
    let index = index_manifest(&[(&amd, "amd64"), (&arm, "arm64")]);

    // The arm64 manifest is not pushed yet.
    let r = put_manifest(&c, &srv, "multi", "latest", OCI_INDEX, &index).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");

    assert_eq!(
        put_manifest(&c, &srv, "multi", &digest(&arm), OCI_MANIFEST, &arm)
            .await
            .status(),
        201
    );
    assert_eq!(
        put_manifest(&c, &srv, "multi", "latest", OCI_INDEX, &index)
            .await
            .status(),
        201
    );

    let r = c
        .get(srv.url("/v2/multi/manifests/latest"))
        .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], OCI_INDEX);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &index[..]);
    // A client that only reads image manifests gets the linux/amd64 image.
    let r = c
        .get(srv.url("/v2/multi/manifests/latest"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["docker-content-digest"], digest(&amd).as_str());
}

#[tokio::test]
async fn docker_schema2_manifest_and_list_are_accepted() {
    let srv = TestServer::start().await;
    let c = http();
    let cfg = config_blob("amd64");
    let layer = random_bytes(300, 10);
    push_blob(&c, &srv, "d", &cfg).await;
    push_blob(&c, &srv, "d", &layer).await;
    let dm = "application/vnd.docker.distribution.manifest.v2+json";
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": dm,
        "config": { "mediaType": "application/vnd.docker.container.image.v1+json", "digest": digest(&cfg), "size": cfg.len() },
        "layers": [{ "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": digest(&layer), "size": layer.len() }]
    })).unwrap();
    assert_eq!(put_manifest(&c, &srv, "d", "v1", dm, &m).await.status(), 201);
    let dl = "application/vnd.docker.distribution.manifest.list.v2+json";
    let list = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": dl,
        "manifests": [{ "mediaType": dm, "digest": digest(&m), "size": m.len(), "platform": { "architecture": "amd64", "os": "linux" } }]
    })).unwrap();
    assert_eq!(put_manifest(&c, &srv, "d", "list", dl, &list).await.status(), 201);
    let r = c
        .get(srv.url("/v2/d/manifests/list"))
        .header("accept", dl)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], dl);
}

#[tokio::test]
async fn foreign_layers_may_be_absent() {
    let srv = TestServer::start().await;
    let c = http();
    let cfg = config_blob("amd64");
    push_blob(&c, &srv, "win", &cfg).await;
    let foreign = json!({
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": digest(b"windows base layer"), "size": 18, "urls": ["https://example.invalid/layer"]
    });
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &cfg), "layers": [foreign]
    }))
    .unwrap();
    assert_eq!(
        put_manifest(&c, &srv, "win", "ltsc", OCI_MANIFEST, &m).await.status(),
        201
    );
}

#[tokio::test]
async fn several_tags_in_one_put() {
    let srv = TestServer::start().await;
    let c = http();
    let cfg = config_blob("amd64");
    push_blob(&c, &srv, "t", &cfg).await;
    let m = image_manifest(&cfg, &[], json!({}));
    let d = digest(&m);
    let r = c
        .put(srv.url(&format!("/v2/t/manifests/{d}?tag=a&tag=b&tag=c")))
        .header("content-type", OCI_MANIFEST)
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let tags: Vec<_> = r
        .headers()
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(tags, ["a", "b", "c"]);
    let list: Value = get_json(&c, &srv.url("/v2/t/tags/list")).await;
    assert_eq!(list["tags"], json!(["a", "b", "c"]));
    let r = c
        .put(srv.url(&format!("/v2/t/manifests/{d}?tag=..bad")))
        .header("content-type", OCI_MANIFEST)
        .body(m)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "TAG_INVALID");
}

#[tokio::test]
async fn tag_and_manifest_deletion() {
    let srv = TestServer::start().await;
    let c = http();
    let m = push_image(&c, &srv, "del", "one", 11).await;
    let d = digest(&m);
    assert_eq!(
        put_manifest(&c, &srv, "del", "two", OCI_MANIFEST, &m).await.status(),
        201
    );

    let r = c.delete(srv.url("/v2/del/manifests/one")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        c.get(srv.url("/v2/del/manifests/one")).send().await.unwrap().status(),
        404
    );
    assert_eq!(
        c.get(srv.url("/v2/del/manifests/two")).send().await.unwrap().status(),
        200
    );

    let r = c
        .delete(srv.url(&format!("/v2/del/manifests/{d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        c.get(srv.url(&format!("/v2/del/manifests/{d}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.get(srv.url("/v2/del/manifests/two")).send().await.unwrap().status(),
        404
    );
    let r = c.delete(srv.url("/v2/del/manifests/one")).send().await.unwrap();
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn blob_delete_unlinks_from_repository() {
    let srv = TestServer::start().await;
    let c = http();
    let d = push_blob(&c, &srv, "b", b"bytes").await;
    assert_eq!(
        c.delete(srv.url(&format!("/v2/b/blobs/{d}")))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(head_status(&c, &srv.url(&format!("/v2/b/blobs/{d}"))).await, 404);
    let r = c.delete(srv.url(&format!("/v2/b/blobs/{d}"))).send().await.unwrap();
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn cross_repository_mount_and_fallback() {
    let srv = TestServer::start().await;
    let c = http();
    let d = push_blob(&c, &srv, "src", b"shared layer").await;
    let r = c
        .post(srv.url(&format!("/v2/dst/blobs/uploads/?mount={d}&from=src")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"], format!("/v2/dst/blobs/{d}").as_str());
    assert_eq!(head_status(&c, &srv.url(&format!("/v2/dst/blobs/{d}"))).await, 200);

    // Not in the source repository: a normal upload session instead.
    let other = digest(b"elsewhere");
    let r = c
        .post(srv.url(&format!("/v2/dst2/blobs/uploads/?mount={other}&from=src")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/v2/dst2/blobs/uploads/")
    );
    // Blobs of one repository are not readable through another without a mount.
    assert_eq!(head_status(&c, &srv.url(&format!("/v2/dst3/blobs/{d}"))).await, 404);
}

#[tokio::test]
async fn tags_and_catalog_paginate_with_link_headers() {
    let srv = TestServer::start().await;
    let c = http();
    let cfg = config_blob("amd64");
    for repo in ["r/a", "r/b", "r/c"] {
        push_blob(&c, &srv, repo, &cfg).await;
    }
    let m = image_manifest(&cfg, &[], json!({}));
    for tag in ["v1", "v2", "v3", "v4", "v5"] {
        assert_eq!(put_manifest(&c, &srv, "r/a", tag, OCI_MANIFEST, &m).await.status(), 201);
    }
    let r = c.get(srv.url("/v2/r/a/tags/list?n=2")).send().await.unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    assert_eq!(link, "</v2/r/a/tags/list?n=2&last=v2>; rel=\"next\"");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!({ "name": "r/a", "tags": ["v1", "v2"] }));
    let r = c.get(srv.url("/v2/r/a/tags/list?n=2&last=v4")).send().await.unwrap();
    assert!(r.headers().get("link").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["tags"], json!(["v5"]));
    let v: Value = get_json(&c, &srv.url("/v2/r/a/tags/list?n=0")).await;
    assert_eq!(v["tags"], json!([]));
    let r = c.get(srv.url("/v2/r/a/tags/list?n=abc")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = c.get(srv.url("/v2/r/zzz/tags/list")).send().await.unwrap();
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
    // A repository holding only blobs has an empty list, as has a page past the end.
    let v: Value = get_json(&c, &srv.url("/v2/r/b/tags/list")).await;
    assert_eq!(v, json!({ "name": "r/b", "tags": [] }));
    let v: Value = get_json(&c, &srv.url("/v2/r/a/tags/list?last=v5")).await;
    assert_eq!(v["tags"], json!([]));
    // Lexical order, whatever order the tags came in.
    for tag in ["v10", "latest", "V0"] {
        assert_eq!(put_manifest(&c, &srv, "r/c", tag, OCI_MANIFEST, &m).await.status(), 201);
    }
    let v: Value = get_json(&c, &srv.url("/v2/r/c/tags/list")).await;
    assert_eq!(v["tags"], json!(["V0", "latest", "v10"]));

    let r = c.get(srv.url("/v2/_catalog?n=2")).send().await.unwrap();
    assert_eq!(r.headers()["link"], "</v2/_catalog?n=2&last=r%2Fb>; rel=\"next\"");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["repositories"], json!(["r/a", "r/b"]));
    let v: Value = get_json(&c, &srv.url("/v2/_catalog?n=2&last=r%2Fb")).await;
    assert_eq!(v["repositories"], json!(["r/c"]));
}

#[tokio::test]
async fn referrers_api_with_subject_and_artifact_type_filter() {
    let srv = TestServer::start().await;
    let c = http();
    let subject = push_image(&c, &srv, "app", "v1", 12).await;
    let sd = digest(&subject);
    // An artifact as ORAS pushes it: empty config, artifactType, annotations, subject.
    let empty = b"{}".to_vec();
    push_blob(&c, &srv, "app", &empty).await;
    let sbom = br#"{"spdxVersion":"SPDX-2.3"}"#.to_vec();
    push_blob(&c, &srv, "app", &sbom).await;
    let artifact = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": digest(&empty), "size": 2 },
        "layers": [descriptor("application/spdx+json", &sbom)],
        "subject": descriptor(OCI_MANIFEST, &subject),
        "annotations": { "org.opencontainers.image.created": "2026-11-23T00:00:00Z" }
    }))
    .unwrap();
    let ad = digest(&artifact);
    let r = put_manifest(&c, &srv, "app", &ad, OCI_MANIFEST, &artifact).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["oci-subject"], sd.as_str());

    let r = c.get(srv.url(&format!("/v2/app/referrers/{sd}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], OCI_INDEX);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(v["manifests"][0]["digest"], ad.as_str());
    assert_eq!(v["manifests"][0]["artifactType"], "application/spdx+json");
    assert_eq!(
        v["manifests"][0]["annotations"]["org.opencontainers.image.created"],
        "2026-11-23T00:00:00Z"
    );

    let r = c
        .get(srv.url(&format!("/v2/app/referrers/{sd}?artifactType=application/x-other")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["manifests"], json!([]));
    // A subject with no referrers (or not present at all) is an empty index, not a 404.
    let r = c
        .get(srv.url(&format!("/v2/app/referrers/{}", digest(b"nothing"))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(srv.url("/v2/app/referrers/sha256:xyz")).send().await.unwrap();
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
}

#[tokio::test]
async fn unknown_endpoints_and_methods() {
    let srv = TestServer::start().await;
    let c = http();
    let r = c.get(srv.url("/v2/a/whatever/x")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = c.post(srv.url("/v2/a/manifests/latest")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(error_code(r).await, "UNSUPPORTED");
}

/// A client that sends part of a blob and disconnects leaves no visible blob, and the
/// session keeps only the bytes of whole chunks.
#[tokio::test]
async fn client_disconnect_mid_upload_leaves_no_blob() {
    use tokio::io::AsyncWriteExt;
    let srv = TestServer::start().await;
    let data = random_bytes(200_000, 13);
    let d = digest(&data);
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let head = format!(
        "POST /v2/cut/blobs/uploads/?digest={d} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        data.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&data[..50_000]).await.unwrap();
    s.flush().await.unwrap();
    drop(s);

    let c = http();
    let loc = open_session(&c, &srv, "cut").await;
    let mut s = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        data.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&data[..70_000]).await.unwrap();
    s.flush().await.unwrap();
    drop(s);

    // What is staged: local files with their sizes, and sessions with objects in the
    // object store when sessions are staged there (then nothing is staged locally).
    let staged = async || {
        let files: Vec<u64> = std::fs::read_dir(srv.dir.path().join("uploads"))
            .unwrap()
            .flatten()
            .map(|e| e.metadata().unwrap().len())
            .collect();
        let shared = match srv.registry.shared_staging() {
            Some(store) => store.staged_sessions().await.unwrap().len(),
            None => 0,
        };
        (files, shared)
    };
    let settled = if srv.registry.shared_staging().is_some() {
        (vec![], 0)
    } else {
        (vec![0], 0) // the open session's empty file
    };
    // The server notices the disconnects; poll the observable state until it settles.
    for _ in 0..100 {
        let r = c.get(srv.url(&loc)).send().await.unwrap();
        if staged().await == settled && r.headers()["range"] == "0-0" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(head_status(&c, &srv.url(&format!("/v2/cut/blobs/{d}"))).await, 404);
    let r = c.get(srv.url(&loc)).send().await.unwrap();
    assert_eq!(r.headers()["range"], "0-0", "the broken chunk is not kept");
    assert_eq!(
        staged().await,
        settled,
        "only the open session's (empty) staging remains"
    );

    // The session is still usable after the broken chunk.
    let r = c
        .put(srv.url(&format!("{loc}?digest={d}")))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}
