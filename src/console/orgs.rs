//! The organisations pages: the list, an organisation's tabs and their forms, and
//! sync jobs.

use super::*;

pub(super) async fn home(State(c): State<Console>, caller: Caller) -> Response {
    render_home(&c, &caller, None, StatusCode::OK).await
}

pub(super) async fn render_home(c: &Console, caller: &Caller, message: Option<&str>, status: StatusCode) -> Response {
    let orgs = match c.read(caller, "/api/v1/orgs").await {
        Ok(v) => v.as_array().cloned().unwrap_or_default(),
        Err(page) => return page,
    };
    let can_create = caller.global_admin;
    page(status, views::orgs(&caller.viewer(), &orgs, can_create, message))
}

pub(super) async fn create_org(State(c): State<Console>, caller: Caller, raw: String) -> Response {
    let f = match checked_form(&caller, &raw) {
        Ok(f) => f,
        Err(refusal) => return *refusal,
    };
    let label = f.label.clone().unwrap_or_default();
    let body = json!({ "label": label, "name": f.name.clone().unwrap_or_default() });
    let answer = c.call(&caller, Method::POST, "/api/v1/orgs", Some(&body)).await;
    if answer.ok() {
        return Redirect::to(&format!("/ui/orgs/{}?tab=products", encode(&label))).into_response();
    }
    if answer.status == StatusCode::FORBIDDEN {
        return failed(&caller.viewer(), &answer);
    }
    render_home(&c, &caller, Some(&answer.message()), answer.status).await
}

#[derive(Deserialize, Default)]
pub(super) struct OrgQuery {
    q: Option<String>,
    tab: Option<String>,
    done: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<i64>,
    after: Option<String>,
    edit: Option<String>,
}

/// `YYYY-MM-DD` as milliseconds since the epoch at 00:00 UTC.
pub(super) fn day_ms(s: &str) -> Option<i64> {
    let mut parts = s.trim().splitn(3, '-').map(str::parse::<i32>);
    let (Some(Ok(y)), Some(Ok(m)), Some(Ok(d))) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    let date = time::Date::from_calendar_date(y, month, u8::try_from(d).ok()?).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

pub(super) async fn org(
    State(c): State<Console>,
    caller: Caller,
    Path(org): Path<String>,
    Query(q): Query<OrgQuery>,
) -> Response {
    // Fixed messages only: nothing a link could make the page say.
    let done = match q.done.as_deref() {
        Some("product") => Some(("Product created.", true)),
        Some("member") => Some(("Member added.", true)),
        Some("member-removed") => Some(("Role removed.", true)),
        Some("revoked") => Some(("Pull secret revoked: it no longer works.", true)),
        Some("remote") => Some(("Remote created. Sync it to fill the repository.", true)),
        Some("remote-saved") => Some(("Remote saved: the next sync uses it.", true)),
        Some("repository-deleted") => Some(("Repository deleted. GC frees the space its images alone used.", true)),
        _ => None,
    };
    render_org(&c, &caller, &org, &q, done, StatusCode::OK).await
}

pub(super) async fn render_org(
    c: &Console,
    caller: &Caller,
    org: &str,
    q: &OrgQuery,
    message: Option<(&str, bool)>,
    status: StatusCode,
) -> Response {
    let can_manage = c.may_manage(caller, org);
    let query = q.q.as_deref();
    let tab = match q.tab.as_deref() {
        Some("products") => "products",
        Some("access") if can_manage => "access",
        Some("remotes") if can_manage => "remotes",
        Some("audit") if can_manage => "audit",
        _ => "repositories",
    };
    let query = query.unwrap_or_default();
    let base = format!("/api/v1/orgs/{}", encode(org));
    let get = async |path: String| c.read(caller, &path).await;
    let list = |v: &Value, key: Option<&str>| -> Vec<Value> {
        let v = match key {
            Some(k) => &v[k],
            None => v,
        };
        v.as_array().cloned().unwrap_or_default()
    };
    let (mut repos, mut products, mut members, mut secrets, mut remotes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut next_page: Option<String> = None;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let (actor, action, target, since, until) = (
        text(&q.actor),
        text(&q.action),
        text(&q.target),
        text(&q.since),
        text(&q.until),
    );
    let mut audit = views::AuditView {
        actor: &actor,
        action: &action,
        target: &target,
        since: &since,
        until: &until,
        ..Default::default()
    };
    let fetched = async {
        match tab {
            "audit" => {
                // Built before any await: the serializer is not Send.
                let query = {
                    let mut p = form_urlencoded::Serializer::new(String::new());
                    p.append_pair("limit", "100");
                    for (k, v) in [("actor", &actor), ("action", &action), ("target", &target)] {
                        if !v.is_empty() {
                            p.append_pair(k, v);
                        }
                    }
                    if let Some(ms) = day_ms(&since) {
                        p.append_pair("since", &ms.to_string());
                    }
                    if let Some(ms) = day_ms(&until) {
                        p.append_pair("until", &(ms + 86_400_000).to_string());
                    }
                    if let Some(b) = q.before {
                        p.append_pair("before", &b.to_string());
                    }
                    p.finish()
                };
                let v = get(format!("{base}/audit?{query}")).await?;
                audit.events = list(&v, Some("events"));
                audit.next_before = v["next_before"].as_i64();
            }
            "repositories" => {
                let after = q
                    .after
                    .as_deref()
                    .map(|a| format!("&after={}", encode(a)))
                    .unwrap_or_default();
                let v = get(format!("{base}/repositories?q={}{after}", encode(query))).await?;
                repos = list(&v, Some("repositories"));
                next_page = v["next"].as_str().map(str::to_owned);
            }
            "products" => products = list(&get(format!("{base}/products")).await?, None),
            "remotes" => {
                products = list(&get(format!("{base}/products")).await?, None);
                for p in &products {
                    let label = p["label"].as_str().unwrap_or_default();
                    let v = get(format!("{base}/products/{}/remotes", encode(label))).await?;
                    remotes.extend(list(&v, Some("remotes")));
                }
            }
            _ => {
                products = list(&get(format!("{base}/products")).await?, None);
                members = list(&get(format!("{base}/members")).await?, None);
                secrets = list(&get(format!("{base}/pull-secrets")).await?, None);
            }
        }
        Ok::<(), Response>(())
    }
    .await;
    if let Err(resp) = fetched {
        return resp;
    }
    let view = views::Org {
        org,
        tab,
        can_manage,
        message,
        query,
        repos: &repos,
        products: &products,
        members: &members,
        pull_secrets: &secrets,
        remotes: &remotes,
        audit: &audit,
        next_page: next_page.as_deref(),
        editing: q.edit.as_deref(),
    };
    page(status, views::org(&caller.viewer(), &view))
}

pub(super) async fn org_action(
    State(c): State<Console>,
    caller: Caller,
    headers: HeaderMap,
    Path((org, action)): Path<(String, String)>,
    raw: String,
) -> Response {
    let f = match checked_form(&caller, &raw) {
        Ok(f) => f,
        Err(refusal) => return *refusal,
    };
    let base = format!("/api/v1/orgs/{}", encode(&org));
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let (method, path, body, tab, done) = match action.as_str() {
        "products" => (
            Method::POST,
            format!("{base}/products"),
            Some(json!({ "label": text(&f.label), "public": f.public.is_some() })),
            "products",
            "product",
        ),
        "members" => {
            let mut body = json!({ "username": text(&f.username), "role": text(&f.role) });
            if let Some(p) = f.product.as_deref().filter(|p| !p.is_empty()) {
                body["product"] = json!(p);
            }
            (Method::POST, format!("{base}/members"), Some(body), "access", "member")
        }
        "members-remove" => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("role", &text(&f.role));
            if let Some(p) = f.product.as_deref().filter(|p| !p.is_empty()) {
                q.append_pair("product", p);
            }
            (
                Method::DELETE,
                format!("{base}/members/{}?{}", encode(&text(&f.username)), q.finish()),
                None,
                "access",
                "member-removed",
            )
        }
        "pull-secrets" => {
            let products = form_list(&raw, "products");
            let mut body = json!({
                "name": text(&f.name),
                "actions": if f.push.is_some() { json!(["pull", "push"]) } else { json!(["pull"]) },
            });
            if !products.is_empty() {
                body["products"] = json!(products);
            }
            if let Some(d) = f.expires_in_days.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
                let Ok(n) = d.parse::<u32>() else {
                    let why = "expires_in_days: a whole number of days";
                    let status = StatusCode::BAD_REQUEST;
                    let q = OrgQuery {
                        tab: Some("access".into()),
                        ..Default::default()
                    };
                    return render_org(&c, &caller, &org, &q, Some((why, false)), status).await;
                };
                body["expires_in_days"] = json!(n);
            }
            (
                Method::POST,
                format!("{base}/pull-secrets"),
                Some(body),
                "access",
                "secret",
            )
        }
        "remotes" => {
            let product = text(&f.product);
            let mut body = json!({
                "name": text(&f.name),
                "url": text(&f.url),
                "upstream_name": text(&f.upstream_name),
                "include_tags": patterns(&f.include_tags),
                "exclude_tags": patterns(&f.exclude_tags),
                "mirror": f.mirror.is_some(),
                "policy": f.policy.clone().unwrap_or_else(|| "immediate".into()),
            });
            if let Some(u) = f.username.as_deref().filter(|u| !u.is_empty()) {
                body["username"] = json!(u);
            }
            if let Some(p) = f.password.as_deref().filter(|p| !p.is_empty()) {
                body["password"] = json!(p);
            }
            (
                Method::POST,
                format!("{base}/products/{}/remotes", encode(&product)),
                Some(body),
                "remotes",
                "remote",
            )
        }
        "remotes-edit" => {
            let mut body = json!({
                "url": text(&f.url),
                "upstream_name": text(&f.upstream_name),
                "include_tags": patterns(&f.include_tags),
                "exclude_tags": patterns(&f.exclude_tags),
                "mirror": f.mirror.is_some(),
                "policy": f.policy.clone().unwrap_or_else(|| "immediate".into()),
                "username": f.username.as_deref().filter(|u| !u.is_empty()),
            });
            if let Some(p) = f.password.as_deref().filter(|p| !p.is_empty()) {
                body["password"] = json!(p);
            }
            (
                Method::PATCH,
                format!(
                    "{base}/products/{}/remotes/{}",
                    encode(&text(&f.product)),
                    encode(&text(&f.name))
                ),
                Some(body),
                "remotes",
                "remote-saved",
            )
        }
        "remotes-sync" => (
            Method::POST,
            format!(
                "{base}/products/{}/remotes/{}/sync",
                encode(&text(&f.product)),
                encode(&text(&f.name))
            ),
            None,
            "remotes",
            "job",
        ),
        "pull-secrets-revoke" => (
            Method::DELETE,
            format!("{base}/pull-secrets/{}", encode(&text(&f.name))),
            None,
            "access",
            "revoked",
        ),
        _ => return not_found_page(&caller),
    };
    let answer = c.call(&caller, method, &path, body.as_ref()).await;
    if !answer.ok() {
        if matches!(answer.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) {
            return failed(&caller.viewer(), &answer);
        }
        let why = answer.message();
        let q = OrgQuery {
            tab: Some(tab.into()),
            ..Default::default()
        };
        return render_org(&c, &caller, &org, &q, Some((&why, false)), answer.status).await;
    }
    if done == "job"
        && let Some(id) = answer.body["job"].as_i64()
    {
        return Redirect::to(&format!("/ui/jobs/{id}")).into_response();
    }
    if done == "secret" {
        let host = c.gw.registry_host(&headers).unwrap_or_default();
        return page(
            StatusCode::CREATED,
            views::new_pull_secret(&caller.viewer(), &org, &answer.body, &host),
        );
    }
    Redirect::to(&format!("/ui/orgs/{}?tab={tab}&done={done}", encode(&org))).into_response()
}

pub(super) async fn job(State(c): State<Console>, caller: Caller, Path(id): Path<i64>) -> Response {
    let job = match c.read(&caller, &format!("/api/v1/jobs/{id}")).await {
        Ok(v) => v,
        Err(page) => return page,
    };
    let org = job["payload"]["org"].as_str().unwrap_or_default();
    let back = if org.is_empty() {
        "/ui/".to_owned()
    } else {
        format!("/ui/orgs/{}?tab=remotes", encode(org))
    };
    page(StatusCode::OK, views::job(&caller.viewer(), &job, &back))
}
