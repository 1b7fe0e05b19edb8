//! Logging in and out of the console.

use super::*;

#[derive(Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

/// Only the console's own pages: never a redirect elsewhere.
pub(super) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("//") && !n.contains(['\\', '\r', '\n']) => n.to_owned(),
        _ => "/ui/".to_owned(),
    }
}

pub(super) async fn login_form(Query(q): Query<NextQuery>) -> Response {
    let csrf = session::random_token();
    let mut resp = page(StatusCode::OK, views::login(None, &csrf, &safe_next(q.next.as_deref())));
    if let Ok(v) = HeaderValue::from_str(&cookie_header(LOGIN_COOKIE, &csrf, 3600)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    username: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

pub(super) async fn login(
    State(c): State<Console>,
    ClientAddr(remote): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    let again = |status: StatusCode, why: &str| {
        let csrf = session::random_token();
        let mut resp = page(status, views::login(Some(why), &csrf, &next));
        if let Ok(v) = HeaderValue::from_str(&cookie_header(LOGIN_COOKIE, &csrf, 3600)) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        resp
    };
    let expected = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| session::cookie(h, LOGIN_COOKIE));
    if !expected.is_some_and(|e| session::same_token(e, &f.csrf)) {
        return again(
            StatusCode::FORBIDDEN,
            "This form expired or did not come from this site; log in again.",
        );
    }
    let address = remote.map(|r| r.ip().to_string()).unwrap_or_default();
    let key = format!("{address}|{}", f.username);
    // Trying many usernames from one address is limited too (the `|` cannot be in a name).
    let address_key = format!("{address}|");
    if c.failures.get(&key).unwrap_or(0) >= MAX_FAILURES
        || c.failures.get(&address_key).unwrap_or(0) >= MAX_FAILURES_PER_ADDRESS
    {
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed logins from here. Wait 15 minutes and try again.",
        );
    }
    let account = match c
        .gw
        .identities()
        .authenticate(&f.username, &Secret::new(f.password))
        .await
    {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "console login failed");
            return unavailable(None);
        }
    };
    let tag = match &account {
        Some(a) if a.kind == AccountKind::User => c.gw.identities().password_tag(&a.username).await.ok().flatten(),
        _ => None,
    };
    let (Some(account), Some((id, tag))) = (account, tag) else {
        c.failures.insert(key.clone(), c.failures.get(&key).unwrap_or(0) + 1);
        c.failures
            .insert(address_key.clone(), c.failures.get(&address_key).unwrap_or(0) + 1);
        if let Some(m) = c.gw.metrics() {
            m.login_failed("console");
        }
        c.gw.audit().record(
            Event::new(&f.username, "user", "console_login", "console")
                .outcome("denied")
                .remote(remote),
        );
        return again(
            StatusCode::UNAUTHORIZED,
            "Wrong username or password (pull secrets cannot log in here).",
        );
    };
    let token = match c.sessions.open(&account.username, id, &tag).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "opening a console session failed");
            return unavailable(None);
        }
    };
    c.failures.invalidate(&key);
    c.gw.audit()
        .record(Event::new(&account.username, "user", "console_login", "console").remote(remote));
    let mut resp = Redirect::to(&next).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&cookie_header(COOKIE, &token, session::LIFETIME_MS / 1000)) {
        h.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cookie_header(LOGIN_COOKIE, "", 0)) {
        h.append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    csrf: String,
}

pub(super) async fn logout(State(c): State<Console>, caller: Caller, Form(f): Form<CsrfForm>) -> Response {
    if let Some(refusal) = refuse_without_csrf(&caller, &f.csrf) {
        return refusal;
    }
    if let Err(e) = c.sessions.close(&caller.session).await {
        tracing::error!(error = %e, "closing a console session failed");
        return unavailable(Some(&caller.viewer()));
    }
    let mut resp = Redirect::to("/ui/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie_header(COOKIE, "", 0)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}
