//! A repository's pages (images, versions, README, an image, a version, a
//! comparison) and its forms.

use super::*;

#[derive(Deserialize)]
pub(super) struct RepoQuery {
    tab: Option<String>,
    done: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
}

pub(super) fn repo_path(rest: &str) -> Option<RepoPath> {
    RepoPath::parse(rest).ok()
}

pub(super) async fn repository(
    State(c): State<Console>,
    caller: Caller,
    headers: HeaderMap,
    Path(rest): Path<String>,
    Query(q): Query<RepoQuery>,
) -> Response {
    if let Some((name, digest)) = rest.split_once("/manifests/") {
        return manifest_page(&c, &caller, &headers, name, digest).await;
    }
    if let Some((name, n)) = rest.split_once("/versions/") {
        return version_page(&c, &caller, name, n).await;
    }
    if let Some(name) = rest.strip_suffix("/compare") {
        return compare_page(&c, &caller, name, q.from, q.to).await;
    }
    let Some(path) = repo_path(&rest) else {
        return not_found_page(&caller);
    };
    // Fixed messages only: nothing a link could make the page say.
    let done = match q.done.as_deref() {
        Some("tag") => Some(("Tag added: a new version records it.", true)),
        Some("readme") => Some(("README saved.", true)),
        Some("sign") => Some(("Signed: a new version holds the signature.", true)),
        Some("rollback") => Some(("Rolled back: a new version has the old content.", true)),
        Some("untag") => Some(("Tag removed: a new version records it.", true)),
        _ => None,
    };
    render_repository(&c, &caller, &headers, &path, q.tab.as_deref(), done, StatusCode::OK).await
}

pub(super) async fn manifest_page(
    c: &Console,
    caller: &Caller,
    headers: &HeaderMap,
    name: &str,
    digest: &str,
) -> Response {
    let Some(path) = repo_path(name) else {
        return not_found_page(caller);
    };
    let detail = format!("/api/v1/repositories/{}/manifests/{}", path.public, encode(digest));
    let detail = match c.read(caller, &detail).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let host = c.gw.registry_host(headers).unwrap_or_else(|| "REGISTRY".into());
    let can_push = c.may(caller, Action::Push, &path).await;
    page(
        StatusCode::OK,
        views::manifest(&caller.viewer(), &path.public, &host, &detail, can_push),
    )
}

pub(super) async fn version_page(c: &Console, caller: &Caller, name: &str, n: &str) -> Response {
    let (Some(path), Ok(n)) = (repo_path(name), n.parse::<i64>()) else {
        return not_found_page(caller);
    };
    match c
        .read(caller, &format!("/api/v1/repositories/{}/versions/{n}", path.public))
        .await
    {
        Ok(v) => page(StatusCode::OK, views::version(&caller.viewer(), &path.public, &v)),
        Err(page) => page,
    }
}

pub(super) async fn compare_page(
    c: &Console,
    caller: &Caller,
    name: &str,
    from: Option<i64>,
    to: Option<i64>,
) -> Response {
    let (Some(path), Some(from), Some(to)) = (repo_path(name), from, to) else {
        return not_found_page(caller);
    };
    let mut tags = Vec::new();
    for n in [from, to] {
        let version = match c
            .read(caller, &format!("/api/v1/repositories/{}/versions/{n}", path.public))
            .await
        {
            Ok(v) => v,
            Err(page) => return page,
        };
        let map: std::collections::BTreeMap<String, String> = version["tags"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(t, d)| Some((t.clone(), d.as_str()?.to_owned())))
            .collect();
        tags.push(map);
    }
    let names: std::collections::BTreeSet<&String> = tags[0].keys().chain(tags[1].keys()).collect();
    let changes: Vec<(String, Option<String>, Option<String>)> = names
        .into_iter()
        .filter_map(|t| {
            let (a, b) = (tags[0].get(t).cloned(), tags[1].get(t).cloned());
            (a != b).then(|| (t.clone(), a, b))
        })
        .collect();
    page(
        StatusCode::OK,
        views::compare(&caller.viewer(), &path.public, from, to, &changes),
    )
}

pub(super) async fn render_repository(
    c: &Console,
    caller: &Caller,
    headers: &HeaderMap,
    path: &RepoPath,
    tab: Option<&str>,
    message: Option<(&str, bool)>,
    status: StatusCode,
) -> Response {
    let tab = match tab {
        Some("versions") => "versions",
        Some("readme") => "readme",
        _ => "images",
    };
    let base = format!("/api/v1/repositories/{}", path.public);
    // One listing per tab: the versions, or the tags with their signatures.
    let listing = match c
        .read(
            caller,
            &format!("{base}/{}", if tab == "versions" { "versions" } else { "signatures" }),
        )
        .await
    {
        Ok(v) => v,
        Err(page) => return page,
    };
    let readme = if tab == "versions" {
        String::new()
    } else {
        let a = c.call(caller, Method::GET, &format!("{base}/readme"), None).await;
        a.body["readme"]["content"].as_str().unwrap_or_default().to_owned()
    };
    let items = |key: &str| listing[key].as_array().cloned().unwrap_or_default();
    let (tags, versions) = (items("tags"), items("versions"));
    let host = c.gw.registry_host(headers).unwrap_or_else(|| "REGISTRY".into());
    let can_push = c.may(caller, Action::Push, path).await;
    let can_manage = c.may_manage(caller, &path.org);
    let can_delete = c.may(caller, Action::Delete, path).await;
    let rendered = markdown::render(&readme);
    // Mirrored: the remote that fills it and its last sync (org admins see remotes).
    let (mut remote, mut last_sync) = (None, None);
    if can_manage && tab == "images" {
        let remotes = c
            .call(
                caller,
                Method::GET,
                &format!(
                    "/api/v1/orgs/{}/products/{}/remotes",
                    encode(&path.org),
                    encode(&path.product)
                ),
                None,
            )
            .await;
        remote = remotes.body["remotes"]
            .as_array()
            .and_then(|l| l.iter().find(|r| r["name"] == path.name.as_str()).cloned());
        if let Some(job) = remote.as_ref().and_then(|r| r["last_job"].as_i64()) {
            let j = c.call(caller, Method::GET, &format!("/api/v1/jobs/{job}"), None).await;
            last_sync = j.ok().then_some(j.body);
        }
    }
    // Keys the org's pushers can sign with.
    let mut signing_keys = Vec::new();
    if can_push && tab == "images" {
        let keys = c
            .call(
                caller,
                Method::GET,
                &format!("/api/v1/orgs/{}/signing-keys", encode(&path.org)),
                None,
            )
            .await;
        signing_keys = keys.body["signing_keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| k["can_sign"] == true)
            .filter_map(|k| k["name"].as_str().map(str::to_owned))
            .collect();
    }
    let view = views::Repository {
        can_manage,
        can_delete,
        readme: &readme,
        readme_html: &rendered,
        remote: remote.as_ref(),
        last_sync: last_sync.as_ref(),
        signing_keys: &signing_keys,
        public: &path.public,
        host: &host,
        tab,
        can_push,
        message,
        tags: &tags,
        versions: &versions,
    };
    page(status, views::repository(&caller.viewer(), &view))
}

#[derive(Deserialize)]
pub(super) struct ActionForm {
    csrf: String,
    content: Option<String>,
    key: Option<String>,
    tag: Option<String>,
    digest: Option<String>,
    version: Option<i64>,
}

pub(super) async fn repository_action(
    State(c): State<Console>,
    caller: Caller,
    headers: HeaderMap,
    Path(rest): Path<String>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(refusal) = refuse_without_csrf(&caller, &f.csrf) {
        return refusal;
    }
    let Some((name, action)) = rest.rsplit_once('/') else {
        return not_found_page(&caller);
    };
    let Some(path) = repo_path(name) else {
        return not_found_page(&caller);
    };
    let base = format!("/api/v1/repositories/{}", path.public);
    let done = |tab: &str| format!("/ui/repos/{}?tab={tab}&done={action}", path.public);
    // (method, API path, body, the tab the form is on, where success goes)
    let (method, call, body, tab, next) = match (action, &f.tag, f.version) {
        ("untag", Some(tag), _) => (
            Method::POST,
            "untag",
            Some(json!({ "tag": tag })),
            "images",
            done("images"),
        ),
        ("tag", Some(tag), _) => (
            Method::POST,
            "tag",
            Some(json!({ "tag": tag, "digest": f.digest })),
            "images",
            done("images"),
        ),
        ("readme", _, _) => (
            Method::POST,
            "readme",
            Some(json!({ "content": f.content.clone().unwrap_or_default() })),
            "images",
            done("images"),
        ),
        ("sign", Some(tag), _) => (
            Method::POST,
            "sign",
            Some(json!({ "tags": [tag], "key": f.key })),
            "images",
            done("images"),
        ),
        ("rollback", _, Some(v)) => (
            Method::POST,
            "rollback",
            Some(json!({ "version": v })),
            "versions",
            done("versions"),
        ),
        ("delete", _, _) => (
            Method::DELETE,
            "",
            None,
            "images",
            format!(
                "/ui/orgs/{}?tab=repositories&done=repository-deleted",
                encode(&path.org)
            ),
        ),
        _ => return not_found_page(&caller),
    };
    let target = if call.is_empty() {
        base
    } else {
        format!("{base}/{call}")
    };
    let answer = c.call(&caller, method, &target, body.as_ref()).await;
    if answer.ok() {
        return Redirect::to(&next).into_response();
    }
    if matches!(answer.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
        return failed(&caller.viewer(), &answer);
    }
    let why = answer.message();
    render_repository(
        &c,
        &caller,
        &headers,
        &path,
        Some(tab),
        Some((&why, false)),
        answer.status,
    )
    .await
}
