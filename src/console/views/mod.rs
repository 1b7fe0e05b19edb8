//! The console's pages, as compile-time checked templates (maud): everything
//! interpolated is HTML-escaped; no page loads anything from elsewhere.

mod admin;
mod orgs;
mod repos;

pub use admin::*;
pub use orgs::*;
pub use repos::*;

use maud::{DOCTYPE, Markup, html};

/// Who is looking, as the header needs it.
pub struct Viewer<'a> {
    pub username: &'a str,
    pub csrf: &'a str,
    pub global_admin: bool,
}

pub fn layout(title: &str, viewer: Option<&Viewer<'_>>, body: Markup) -> Markup {
    layout_refreshing(title, viewer, None, body)
}

/// `layout`, reloading itself every `refresh` seconds (live progress without a script).
pub fn layout_refreshing(title: &str, viewer: Option<&Viewer<'_>>, refresh: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(secs) = refresh { meta http-equiv="refresh" content=(secs); }
                title { (title) " · gatehouse" }
                link rel="stylesheet" href="/ui/static/console.css";
                script src="/ui/static/console.js" defer {}
            }
            body {
                header {
                    a.brand href="/ui/" { "gatehouse" }
                    @if let Some(v) = viewer {
                        nav aria-label="Main" {
                            a href="/ui/" { "Organisations" }
                            @if v.global_admin { a href="/ui/admin" { "Administration" } }
                        }
                        span.muted { "Signed in as " strong { (v.username) } }
                        form.inline method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(v.csrf);
                            button.secondary type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub fn login(error: Option<&str>, csrf: &str, next: &str) -> Markup {
    layout(
        "Log in",
        None,
        html! {
            div.card.login {
                h1 { "Log in" }
                p.muted { "Use the username and password you use for " code { "podman login" } "." }
                @if let Some(e) = error {
                    p.flash.error role="alert" { (e) }
                }
                form method="post" action="/ui/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="next" value=(next);
                    label for="username" { "Username" }
                    input #username type="text" name="username" autocomplete="username" required autofocus;
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                    p { button type="submit" { "Log in" } }
                }
            }
        },
    )
}

/// A page for a person: what went wrong and what to do about it.
pub fn problem(viewer: Option<&Viewer<'_>>, title: &str, what: &str, todo: &str) -> Markup {
    layout(
        title,
        viewer,
        html! {
            div.card {
                h1 { (title) }
                p { (what) }
                p.muted { (todo) }
                p { a href="/ui/" { "Back to your organisations" } }
            }
        },
    )
}

pub(super) fn flash(message: Option<&str>, ok: bool) -> Markup {
    html! {
        @if let Some(m) = message {
            @if ok { p.flash.ok role="status" { (m) } } @else { p.flash.error role="alert" { (m) } }
        }
    }
}

pub fn size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Milliseconds since the epoch as UTC, to the minute.
pub fn when(ms: Option<i64>) -> String {
    ms.and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_else(|| "never".into())
}

pub(super) fn csrf_field(viewer: &Viewer<'_>) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// `sha256:` and the first 12 hex digits, as podman shows image ids.
pub(super) fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 => format!("{algo}:{}…", &hex[..12]),
        _ => digest.to_owned(),
    }
}

pub(super) fn pull_command(command: &str) -> Markup {
    html! {
        div.pull {
            code { (command) }
            button.secondary type="button" data-copy=(command) hidden aria-label={ "Copy " (command) } { "Copy" }
        }
    }
}
