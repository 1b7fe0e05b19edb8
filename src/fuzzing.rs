//! Entry points for the fuzz targets in `fuzz/` (cargo fuzz) and for the test that
//! replays their corpora (`tests/fuzz_corpora.rs`): one per thing gatehouse parses from
//! the network. Each feeds the input to the real parser and checks what must hold
//! whatever the input: no panic, and round trips where a parser has an inverse. Not an
//! API: hidden from the documentation.

use crate::oci::route::OciRoute;
use crate::oci::{Digest, Reference, RepoName, Tag};
use std::sync::OnceLock;

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// The canonical path of a route.
fn path_of(route: &OciRoute) -> String {
    match route {
        OciRoute::Base => "/v2/".to_owned(),
        OciRoute::Catalog => "/v2/_catalog".to_owned(),
        OciRoute::Tags { name } => format!("/v2/{name}/tags/list"),
        OciRoute::Manifest { name, reference } => format!("/v2/{name}/manifests/{reference}"),
        OciRoute::Blob { name, digest } => format!("/v2/{name}/blobs/{digest}"),
        OciRoute::UploadStart { name } => format!("/v2/{name}/blobs/uploads/"),
        OciRoute::Upload { name, id } => format!("/v2/{name}/blobs/uploads/{id}"),
        OciRoute::Referrers { name, digest } => format!("/v2/{name}/referrers/{digest}"),
        OciRoute::Signatures { name, digest } => format!("/extensions/v2/{name}/signatures/{digest}"),
    }
}

/// `/v2/…` and extension paths as the router sees them: a route prints back to a path
/// that routes the same, and a name the gateway maps keeps its public form.
pub fn v2_path(data: &[u8]) {
    let Some(path) = text(data) else { return };
    let Some(route) = crate::oci::route::parse_path(path) else {
        return;
    };
    assert_eq!(
        crate::oci::route::parse_path(&path_of(&route)).as_ref(),
        Some(&route),
        "{path:?}"
    );
    let name = match &route {
        OciRoute::Base | OciRoute::Catalog => return,
        OciRoute::Tags { name }
        | OciRoute::Manifest { name, .. }
        | OciRoute::Blob { name, .. }
        | OciRoute::UploadStart { name }
        | OciRoute::Upload { name, .. }
        | OciRoute::Referrers { name, .. }
        | OciRoute::Signatures { name, .. } => name,
    };
    if let Ok(mapped) = crate::gateway::mapping::RepoPath::parse(name) {
        assert_eq!(&mapped.public, name);
        assert!(mapped.backend_name().parse::<RepoName>().is_ok(), "{name:?}");
    }
}

/// Digests, repository names, tags and references: parsed ones print back the same.
pub fn references(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(d) = s.parse::<Digest>() {
        assert_eq!(d.to_string().parse::<Digest>().ok(), Some(d));
    }
    if let Ok(n) = s.parse::<RepoName>() {
        assert_eq!(n.as_str(), s);
    }
    if let Ok(t) = s.parse::<Tag>() {
        assert_eq!(t.as_str(), s);
    }
    if let Ok(r) = s.parse::<Reference>() {
        assert_eq!(r.to_string(), s);
    }
}

/// `Content-Range` of upload chunks and `Range` of blob reads (the first 8 bytes are the
/// blob's size).
pub fn ranges(data: &[u8]) {
    let (size, rest) = match data.split_first_chunk::<8>() {
        Some((n, rest)) => (u64::from_le_bytes(*n), rest),
        None => (0, data),
    };
    let Some(s) = text(rest) else { return };
    if let Ok((start, end)) = crate::oci::range::content_range(s) {
        assert_eq!(
            crate::oci::range::content_range(&format!("{start}-{end}")),
            Ok((start, end))
        );
    }
    if let Ok(Some(r)) = crate::oci::range::byte_range(s, size) {
        assert!(r.start < r.end && r.end <= size, "{s:?} of {size} gave {r:?}");
    }
}

/// Token request scopes: what parses prints back to what parses the same.
pub fn scopes(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(scopes) = crate::gateway::scope::parse_scopes(s.split('&')) {
        let printed: Vec<String> = scopes.iter().map(|a| a.to_scope()).collect();
        let again = crate::gateway::scope::parse_scopes(printed.iter().map(String::as_str));
        assert_eq!(again.as_ref(), Ok(&scopes));
    }
}

/// `Authorization` header values, as bytes off the wire.
pub fn authorization(data: &[u8]) {
    let Ok(value) = axum::http::HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(axum::http::header::AUTHORIZATION, value);
    match crate::identity::credentials::authorization(&headers) {
        Ok(Some(v)) => {
            if let Ok(Some(c)) = crate::identity::credentials::parse_basic(v) {
                let again = crate::identity::credentials::basic_header(&c.username, c.password.expose());
                let back = crate::identity::credentials::parse_basic(&again);
                assert!(
                    matches!(back, Ok(Some(b)) if b.username == c.username && b.password.expose() == c.password.expose())
                );
            }
        }
        Ok(None) => unreachable!("a header was given"),
        Err(_) => assert!(data.iter().any(|b| !(0x20..0x7f).contains(b) && *b != b'\t')),
    }
}

fn keyring() -> &'static crate::gateway::token::Keyring {
    static KEYS: OnceLock<crate::gateway::token::Keyring> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("gatehouse-fuzz-keys-{}", std::process::id()));
        crate::gateway::token::Keyring::load_or_create(&dir).expect("token keys")
    })
}

/// Bearer tokens: nothing but a token signed by the key verifies. The input is used as
/// it is, and also as the claims of a token with a forged or no signature.
pub fn token(data: &[u8]) {
    use crate::gateway::token::Expiry;
    let keys = keyring();
    let Some(s) = text(data) else { return };
    assert!(keys.verify(s, "gatehouse", "gatehouse", Expiry::Ignore).is_err());
    let b64 = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    let (header, claims) = s.split_once('\n').unwrap_or((r#"{"alg":"ES256","typ":"JWT"}"#, s));
    for sig in ["", "AAAA", &b64(&[0u8; 64])] {
        let forged = format!("{}.{}.{sig}", b64(header.as_bytes()), b64(claims.as_bytes()));
        assert!(
            keys.verify(&forged, "gatehouse", "gatehouse", Expiry::Ignore).is_err(),
            "{forged}"
        );
    }
}

/// Manifests and indexes (the first byte picks the Content-Type sent with them).
pub fn manifest(data: &[u8]) {
    let Some((pick, body)) = data.split_first() else { return };
    let content_type = match pick % 5 {
        0 => None,
        1 => Some(crate::oci::media::OCI_MANIFEST),
        2 => Some(crate::oci::media::OCI_INDEX),
        3 => Some(crate::oci::media::DOCKER_MANIFEST),
        _ => Some(crate::oci::media::DOCKER_MANIFEST_LIST),
    };
    if let Ok(m) = crate::store::manifests::parse(content_type, body) {
        // What a manifest refers to are digests that print back the same.
        for d in m.required_blobs.iter().chain(&m.children).chain(&m.subject) {
            assert_eq!(d.to_string().parse::<Digest>().ok().as_ref(), Some(d));
        }
    }
}

/// Bodies of `PUT /extensions/v2/<name>/signatures/<digest>`.
pub fn signature_body(data: &[u8]) {
    static MANIFEST: OnceLock<Digest> = OnceLock::new();
    let manifest = MANIFEST.get_or_init(|| Digest::sha256_of(b"a manifest"));
    if let Ok(sig) = crate::store::signatures::parse_put(data, manifest) {
        assert!(sig.name.starts_with(&format!("{manifest}@")));
    }
}

/// A store in a temporary directory and a runtime to drive it, for the targets that go
/// through the server.
struct Server {
    runtime: tokio::runtime::Runtime,
    app: crate::app::App,
}

const ADMIN_PASSWORD: &str = "fuzzing-admin-password";

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = std::env::temp_dir().join(format!("gatehouse-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = crate::config::Config {
            data_dir: dir,
            ..crate::config::Config::default()
        };
        let password = crate::identity::credentials::Secret::new(ADMIN_PASSWORD);
        let app = runtime
            .block_on(crate::app::build(&cfg, Some(password), false))
            .expect("app");
        Server { runtime, app }
    })
}

/// docker-archive and OCI archive tarballs, imported as they stream: a refused archive
/// leaves the repository without a version.
pub fn archive(data: &[u8]) {
    let s = server();
    let Some(reg) = s.app.registry.clone() else { return };
    let body = bytes::Bytes::copy_from_slice(data);
    s.runtime.block_on(async move {
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
        let name = "fuzz/archive/img";
        match reg.import_archive(name, Box::pin(stream), None).await {
            Ok(report) => {
                if report.version.is_some() {
                    // Start the next input from an empty repository.
                    let _ = reg.delete_repository(name, None).await;
                }
            }
            Err(_) => {
                let versions = reg.versions(name).await.unwrap_or_default();
                assert!(versions.is_empty(), "a refused archive made {versions:?}");
            }
        }
    });
}

/// JSON bodies of the admin API: the first byte picks the endpoint; the answer is never
/// a server error.
pub fn admin_body(data: &[u8]) {
    use tower::ServiceExt;
    let Some((pick, body)) = data.split_first() else { return };
    const ENDPOINTS: &[(&str, &str)] = &[
        ("POST", "/api/v1/users"),
        ("POST", "/api/v1/orgs"),
        ("PATCH", "/api/v1/orgs/fuzz"),
        ("POST", "/api/v1/orgs/fuzz/products"),
        ("PATCH", "/api/v1/orgs/fuzz/products/web"),
        ("POST", "/api/v1/orgs/fuzz/members"),
        ("POST", "/api/v1/orgs/fuzz/pull-secrets"),
        ("POST", "/api/v1/orgs/fuzz/products/web/remotes"),
        ("POST", "/api/v1/smart-proxies"),
        ("POST", "/api/v1/repositories/fuzz/web/app/copy"),
        ("POST", "/api/v1/repositories/fuzz/web/app/remove"),
        ("POST", "/api/v1/repositories/fuzz/web/app/tag"),
        ("POST", "/api/v1/repositories/fuzz/web/app/readme"),
        ("PUT", "/api/v1/distributions/fuzz/web/dist"),
    ];
    let (method, path) = ENDPOINTS[usize::from(*pick) % ENDPOINTS.len()];
    let s = server();
    let router = s.app.router.clone();
    let body = body.to_vec();
    let status = s.runtime.block_on(async move {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
        let req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Basic {auth}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .expect("request");
        router.oneshot(req).await.map(|r| r.status())
    });
    let status = status.expect("router");
    assert!(!status.is_server_error(), "{method} {path} answered {status}");
}
