//! The gateway's `/v2/` request path, top to bottom:
//! 1. parse the route (`oci::route`) and the public repository name (`mapping`);
//! 2. authenticate the bearer token (an upload session may continue past its expiry);
//! 3. the token must grant the action (else 401 `insufficient_scope` with the scope);
//! 4. the policy must allow it for the principal as it is now (else 403 `DENIED`);
//! 5. forward to the backend under the backend name, streaming both bodies;
//! 6. rewrite names in `Location`/`Link` (and the tags list body), audit what changed.

use super::mapping::{RepoPath, public_name, rewrite_url};
use super::scope::Access;
use super::{Caller, Gateway, UPLOAD_GRANT_PARAM, challenge::ChallengeError};
use crate::audit::Event;
use crate::error::{Error, ErrorCode, Result};
use crate::oci::{OciRoute, SIGNATURES_HEADER, parse_path, parse_v2_path};
use crate::policy::{Action, Principal};
use crate::store::http::API_VERSION_HEADER;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header, request};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// Tags-list bodies are rewritten (the name inside); larger ones are refused.
const MAX_TAGS_BODY: usize = 16 * 1024 * 1024;
/// Catalog pages fetched from the backend while filtering.
const CATALOG_BATCH: u32 = 1000;

pub(super) async fn handle(State(gw): State<Gateway>, req: Request) -> Response {
    if let Some(link) = gw.inner.upstream.as_ref()
        && is_write(&req)
    {
        // At an edge, writes are the main server's business (it authorizes them too).
        return super::edge::forward(link, req).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "forwarding a write to the main server failed");
            Error::new(
                ErrorCode::Unavailable,
                "the main server cannot be reached; pushes need it",
            )
            .into_response()
        });
    }
    let (parts, body) = req.into_parts();
    let route = parse_path(parts.uri.path());
    // At an edge, a manifest or blob not synced yet (just pushed, or a sync behind) is
    // read from the main server, which authorizes it.
    let read_through = match (&gw.inner.upstream, &route) {
        (Some(_), Some(OciRoute::Manifest { .. } | OciRoute::Blob { .. })) => {
            Some((parts.method.clone(), parts.uri.clone(), parts.headers.clone()))
        }
        _ => None,
    };
    // A manifest read through from the main server is an edge pull like any other.
    let pulled_org = match &route {
        Some(OciRoute::Manifest { name, .. }) if parts.method == Method::GET => {
            name.split('/').next().map(str::to_owned)
        }
        _ => None,
    };
    let result = match route {
        Some(route) => route_request(&gw, route, parts, body).await,
        None => Err(Error::code(ErrorCode::UnknownRoute)),
    };
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    if resp.status() == StatusCode::NOT_FOUND
        && let (Some(link), Some((method, uri, headers))) = (&gw.inner.upstream, read_through)
        && let Some(found) = super::edge::read_through(link, method, uri, headers).await
    {
        if let (Some(m), Some(org), StatusCode::OK) = (gw.metrics(), pulled_org, found.status()) {
            m.manifest_pulls.get_or_create(&crate::metrics::OrgLabels { org }).inc();
        }
        resp = found;
    }
    resp.headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    if gw.backend().supports_signatures() {
        resp.headers_mut()
            .insert(SIGNATURES_HEADER, HeaderValue::from_static("1"));
    }
    resp
}

/// Uploads (any method: their status too), and anything but GET/HEAD.
fn is_write(req: &Request) -> bool {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return true;
    }
    let rest = req.uri().path().strip_prefix("/v2/").unwrap_or_default();
    matches!(
        parse_v2_path(rest),
        Some(OciRoute::Upload { .. } | OciRoute::UploadStart { .. })
    )
}

fn query_pairs(parts: &request::Parts) -> Vec<(String, String)> {
    parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn remote(parts: &request::Parts) -> Option<SocketAddr> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

async fn route_request(gw: &Gateway, route: OciRoute, parts: request::Parts, body: Body) -> Result<Response> {
    match route {
        OciRoute::Base => {
            let caller = authenticate(gw, &parts, None).await?;
            if caller.claims.is_none() {
                return Err(gw.challenge(&parts.headers, None, None));
            }
            Ok(axum::Json(serde_json::json!({})).into_response())
        }
        OciRoute::Catalog => catalog(gw, &parts).await,
        route => repository_request(gw, route, parts, body).await,
    }
}

/// What a request needs: the repository name in the route, and the token action.
/// Reads need pull; deleting a manifest or blob needs delete (as in Distribution);
/// everything that writes, including every upload request, needs push.
fn needs(route: &OciRoute, method: &Method) -> Option<(String, Action)> {
    use OciRoute::*;
    let name = match route {
        Tags { name } | Referrers { name, .. } | Manifest { name, .. } | Blob { name, .. } => name,
        Signatures { name, .. } => name,
        UploadStart { name } | Upload { name, .. } => name,
        Base | Catalog => return None,
    };
    let action = match (route, method) {
        (Upload { .. } | UploadStart { .. }, _) => Action::Push,
        (_, &Method::GET | &Method::HEAD) => Action::Pull,
        (Manifest { .. } | Blob { .. }, &Method::DELETE) => Action::Delete,
        // PUT of a manifest; anything else the backend refuses, still not for pull alone.
        _ => Action::Push,
    };
    Some((name.clone(), action))
}

/// The scope a client should ask for: push is asked for together with pull, as
/// Distribution's clients do.
fn scope_for(public: &str, action: Action) -> Access {
    match action {
        Action::Push => Access::new("repository", public, &["pull", "push"]),
        other => Access::new("repository", public, &[other.as_str()]),
    }
}

async fn repository_request(gw: &Gateway, route: OciRoute, parts: request::Parts, body: Body) -> Result<Response> {
    let Some((name, action)) = needs(&route, &parts.method) else {
        return Err(Error::code(ErrorCode::UnknownRoute));
    };
    let path = RepoPath::parse(&name)?;
    let upload = match &route {
        OciRoute::Upload { id, .. } => Some(id.as_str()),
        _ => None,
    };
    let caller = authenticate(gw, &parts, upload.map(|id| (path.public.as_str(), id))).await?;
    let resource = authorize(gw, &caller, &parts, &path, action).await?;
    if action == Action::Push && gw.identities().ensure_product(&path.org, &path.product).await? {
        let (actor, kind) = caller.actor();
        gw.audit().record(
            Event::new(actor, kind, "create_product", format!("{}/{}", path.org, path.product))
                .org(&path.org)
                .remote(remote(&parts))
                .detail("created by first push"),
        );
    }

    // Writes go to the push repository, reads to the normal one (the same repository
    // unless the store is in this process).
    let push_name = gw.push_repository(&path);
    let writes = action != Action::Pull;
    if writes {
        if let Some(d) = gw.distribution(&path).await?
            && let Some(v) = d.version
        {
            return Err(Error::new(
                ErrorCode::Denied,
                format!(
                    "{} is a distribution of {} pinned at version {v}; push to {} instead",
                    path.public, d.repository, d.repository
                ),
            ));
        }
        gw.ensure_push_pair(&path, None).await?;
    }
    let read_name = if writes {
        push_name.clone()
    } else {
        gw.read_repository(&path).await?
    };
    let mut backend_name = if writes { push_name.clone() } else { read_name.clone() };
    let mut query = query_pairs(&parts);
    let grant = take_param(&mut query, UPLOAD_GRANT_PARAM);
    if matches!(route, OciRoute::UploadStart { .. }) {
        cross_mount(gw, &caller, &mut query).await;
    }
    let prefix = route.prefix();
    let suffix = parts
        .uri
        .path()
        .strip_prefix(&format!("{prefix}{}", path.public))
        .unwrap_or_default()
        .to_owned();
    // A product that signs on push: the store's post-push copy signs the pushed tags
    // for the name clients pull.
    let sign_on_push = match (&route, action) {
        (OciRoute::Manifest { .. }, Action::Push) => gw
            .identities()
            .product(&path.org, &path.product)
            .await?
            .and_then(|p| p.sign_on_push)
            .and_then(|key| {
                let host = gw.registry_host(&parts.headers)?;
                Some(
                    crate::store::signatures::SignOnPush {
                        org: path.org.clone(),
                        key,
                        reference: format!("{host}/{}", path.public),
                    }
                    .to_header(),
                )
            }),
        _ => None,
    };
    let query = (!query.is_empty()).then(|| {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&query)
            .finish()
    });
    let build = |name: &str, body: Body| {
        let mut uri = format!("{prefix}{name}{suffix}");
        if let Some(q) = &query {
            uri.push('?');
            uri.push_str(q);
        }
        let mut fwd = axum::http::Request::builder().method(parts.method.clone()).uri(uri);
        for (k, v) in &parts.headers {
            // The caller's token is for us, not for the backend; gatehouse's own
            // headers are ours to set, never a client's.
            if k != header::AUTHORIZATION && k != header::HOST && !k.as_str().starts_with("x-gatehouse-") {
                fwd = fwd.header(k, v);
            }
        }
        if let Some(sign) = &sign_on_push {
            fwd = fwd.header(crate::store::signatures::SignOnPush::HEADER, sign);
        }
        fwd.body(body)
            .map_err(|e| Error::new(ErrorCode::InvalidRequest, e.to_string()))
    };
    let mut resp = gw.backend().send(build(&backend_name, body)?).await?;
    // Content pushed but not (yet) in the normal repository, e.g. a layer a client
    // checks for in the middle of its push: look in the push repository too.
    let by_digest = match &route {
        OciRoute::Blob { .. } => true,
        OciRoute::Manifest { reference, .. } => reference.contains(':'),
        _ => false,
    };
    // Referrers pushed by digest stay in the push repository: list both.
    if matches!(route, OciRoute::Referrers { .. }) && push_name != read_name {
        let pushed = gw.backend().send(build(&push_name, Body::empty())?).await?;
        resp = merge_referrers(resp, pushed).await?;
    }
    // A manifest's signatures are served from where the manifest is: the normal
    // repository, or the push repository for content pushed by digest only.
    if let OciRoute::Signatures { digest, .. } = &route
        && !writes
        && push_name != read_name
        && !manifest_present(gw, &read_name, digest).await?
    {
        resp = gw.backend().send(build(&push_name, Body::empty())?).await?;
        backend_name = push_name.clone();
    }
    if !writes && by_digest && push_name != read_name && resp.status() == StatusCode::NOT_FOUND {
        let retry = gw.backend().send(build(&push_name, Body::empty())?).await?;
        if retry.status() != StatusCode::NOT_FOUND {
            resp = retry;
            backend_name = push_name;
        }
    }

    // A product that requires signatures: the manifest must be signed by one of its keys.
    let requires_signatures = matches!(&resource, crate::policy::Resource::Repository { require_signed_by, .. } if !require_signed_by.is_empty());
    if action == Action::Pull && requires_signatures && matches!(route, OciRoute::Manifest { .. }) {
        // Only what is needed of the answer: it is not Sync, so not held across an await.
        let found = resp.status().is_success();
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let check = super::signed::check_manifest(gw, &caller.principal, &resource, &backend_name, found, digest);
        if let Err(e) = check.await {
            if let Some(m) = gw.metrics() {
                m.denied("pull", "signature");
            }
            let (actor, kind) = caller.actor();
            gw.audit().record(
                Event::new(actor, kind, "pull", path.public.clone())
                    .org(&path.org)
                    .outcome("denied")
                    .remote(remote(&parts))
                    .detail(&e.message),
            );
            return Err(e);
        }
    }
    rewrite_headers(resp.headers_mut(), &backend_name, &path.public);
    if matches!(route, OciRoute::UploadStart { .. } | OciRoute::Upload { .. }) {
        attach_upload_grant(gw, &caller, &path, resp.headers_mut(), grant.as_deref());
    }
    if matches!(route, OciRoute::Tags { .. }) && resp.status() == StatusCode::OK {
        resp = rewrite_tags_body(resp, &path.public).await?;
    }
    audit_change(gw, &caller, &parts, &route, &path, &resp);
    if let (Some(m), OciRoute::Manifest { .. }) = (gw.metrics(), &route) {
        let org = crate::metrics::OrgLabels { org: path.org.clone() };
        match (&parts.method, resp.status()) {
            (&Method::PUT, StatusCode::CREATED) => m.manifest_pushes.get_or_create(&org).inc(),
            (&Method::GET, StatusCode::OK) => m.manifest_pulls.get_or_create(&org).inc(),
            _ => 0,
        };
    }
    Ok(resp)
}

/// Whether the backend has manifest `digest` in repository `name`.
async fn manifest_present(gw: &Gateway, name: &str, digest: &str) -> Result<bool> {
    let req = axum::http::Request::head(format!("/v2/{name}/manifests/{digest}"))
        .body(Body::empty())
        .map_err(|e| Error::new(ErrorCode::InvalidRequest, e.to_string()))?;
    Ok(gw.backend().send(req).await?.status().is_success())
}

/// Merge two referrers listings (OCI image indexes), each manifest once.
async fn merge_referrers(a: Response, b: Response) -> Result<Response> {
    async fn list(r: Response) -> Option<(axum::http::response::Parts, serde_json::Value)> {
        if r.status() != StatusCode::OK {
            return None;
        }
        let (parts, body) = r.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_TAGS_BODY).await.ok()?;
        Some((parts, serde_json::from_slice(&bytes).ok()?))
    }
    let (first, second) = (list(a).await, list(b).await);
    let Some((mut parts, mut doc)) = first else {
        return match second {
            Some((mut parts, doc)) => {
                parts.headers.remove(header::CONTENT_LENGTH);
                Ok(Response::from_parts(
                    parts,
                    Body::from(serde_json::to_vec(&doc).map_err(|e| Error::internal(&e))?),
                ))
            }
            None => Err(Error::code(ErrorCode::ManifestUnknown)),
        };
    };
    if let Some((_, other)) = second
        && let (Some(mine), Some(theirs)) = (doc["manifests"].as_array().cloned(), other["manifests"].as_array())
    {
        let mut merged = mine;
        for m in theirs {
            if !merged.iter().any(|x| x["digest"] == m["digest"]) {
                merged.push(m.clone());
            }
        }
        doc["manifests"] = serde_json::Value::Array(merged);
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&doc).map_err(|e| Error::internal(&e))?),
    ))
}

fn take_param(query: &mut Vec<(String, String)>, key: &str) -> Option<String> {
    let i = query.iter().position(|(k, _)| k == key)?;
    Some(query.remove(i).1)
}

/// Verify the request's bearer token. `upload`: (public name, session id) of an upload
/// session this request continues; its grant lets an expired token through.
async fn authenticate(gw: &Gateway, parts: &request::Parts, upload: Option<(&str, &str)>) -> Result<Caller> {
    let invalid = || gw.challenge(&parts.headers, None, Some(ChallengeError::InvalidToken));
    let bearer = crate::identity::credentials::authorization(&parts.headers)
        .map_err(|_| invalid())?
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    let Some(token) = bearer else {
        return Ok(Caller {
            principal: Principal::Anonymous,
            claims: None,
        });
    };
    let claims = match gw.verify_access_fresh(&token).await {
        Ok(c) => c,
        Err(super::token::TokenError::Invalid(e))
            if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) =>
        {
            let Some((public, id)) = upload else {
                return Err(invalid());
            };
            let claims = gw
                .verify(&token, &gw.settings().service, super::token::Expiry::Ignore)
                .map_err(|_| invalid())?;
            let grant = query_pairs(parts)
                .into_iter()
                .find(|(k, _)| k == UPLOAD_GRANT_PARAM)
                .map(|(_, v)| v);
            if !grant.is_some_and(|g| gw.upload_grant_valid(&g, &claims, public, id)) {
                return Err(invalid());
            }
            std::sync::Arc::new(claims)
        }
        Err(_) => return Err(invalid()),
    };
    match gw.principal_of(&claims).await? {
        Some(principal) => Ok(Caller {
            principal,
            claims: Some(claims),
        }),
        // Revoked, deleted or expired since the token was issued.
        None => Err(invalid()),
    }
}

/// Token scope first (401 `insufficient_scope`), then the current policy (403).
async fn authorize(
    gw: &Gateway,
    caller: &Caller,
    parts: &request::Parts,
    path: &RepoPath,
    action: Action,
) -> Result<crate::policy::Resource> {
    let scope = scope_for(&path.public, action);
    if caller.claims.is_none() {
        return Err(gw.challenge(&parts.headers, Some(&scope), None));
    }
    let deny = |why: &str| {
        if let Some(m) = gw.metrics() {
            m.denied(action.as_str(), if why == "policy" { "policy" } else { "scope" });
        }
        let (actor, kind) = caller.actor();
        gw.audit().record(
            Event::new(actor, kind, action.as_str(), path.public.clone())
                .org(&path.org)
                .outcome("denied")
                .remote(remote(parts))
                .detail(why),
        );
    };
    if !caller.token_allows("repository", &path.public, action.as_str()) {
        deny("token lacks the scope");
        return Err(gw.challenge(&parts.headers, Some(&scope), Some(ChallengeError::InsufficientScope)));
    }
    let resource = gw.resource(path).await?;
    if !gw.allowed(&caller.principal, action, &resource) {
        deny("policy");
        return Err(Error::code(ErrorCode::Denied));
    }
    Ok(resource)
}

/// A cross-repository mount needs pull on the source; without it the mount parameters
/// are dropped, so the backend opens a normal upload session (as the spec allows).
async fn cross_mount(gw: &Gateway, caller: &Caller, query: &mut Vec<(String, String)>) {
    let Some(from) = query.iter().find(|(k, _)| k == "from").map(|(_, v)| v.clone()) else {
        return;
    };
    let mut allowed = false;
    if let Ok(src) = RepoPath::parse(&from)
        && caller.token_allows("repository", &src.public, "pull")
        && let Ok(resource) = gw.resource(&src).await
        && gw.allowed(&caller.principal, Action::Pull, &resource)
    {
        allowed = true;
        for (k, v) in query.iter_mut() {
            if k == "from" {
                // The source's push repository: it holds what was pushed there, and the
                // store also finds what its normal repository holds.
                *v = gw.push_repository(&src);
            }
        }
    }
    if !allowed {
        query.retain(|(k, _)| k != "from" && k != "mount");
    }
}

fn rewrite_headers(headers: &mut HeaderMap, backend: &str, public: &str) {
    for name in [header::LOCATION, header::LINK] {
        if let Some(v) = headers.get(&name).and_then(|v| v.to_str().ok()) {
            let rewritten = if name == header::LINK {
                // `<url>; rel="next"`
                match v.trim().strip_prefix('<').and_then(|r| r.split_once('>')) {
                    Some((url, rest)) => format!("<{}>{rest}", rewrite_url(url, backend, public)),
                    None => v.to_owned(),
                }
            } else {
                rewrite_url(v, backend, public)
            };
            if let Ok(value) = HeaderValue::from_str(&rewritten) {
                headers.insert(name, value);
            }
        }
    }
}

/// Add (or carry forward) the upload-session grant on an upload `Location`.
fn attach_upload_grant(gw: &Gateway, caller: &Caller, path: &RepoPath, headers: &mut HeaderMap, grant: Option<&str>) {
    let Some(claims) = &caller.claims else {
        return;
    };
    let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let loc_path = location.split('?').next().unwrap_or_default();
    let Some(OciRoute::Upload { id, .. }) = loc_path.strip_prefix("/v2/").and_then(parse_v2_path) else {
        return;
    };
    let grant = match grant {
        Some(g) if gw.upload_grant_valid(g, claims, &path.public, &id) => g.to_owned(),
        _ => match gw.upload_grant(claims, &path.public, &id) {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "signing an upload grant failed");
                return;
            }
        },
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let with_grant = format!("{location}{sep}{UPLOAD_GRANT_PARAM}={grant}");
    if let Ok(v) = HeaderValue::from_str(&with_grant) {
        headers.insert(header::LOCATION, v);
    }
}

async fn rewrite_tags_body(resp: Response, public: &str) -> Result<Response> {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_TAGS_BODY)
        .await
        .map_err(|e| Error::new(ErrorCode::Unavailable, format!("reading the backend's tag list: {e}")))?;
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            ErrorCode::Unavailable,
            format!("the backend's tag list is not JSON: {e}"),
        )
    })?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("name".into(), serde_json::Value::String(public.to_owned()));
    }
    let out = serde_json::to_vec(&v).map_err(|e| Error::internal(&e))?;
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, Body::from(out)))
}

fn audit_change(
    gw: &Gateway,
    caller: &Caller,
    parts: &request::Parts,
    route: &OciRoute,
    path: &RepoPath,
    resp: &Response,
) {
    if !resp.status().is_success() {
        return;
    }
    let version = resp
        .headers()
        .get(crate::store::http::VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (action, target) = match (route, &parts.method) {
        (OciRoute::Manifest { reference, .. }, &Method::PUT) => ("push", reference),
        (OciRoute::Manifest { reference, .. }, &Method::DELETE) if reference.contains(':') => {
            ("delete_manifest", reference)
        }
        (OciRoute::Manifest { reference, .. }, &Method::DELETE) => ("delete_tag", reference),
        (OciRoute::Blob { digest, .. }, &Method::DELETE) => ("delete_blob", digest),
        (OciRoute::Signatures { digest, .. }, &Method::PUT) => ("sign", digest),
        _ => return,
    };
    let sep = if target.contains(':') { '@' } else { ':' };
    let (actor, kind) = caller.actor();
    let mut event = Event::new(actor, kind, action, format!("{}{sep}{target}", path.public))
        .org(&path.org)
        .remote(remote(parts));
    if let Some(v) = version {
        event = event.detail(format!("repository version {v}"));
    }
    gw.audit().record(event);
}

/// `_catalog`: the backend's repositories, as public names, that the caller may pull.
async fn catalog(gw: &Gateway, parts: &request::Parts) -> Result<Response> {
    let caller = authenticate(gw, parts, None).await?;
    let scope = Access::new("registry", "catalog", &["*"]);
    if !caller.token_allows("registry", "catalog", "*") {
        let err = caller.claims.as_ref().map(|_| ChallengeError::InsufficientScope);
        return Err(gw.challenge(&parts.headers, Some(&scope), err));
    }
    let query = query_pairs(parts);
    let get = |k: &str| query.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let limit: usize = match get("n") {
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| Error::code(ErrorCode::PaginationNumberInvalid))?,
        None => 1000,
    }
    .min(10_000);
    let mut cursor = match get("last") {
        Some(last) => RepoPath::parse(&last).map(|p| p.backend_name()).unwrap_or(last),
        None => String::new(),
    };
    let mut out: Vec<String> = Vec::new();
    let mut more = false;
    'pages: loop {
        let page = backend_catalog_page(gw, &cursor).await?;
        let full = page.len() as u32 == CATALOG_BATCH;
        for backend in page {
            cursor = backend.clone();
            let Some(path) = public_name(&backend) else {
                continue;
            };
            let resource = gw.resource(&path).await?;
            if !gw.allowed(&caller.principal, Action::Pull, &resource) {
                continue;
            }
            if out.len() == limit {
                more = true;
                break 'pages;
            }
            out.push(path.public);
        }
        if !full {
            break;
        }
    }
    let mut resp = axum::Json(serde_json::json!({ "repositories": out })).into_response();
    if more && let Some(last) = out.last() {
        let link = format!(
            "</v2/_catalog?{}>; rel=\"next\"",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("n", &limit.to_string())
                .append_pair("last", last)
                .finish()
        );
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

async fn backend_catalog_page(gw: &Gateway, after: &str) -> Result<Vec<String>> {
    let mut uri = format!("/v2/_catalog?n={CATALOG_BATCH}");
    if !after.is_empty() {
        uri.push('&');
        uri.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .append_pair("last", after)
                .finish(),
        );
    }
    let req = axum::http::Request::get(uri)
        .body(Body::empty())
        .map_err(|e| Error::internal(&e))?;
    let resp = gw.backend().send(req).await?;
    if !resp.status().is_success() {
        return Err(Error::new(
            ErrorCode::Unavailable,
            format!("the backend's catalog answered {}", resp.status()),
        ));
    }
    let bytes = axum::body::to_bytes(resp.into_body(), MAX_TAGS_BODY)
        .await
        .map_err(|e| Error::new(ErrorCode::Unavailable, e.to_string()))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            ErrorCode::Unavailable,
            format!("the backend's catalog is not JSON: {e}"),
        )
    })?;
    Ok(v["repositories"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default())
}
