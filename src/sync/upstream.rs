//! A client for one repository on another registry: the OCI Distribution API with the
//! Docker token flow (a 401 names the token endpoint; the credentials buy a bearer token
//! for the repository's pull scope), Link-paginated tag lists, manifests read with a
//! size cap, blobs streamed, and the referrers API when the remote has it.
//!
//! Errors say in plain words what went wrong and where; the sync engine records them on
//! its job.

use crate::oci::media;
use crate::store::blobs::ByteStream;
use crate::store::manifests::MAX_MANIFEST_BYTES;
use crate::store::signatures::Signature;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{ACCEPT, HeaderMap, LINK, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} refused the credentials (401 Unauthorized){}", detail(.message))]
    Unauthorized { url: String, message: String },
    #[error("{url} denied access (403 Forbidden){}", detail(.message))]
    Forbidden { url: String, message: String },
    #[error("{what} does not exist on the remote ({url}){}", detail(.message))]
    NotFound { what: String, url: String, message: String },
    #[error("{url} answered {status}{}", detail(.message))]
    Status { url: String, status: u16, message: String },
    #[error("manifest {reference} is {size} bytes, over the {limit}-byte limit")]
    ManifestTooLarge { reference: String, size: u64, limit: usize },
    #[error("{what} from the remote does not match its digest {expected} (got {actual})")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("the remote's answer is invalid: {0}")]
    Invalid(String),
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

pub type UpstreamResult<T> = Result<T, UpstreamError>;

/// Where a remote is and how to log in to it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `https://host:port` (or `http://` for a plain-HTTP registry), no path.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Every manifest media type a sync accepts.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// A manifest as the remote served it, digest verified.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub digest: String,
    pub media_type: String,
    pub content: Vec<u8>,
}

#[derive(Clone)]
enum Credential {
    Bearer(String, Instant),
    Basic,
}

/// A client for one remote registry. Cheap to share; tokens are cached per scope.
pub struct Upstream {
    http: reqwest::Client,
    endpoint: Endpoint,
    credentials: Mutex<HashMap<String, Credential>>,
}

impl Upstream {
    pub fn new(http: reqwest::Client, endpoint: Endpoint) -> Self {
        let mut endpoint = endpoint;
        endpoint.url = endpoint.url.trim_end_matches('/').to_owned();
        Self {
            http,
            endpoint,
            credentials: Mutex::new(HashMap::new()),
        }
    }

    pub fn url(&self) -> &str {
        &self.endpoint.url
    }

    /// Every tag of `repo`, following `Link` pagination.
    pub async fn tags(&self, repo: &str) -> UpstreamResult<Vec<String>> {
        let first = format!("/v2/{repo}/tags/list?n=1000");
        self.paged_list(first, &pull_scope(repo), &format!("repository {repo}"), "tags")
            .await
    }

    /// Every repository the credentials may see, following `Link` pagination.
    pub async fn catalog(&self) -> UpstreamResult<Vec<String>> {
        self.paged_list(
            "/v2/_catalog?n=1000".to_owned(),
            "registry:catalog:*",
            "the catalog",
            "repositories",
        )
        .await
    }

    /// The strings of `field` over every page of a `Link`-paginated list.
    async fn paged_list(&self, first: String, scope: &str, what: &str, field: &str) -> UpstreamResult<Vec<String>> {
        let mut path = first;
        let mut items = Vec::new();
        // A registry that keeps answering with a next page is cut off rather than
        // followed forever.
        for _ in 0..10_000 {
            let res = self.send(Method::GET, &path, scope, None).await?;
            let res = self.check(res, what).await?;
            let next = next_link(res.headers());
            let body: serde_json::Value = read_json(res, 64 * 1024 * 1024).await?;
            items.extend(
                body[field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_owned)),
            );
            match next {
                Some(n) => path = n,
                None => return Ok(items),
            }
        }
        Err(UpstreamError::Invalid(format!("{what}: the list never ends")))
    }

    /// The digest a tag points to now (a HEAD request), when the remote says it.
    pub async fn head_manifest(&self, repo: &str, reference: &str) -> UpstreamResult<Option<String>> {
        let res = self
            .send(
                Method::HEAD,
                &format!("/v2/{repo}/manifests/{reference}"),
                &pull_scope(repo),
                Some(MANIFEST_ACCEPT),
            )
            .await?;
        let res = self.check(res, &format!("manifest {repo}:{reference}")).await?;
        Ok(res
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .filter(|d| d.starts_with("sha256:"))
            .map(str::to_owned))
    }

    /// A manifest by tag or digest, read with the 4 MiB cap and checked against the
    /// digest asked for (or, by tag, against the digest the remote announced).
    pub async fn manifest(&self, repo: &str, reference: &str) -> UpstreamResult<FetchedManifest> {
        let what = format!("manifest {repo}@{reference}");
        let res = self
            .send(
                Method::GET,
                &format!("/v2/{repo}/manifests/{reference}"),
                &pull_scope(repo),
                Some(MANIFEST_ACCEPT),
            )
            .await?;
        let res = self.check(res, &what).await?;
        if let Some(len) = res.content_length()
            && len > MAX_MANIFEST_BYTES as u64
        {
            return Err(UpstreamError::ManifestTooLarge {
                reference: reference.to_owned(),
                size: len,
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let announced = res
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_type = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|c| media::essence(c).to_owned());
        let content = read_capped(res, MAX_MANIFEST_BYTES)
            .await?
            .ok_or_else(|| UpstreamError::ManifestTooLarge {
                reference: reference.to_owned(),
                size: MAX_MANIFEST_BYTES as u64 + 1,
                limit: MAX_MANIFEST_BYTES,
            })?;
        let actual = crate::oci::Digest::sha256_of(&content).to_string();
        let expected = if reference.contains(':') {
            Some(reference.to_owned())
        } else {
            announced.filter(|d| d.starts_with("sha256:"))
        };
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(UpstreamError::DigestMismatch { what, expected, actual });
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&content).map_err(|e| UpstreamError::Invalid(format!("{what} is not JSON: {e}")))?;
        // The document's own mediaType wins over a generic Content-Type.
        let media_type = doc["mediaType"]
            .as_str()
            .map(str::to_owned)
            .or(content_type)
            .filter(|m| media::manifest_kind(m).is_some())
            .or_else(|| {
                if doc["manifests"].is_array() {
                    Some(media::OCI_INDEX.to_owned())
                } else if doc["config"].is_object() {
                    Some(media::OCI_MANIFEST.to_owned())
                } else {
                    None
                }
            })
            .ok_or_else(|| UpstreamError::Invalid(format!("{what} has an unsupported media type")))?;
        Ok(FetchedManifest {
            digest: actual,
            media_type,
            content,
        })
    }

    /// The referrers of `digest` as an index document, or `None` when the remote has
    /// no referrers API (Distribution 2.x).
    pub async fn referrers(&self, repo: &str, digest: &str) -> UpstreamResult<Option<serde_json::Value>> {
        let res = self
            .send(
                Method::GET,
                &format!("/v2/{repo}/referrers/{digest}"),
                &pull_scope(repo),
                Some(media::OCI_INDEX),
            )
            .await?;
        if res.status() == StatusCode::NOT_FOUND || res.status() == StatusCode::METHOD_NOT_ALLOWED {
            return Ok(None);
        }
        let res = self.check(res, &format!("referrers of {digest}")).await?;
        Ok(Some(read_json(res, MAX_MANIFEST_BYTES).await?))
    }

    /// The simple-signing signatures of manifest `digest` through the signature
    /// extension (each checked to name that manifest), or `None` when the remote does
    /// not offer the extension.
    pub async fn signatures(&self, repo: &str, digest: &str) -> UpstreamResult<Option<Vec<Signature>>> {
        let res = self
            .send(
                Method::GET,
                &format!("/extensions/v2/{repo}/signatures/{digest}"),
                &pull_scope(repo),
                Some("application/json"),
            )
            .await?;
        // Registries without the extension answer the unknown path with some client
        // error (404 from Distribution; others 400, 401, 403 or 405): not a failure of
        // the sync, just no signatures to bring.
        if res.status().is_client_error() {
            return Ok(None);
        }
        let res = self.check(res, &format!("signatures of {digest}")).await?;
        let doc = read_json(res, MAX_MANIFEST_BYTES).await?;
        let manifest: crate::oci::Digest = digest
            .parse()
            .map_err(|_| UpstreamError::Invalid(format!("not a digest: {digest}")))?;
        let mut out = Vec::new();
        for sig in doc["signatures"].as_array().into_iter().flatten() {
            let body = serde_json::to_vec(sig).map_err(|e| UpstreamError::Invalid(e.to_string()))?;
            let parsed = crate::store::signatures::parse_put(&body, &manifest).map_err(|e| {
                UpstreamError::Invalid(format!("a signature of {digest} from the remote: {}", e.message))
            })?;
            out.push(parsed);
        }
        Ok(Some(out))
    }

    /// The simple-signing signatures of manifest `digest` published at the lookaside
    /// `base` (as containers/image lays it out: `<base>/<repo>@sha256=<hex>/signature-<n>`,
    /// numbered from 1 until the first absent one). Plain GETs: a lookaside is a static
    /// web server, not the registry.
    pub async fn lookaside_signatures(&self, base: &str, repo: &str, digest: &str) -> UpstreamResult<Vec<Signature>> {
        let Some((algo, hex)) = digest.split_once(':') else {
            return Err(UpstreamError::Invalid(format!("not a digest: {digest}")));
        };
        let mut out = Vec::new();
        for n in 1..=crate::store::signatures::MAX_SIGNATURES_PER_MANIFEST {
            let url = format!("{}/{repo}@{algo}={hex}/signature-{n}", base.trim_end_matches('/'));
            let res = self.http.get(&url).send().await.map_err(|e| {
                UpstreamError::Invalid(format!("signature lookaside {url}: {}", crate::error::chain(&e)))
            })?;
            if res.status() == StatusCode::NOT_FOUND {
                break;
            }
            if !res.status().is_success() {
                return Err(UpstreamError::Invalid(format!(
                    "signature lookaside {url} answered {}",
                    res.status()
                )));
            }
            let cap = crate::store::signatures::MAX_SIGNATURE_BYTES;
            let content = read_capped(res, cap)
                .await?
                .ok_or_else(|| UpstreamError::Invalid(format!("signature lookaside {url}: over {cap} bytes")))?;
            if content.is_empty() {
                return Err(UpstreamError::Invalid(format!("signature lookaside {url}: empty")));
            }
            out.push(crate::store::signatures::new_signature(digest, content));
        }
        Ok(out)
    }

    /// A blob's bytes as a stream (not yet verified: the caller hashes while storing).
    pub async fn blob(&self, repo: &str, digest: &str) -> UpstreamResult<(Option<u64>, ByteStream)> {
        let res = self
            .send(
                Method::GET,
                &format!("/v2/{repo}/blobs/{digest}"),
                &pull_scope(repo),
                None,
            )
            .await?;
        let res = self.check(res, &format!("blob {digest}")).await?;
        let len = res.content_length();
        let stream = res.bytes_stream().map_err(std::io::Error::other).boxed();
        Ok((len, stream))
    }

    /// Send a request, logging in first when the remote asks for it (one retry).
    async fn send(&self, method: Method, path: &str, scope: &str, accept: Option<&str>) -> UpstreamResult<Response> {
        let url = format!("{}{path}", self.endpoint.url);
        let mut fresh = false;
        loop {
            let credential = self.credentials.lock().await.get(scope).cloned();
            let credential = match credential {
                Some(Credential::Bearer(_, expires)) if expires <= Instant::now() => None,
                other => other,
            };
            let mut req = self.http.request(method.clone(), &url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            req = match &credential {
                Some(Credential::Bearer(t, _)) => req.bearer_auth(t),
                Some(Credential::Basic) => self.with_basic(req),
                None => req,
            };
            let res = req.send().await.map_err(|e| unreachable(&url, &e))?;
            if res.status() != StatusCode::UNAUTHORIZED || fresh {
                return Ok(res);
            }
            let challenge = res
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let credential = self.login(&url, &challenge, scope).await?;
            self.credentials.lock().await.insert(scope.to_owned(), credential);
            fresh = true;
        }
    }

    fn with_basic(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (&self.endpoint.username, &self.endpoint.password) {
            (Some(u), p) => req.basic_auth(u, p.as_deref()),
            _ => req,
        }
    }

    /// Answer a 401 challenge: Basic means send the credentials; Bearer means get a
    /// token from the realm for `scope` (anonymously when there are no credentials).
    async fn login(&self, url: &str, challenge: &str, scope: &str) -> UpstreamResult<Credential> {
        let (scheme, params) = parse_challenge(challenge);
        if scheme.eq_ignore_ascii_case("basic") {
            return Ok(Credential::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(UpstreamError::Unauthorized {
                url: url.to_owned(),
                message: format!("unsupported authentication scheme {scheme:?}"),
            });
        }
        let realm = params.get("realm").ok_or_else(|| UpstreamError::Unauthorized {
            url: url.to_owned(),
            message: "the Bearer challenge names no realm".into(),
        })?;
        let mut query: Vec<(&str, &str)> = vec![("scope", scope)];
        if let Some(service) = params.get("service") {
            query.push(("service", service));
        }
        let token_url = reqwest::Url::parse_with_params(realm, &query).map_err(|e| UpstreamError::Unauthorized {
            url: url.to_owned(),
            message: format!("the token realm {realm:?} is not a URL: {e}"),
        })?;
        let req = self.with_basic(self.http.get(token_url));
        let res = req.send().await.map_err(|e| unreachable(realm, &e))?;
        let status = res.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(UpstreamError::Unauthorized {
                url: realm.clone(),
                message: error_message(res).await,
            });
        }
        if !status.is_success() {
            return Err(UpstreamError::Status {
                url: realm.clone(),
                status: status.as_u16(),
                message: error_message(res).await,
            });
        }
        let body: serde_json::Value = read_json(res, 1024 * 1024).await?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .ok_or_else(|| UpstreamError::Invalid(format!("{realm} returned no token")))?;
        let lifetime = body["expires_in"].as_u64().unwrap_or(60).clamp(10, 3600);
        // Renewed a little before the remote would refuse it.
        let expires = Instant::now() + Duration::from_secs(lifetime.saturating_sub(5));
        Ok(Credential::Bearer(token.to_owned(), expires))
    }

    /// Turn a non-success answer into an error naming `what`.
    async fn check(&self, res: Response, what: &str) -> UpstreamResult<Response> {
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let url = res.url().to_string();
        let message = error_message(res).await;
        Err(match status {
            StatusCode::UNAUTHORIZED => UpstreamError::Unauthorized { url, message },
            StatusCode::FORBIDDEN => UpstreamError::Forbidden { url, message },
            StatusCode::NOT_FOUND => UpstreamError::NotFound {
                what: what.to_owned(),
                url,
                message,
            },
            s => UpstreamError::Status {
                url,
                status: s.as_u16(),
                message,
            },
        })
    }
}

fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

fn unreachable(url: &str, e: &reqwest::Error) -> UpstreamError {
    UpstreamError::Unreachable {
        url: url.to_owned(),
        reason: crate::error::chain(e),
    }
}

/// The first OCI error message of a failed answer, if it has one.
async fn error_message(res: Response) -> String {
    let body = read_capped(res, 64 * 1024).await.ok().flatten().unwrap_or_default();
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    doc["errors"][0]["message"]
        .as_str()
        .or_else(|| doc["error"]["message"].as_str())
        .or_else(|| doc["details"].as_str())
        .map(str::to_owned)
        .unwrap_or_default()
}

/// The body, or `None` when it is longer than `cap` (reading stops there).
async fn read_capped(res: Response, cap: usize) -> UpstreamResult<Option<Vec<u8>>> {
    let url = res.url().to_string();
    let mut out = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| unreachable(&url, &e))?;
        if out.len() + chunk.len() > cap {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

async fn read_json(res: Response, cap: usize) -> UpstreamResult<serde_json::Value> {
    let url = res.url().to_string();
    let body = read_capped(res, cap)
        .await?
        .ok_or_else(|| UpstreamError::Invalid(format!("{url}: answer over {cap} bytes")))?;
    serde_json::from_slice(&body).map_err(|e| UpstreamError::Invalid(format!("{url}: not JSON: {e}")))
}

/// The path and query of a `Link: <…>; rel="next"` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(LINK)?.to_str().ok()?;
    for part in value.split(',') {
        let (target, params) = part.split_once(';')?;
        if !params.contains("rel=\"next\"") && !params.contains("rel=next") {
            continue;
        }
        let target = target.trim().trim_start_matches('<').trim_end_matches('>');
        // Absolute or relative: only the path and query are used, against the remote.
        let path = match target.find("://") {
            Some(i) => &target[target[i + 3..].find('/').map(|j| i + 3 + j)?..],
            None => target,
        };
        if path.starts_with("/v2/") {
            return Some(path.to_owned());
        }
    }
    None
}

/// `Bearer realm="…",service="…"` → ("Bearer", {realm, service}).
pub(crate) fn parse_challenge(header: &str) -> (String, HashMap<String, String>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    (scheme.to_owned(), params)
}

/// An HTTP client for remotes: system roots plus `extra_ca_pem`, bounded connect time.
pub fn http_client(extra_ca_pem: Option<&[u8]>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = extra_ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("CA certificate: {e}"))?;
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().map_err(|e| format!("HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges_with_quotes_and_commas() {
        let (scheme, p) =
            parse_challenge(r#"Bearer realm="https://r.example/token",service="r,x",scope="repository:a/b:pull,push""#);
        assert_eq!(scheme, "Bearer");
        assert_eq!(p["realm"], "https://r.example/token");
        assert_eq!(p["service"], "r,x");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (scheme, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(scheme, "Basic");
        assert_eq!(p["realm"], "Registry Realm");
    }

    #[test]
    fn follows_relative_and_absolute_next_links() {
        let mut h = HeaderMap::new();
        h.insert(LINK, r#"</v2/a/tags/list?last=x&n=2>; rel="next""#.parse().unwrap());
        assert_eq!(next_link(&h).as_deref(), Some("/v2/a/tags/list?last=x&n=2"));
        h.insert(
            LINK,
            r#"<https://r:5000/v2/_catalog?last=b&n=1>; rel="next""#.parse().unwrap(),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/_catalog?last=b&n=1"));
        h.insert(LINK, r#"<https://evil/elsewhere>; rel="next""#.parse().unwrap());
        assert_eq!(next_link(&h), None);
    }
}
