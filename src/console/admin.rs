//! Global administration: edge sites and users.

use super::*;

#[derive(Deserialize)]
pub(super) struct AdminQuery {
    tab: Option<String>,
    done: Option<String>,
}

pub(super) async fn admin_page(State(c): State<Console>, caller: Caller, Query(q): Query<AdminQuery>) -> Response {
    let done = match q.done.as_deref() {
        Some("user") => Some(("User created.", true)),
        Some("user-deleted") => Some(("User deleted: their sessions and tokens ended.", true)),
        _ => None,
    };
    render_admin(&c, &caller, q.tab.as_deref(), done, StatusCode::OK).await
}

pub(super) async fn render_admin(
    c: &Console,
    caller: &Caller,
    tab: Option<&str>,
    message: Option<(&str, bool)>,
    status: StatusCode,
) -> Response {
    let tab = if tab == Some("users") { "users" } else { "edges" };
    let (path, key) = match tab {
        "users" => ("/api/v1/users", None),
        _ => ("/api/v1/smart-proxies", Some("smart_proxies")),
    };
    let body = match c.read(caller, path).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let items = match key {
        Some(k) => &body[k],
        None => &body,
    }
    .as_array()
    .cloned()
    .unwrap_or_default();
    page(status, views::admin(&caller.viewer(), tab, message, &items))
}

pub(super) async fn admin_action(
    State(c): State<Console>,
    caller: Caller,
    Path(action): Path<String>,
    raw: String,
) -> Response {
    let f = match checked_form(&caller, &raw) {
        Ok(f) => f,
        Err(refusal) => return *refusal,
    };
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let (method, path, body, tab, done) = match action.as_str() {
        "users" => (
            Method::POST,
            "/api/v1/users".to_owned(),
            Some(json!({
                "username": text(&f.username),
                "password": text(&f.password),
                "global_admin": f.global_admin.is_some(),
            })),
            "users",
            "user",
        ),
        "users-delete" => (
            Method::DELETE,
            format!("/api/v1/users/{}", encode(&text(&f.username))),
            None,
            "users",
            "user-deleted",
        ),
        "edges-sync" => (
            Method::POST,
            format!("/api/v1/smart-proxies/{}/sync", encode(&text(&f.name))),
            None,
            "edges",
            "job",
        ),
        _ => return not_found_page(&caller),
    };
    let answer = c.call(&caller, method, &path, body.as_ref()).await;
    if !answer.ok() {
        if matches!(answer.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
            return failed(&caller.viewer(), &answer);
        }
        let why = answer.message();
        return render_admin(&c, &caller, Some(tab), Some((&why, false)), answer.status).await;
    }
    if done == "job"
        && let Some(id) = answer.body["job"].as_i64()
    {
        return Redirect::to(&format!("/ui/jobs/{id}")).into_response();
    }
    Redirect::to(&format!("/ui/admin?tab={tab}&done={done}")).into_response()
}
