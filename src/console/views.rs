//! The console's pages, as compile-time checked templates (maud): everything
//! interpolated is HTML-escaped; no page loads anything from elsewhere.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;

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

fn flash(message: Option<&str>, ok: bool) -> Markup {
    html! {
        @if let Some(m) = message {
            @if ok { p.flash.ok role="status" { (m) } } @else { p.flash.error role="alert" { (m) } }
        }
    }
}

pub fn orgs(viewer: &Viewer<'_>, orgs: &[Value], can_create: bool, error: Option<&str>) -> Markup {
    layout(
        "Organisations",
        Some(viewer),
        html! {
            h1 { "Organisations" }
            (flash(error, false))
            @if orgs.is_empty() {
                p.muted { "You belong to no organisation yet: an administrator adds you to one." }
            } @else {
                div.table-wrap { table {
                    thead { tr { th { "Organisation" } th { "Name" } } }
                    tbody {
                        @for o in orgs {
                            @let label = o["label"].as_str().unwrap_or_default();
                            tr {
                                td { a href={ "/ui/orgs/" (label) } { (label) } }
                                td { (o["name"].as_str().unwrap_or_default()) }
                            }
                        }
                    }
                } }
            }
            @if can_create {
                h2 { "New organisation" }
                form.card method="post" action="/ui/orgs" {
                    (csrf_field(viewer))
                    label for="org-label" { "Label (in image names)" }
                    input #org-label type="text" name="label" required;
                    label for="org-name" { "Name" }
                    input #org-name type="text" name="name" required;
                    p { button type="submit" { "Create organisation" } }
                }
            }
        },
    )
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

/// What an organisation page shows (one tab's data is filled).
pub struct Org<'a> {
    pub org: &'a str,
    pub tab: &'a str,
    pub can_manage: bool,
    pub message: Option<(&'a str, bool)>,
    pub query: &'a str,
    pub repos: &'a [Value],
    pub products: &'a [Value],
    pub members: &'a [Value],
    pub pull_secrets: &'a [Value],
    pub remotes: &'a [Value],
    pub audit: &'a AuditView<'a>,
    /// The next page of repositories starts after this one.
    pub next_page: Option<&'a str>,
    /// The remote being edited (`product/name`), if any.
    pub editing: Option<&'a str>,
}

/// The audit tab: the filter as given, the events, and the next page's cursor.
#[derive(Default)]
pub struct AuditView<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub since: &'a str,
    pub until: &'a str,
    pub events: Vec<Value>,
    pub next_before: Option<i64>,
}

pub fn org(viewer: &Viewer<'_>, o: &Org<'_>) -> Markup {
    let tab = |name: &str, label: &str| {
        html! {
            a href={ "/ui/orgs/" (o.org) "?tab=" (name) } aria-current=[(o.tab == name).then_some("page")] { (label) }
        }
    };
    layout(
        o.org,
        Some(viewer),
        html! {
            h1 { "Organisation " (o.org) }
            (flash(o.message.map(|m| m.0), o.message.is_some_and(|m| m.1)))
            nav.tabs aria-label="Organisation" {
                (tab("repositories", "Repositories")) (tab("products", "Products"))
                @if o.can_manage { (tab("access", "Access")) (tab("remotes", "Remotes")) (tab("audit", "Audit log")) }
            }
            @match o.tab {
                "products" => (products(viewer, o)),
                "access" => (access(viewer, o)),
                "remotes" => (remotes(viewer, o)),
                "audit" => (audit(o)),
                _ => (repositories(o)),
            }
        },
    )
}

fn repositories(o: &Org<'_>) -> Markup {
    html! {
        form.search role="search" method="get" action={ "/ui/orgs/" (o.org) } {
            label.visually-hidden for="q" { "Search repositories" }
            input #q type="search" name="q" value=(o.query) placeholder="Search by name";
            button type="submit" { "Search" }
        }
        @if o.repos.is_empty() {
            p.muted { "No repository" @if !o.query.is_empty() { " matches " code { (o.query) } } "." }
        } @else {
            div.table-wrap { table {
                thead { tr {
                    th { "Repository" } th.optional { "Product" } th { "Source" }
                    th { "Tags" } th.optional { "Size" } th.optional { "Last change" }
                } }
                tbody {
                    @for r in o.repos {
                        @let name = r["name"].as_str().unwrap_or_default();
                        tr {
                            td { a href={ "/ui/repos/" (name) } { (name) } }
                            td.optional { (r["product"].as_str().unwrap_or_default()) }
                            td { @if r["mirrored"] == true { span.badge { "mirrored" } } @else { span.badge { "local" } } }
                            td { (r["tags"].as_i64().unwrap_or(0)) }
                            td.optional { (size(r["size"].as_i64().unwrap_or(0))) }
                            td.optional { (when(r["changed_at"].as_i64())) }
                        }
                    }
                }
            } }
            @if let Some(after) = o.next_page {
                @let q = form_urlencoded::Serializer::new(String::new())
                    .append_pair("q", o.query).append_pair("after", after).finish();
                p { a href={ "/ui/orgs/" (o.org) "?" (q) } { "Next page" } }
            }
        }
    }
}

fn csrf_field(viewer: &Viewer<'_>) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

fn products(viewer: &Viewer<'_>, o: &Org<'_>) -> Markup {
    html! {
        @if o.products.is_empty() {
            p.muted { "No products yet." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Product" } th { "Visibility" } th.optional { "Signatures required" } } }
                tbody {
                    @for p in o.products {
                        tr {
                            td { (p["label"].as_str().unwrap_or_default()) }
                            td { @if p["public"] == true { "public (anyone may pull)" } @else { "private" } }
                            td.optional {
                                @let keys: Vec<&str> = p["require_signed_by"].as_array().into_iter().flatten().filter_map(|k| k.as_str()).collect();
                                @if keys.is_empty() { span.muted { "no" } } @else { (keys.join(", ")) }
                            }
                        }
                    }
                }
            } }
        }
        @if o.can_manage {
            h2 { "New product" }
            form.card method="post" action={ "/ui/orgs/" (o.org) "/products" } {
                (csrf_field(viewer))
                label for="label" { "Label" }
                input #label type="text" name="label" required pattern="[a-z0-9]+([._-][a-z0-9]+)*"
                    title="lowercase letters and digits, separated by . _ or -";
                label { input type="checkbox" name="public" value="on"; " Public: anyone may pull" }
                p { button type="submit" { "Create product" } }
            }
        }
    }
}

fn access(viewer: &Viewer<'_>, o: &Org<'_>) -> Markup {
    let product_names: Vec<&str> = o.products.iter().filter_map(|p| p["label"].as_str()).collect();
    html! {
        h2 { "Members" }
        div.table-wrap { table {
            thead { tr { th { "User" } th { "Role" } th { "Scope" } th { span.visually-hidden { "Actions" } } } }
            tbody {
                @for m in o.members {
                    @let user = m["username"].as_str().unwrap_or_default();
                    @let role = m["role"].as_str().unwrap_or_default();
                    @let product = m["product"].as_str().unwrap_or_default();
                    tr {
                        td { (user) }
                        td { (role) }
                        td { @if product.is_empty() { "whole organisation" } @else { "product " (product) } }
                        td {
                            form.inline method="post" action={ "/ui/orgs/" (o.org) "/members-remove" }
                                data-confirm={ "Remove " (user) "'s " (role) " role?" } {
                                (csrf_field(viewer))
                                input type="hidden" name="username" value=(user);
                                input type="hidden" name="role" value=(role);
                                input type="hidden" name="product" value=(product);
                                button.danger type="submit" aria-label={ "Remove " (user) " as " (role) } { "Remove" }
                            }
                        }
                    }
                }
            }
        } }
        form.card method="post" action={ "/ui/orgs/" (o.org) "/members" } {
            (csrf_field(viewer))
            label for="member-username" { "Add a member: username" }
            input #member-username type="text" name="username" required;
            label for="member-role" { "Role" }
            select #member-role name="role" {
                option value="viewer" { "viewer (pull)" }
                option value="pusher" { "pusher (pull and push)" }
                option value="org_admin" { "org_admin (everything in the organisation)" }
            }
            label for="member-product" { "Scope" }
            select #member-product name="product" {
                option value="" { "whole organisation" }
                @for p in &product_names { option value=(p) { "product " (p) } }
            }
            p { button type="submit" { "Add member" } }
        }

        h2 { "Pull secrets" }
        @if o.pull_secrets.is_empty() {
            p.muted { "No pull secrets." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Name" } th { "Username" } th.optional { "Products" } th { "Access" } th.optional { "Expires" } th.optional { "Last used" } th { span.visually-hidden { "Actions" } } } }
                tbody {
                    @for p in o.pull_secrets {
                        @let name = p["name"].as_str().unwrap_or_default();
                        tr {
                            td { (name) }
                            td.mono { (p["username"].as_str().unwrap_or_default()) }
                            td.optional {
                                @let list: Vec<&str> = p["products"].as_array().into_iter().flatten().filter_map(|x| x.as_str()).collect();
                                @if p["products"].is_null() { "all" } @else { (list.join(", ")) }
                            }
                            td { @if p["can_push"] == true { "pull, push" } @else { "pull" } }
                            td.optional { @if p["expires_at"].is_null() { "never" } @else { (when(p["expires_at"].as_i64())) } }
                            td.optional { (when(p["last_used_at"].as_i64())) }
                            td {
                                form.inline method="post" action={ "/ui/orgs/" (o.org) "/pull-secrets-revoke" }
                                    data-confirm={ "Revoke pull secret " (name) "? Machines using it stop pulling." } {
                                    (csrf_field(viewer))
                                    input type="hidden" name="name" value=(name);
                                    button.danger type="submit" aria-label={ "Revoke " (name) } { "Revoke" }
                                }
                            }
                        }
                    }
                }
            } }
        }
        form.card method="post" action={ "/ui/orgs/" (o.org) "/pull-secrets" } {
            (csrf_field(viewer))
            label for="secret-name" { "New pull secret: name" }
            input #secret-name type="text" name="name" required;
            fieldset {
                legend { "Products (none checked: all)" }
                @for p in &product_names {
                    label { input type="checkbox" name="products" value=(p); " " (p) }
                }
            }
            label { input type="checkbox" name="push" value="on"; " May push too" }
            label for="secret-expiry" { "Expires after (days, empty: never)" }
            input #secret-expiry type="text" name="expires_in_days" inputmode="numeric" pattern="[0-9]*";
            p { button type="submit" { "Create pull secret" } }
        }
    }
}

fn remotes(viewer: &Viewer<'_>, o: &Org<'_>) -> Markup {
    let product_names: Vec<&str> = o.products.iter().filter_map(|p| p["label"].as_str()).collect();
    html! {
        @if o.remotes.is_empty() {
            p.muted { "No remotes: nothing is mirrored from another registry yet." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Remote" } th { "Upstream" } th.optional { "Tags" } th.optional { "Mode" } th { span.visually-hidden { "Actions" } } } }
                tbody {
                    @for r in o.remotes {
                        @let product = r["product"].as_str().unwrap_or_default();
                        @let name = r["name"].as_str().unwrap_or_default();
                        tr {
                            td { a href={ "/ui/repos/" (o.org) "/" (product) "/" (name) } { (o.org) "/" (product) "/" (name) } }
                            td.mono { (r["url"].as_str().unwrap_or_default()) "/" (r["upstream_name"].as_str().unwrap_or_default()) }
                            td.optional {
                                @let inc: Vec<&str> = r["include_tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str()).collect();
                                @let exc: Vec<&str> = r["exclude_tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str()).collect();
                                @if inc.is_empty() { "all" } @else { (inc.join(", ")) }
                                @if !exc.is_empty() { " except " (exc.join(", ")) }
                            }
                            td.optional {
                                @if r["mirror"] == true { "mirror" } @else { "additive" } ", " (r["policy"].as_str().unwrap_or_default())
                                @if r["signed_only"] == true { ", signed only" }
                            }
                            td {
                                form.inline method="post" action={ "/ui/orgs/" (o.org) "/remotes-sync" } {
                                    (csrf_field(viewer))
                                    input type="hidden" name="product" value=(product);
                                    input type="hidden" name="name" value=(name);
                                    button type="submit" aria-label={ "Sync " (name) " now" } { "Sync now" }
                                }
                                @if let Some(job) = r["last_job"].as_i64() {
                                    " " a href={ "/ui/jobs/" (job) } { "last sync" }
                                }
                                " " a href={ "/ui/orgs/" (o.org) "?tab=remotes&edit=" (product) "/" (name) } aria-label={ "Edit " (name) } { "Edit" }
                            }
                        }
                    }
                }
            } }
        }
        @let editing = o.editing.and_then(|e| e.split_once('/')).and_then(|(p, n)| {
            o.remotes.iter().find(|r| r["product"] == p && r["name"] == n)
        });
        @let field = |k: &str| editing.and_then(|r| r[k].as_str()).unwrap_or_default().to_owned();
        @let list = |k: &str| editing.map(|r| r[k].as_array().into_iter().flatten().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default();
        h2 { @if let Some(r) = editing { "Edit remote " (r["name"].as_str().unwrap_or_default()) } @else { "New remote" } }
        form.card method="post" action={ "/ui/orgs/" (o.org) @if editing.is_some() { "/remotes-edit" } @else { "/remotes" } } {
            (csrf_field(viewer))
            @if let Some(r) = editing {
                input type="hidden" name="product" value=(r["product"].as_str().unwrap_or_default());
                input type="hidden" name="name" value=(r["name"].as_str().unwrap_or_default());
            } @else {
                label for="remote-product" { "Product" }
                select #remote-product name="product" required {
                    @for p in &product_names { option value=(p) { (p) } }
                }
                label for="remote-name" { "Name (the repository it fills)" }
                input #remote-name type="text" name="name" required;
            }
            label for="remote-url" { "Registry URL" }
            input #remote-url type="text" name="url" required placeholder="https://registry.example:5000" value=(field("url"));
            label for="remote-upstream" { "Upstream repository" }
            input #remote-upstream type="text" name="upstream_name" required placeholder="library/alpine" value=(field("upstream_name"));
            label for="remote-include" { "Include tags (comma-separated patterns, empty: all)" }
            input #remote-include type="text" name="include_tags" value=(list("include_tags"));
            label for="remote-exclude" { "Exclude tags" }
            input #remote-exclude type="text" name="exclude_tags" value=(list("exclude_tags"));
            label { input type="checkbox" name="mirror" value="on" checked[editing.is_some_and(|r| r["mirror"] == true)]; " Mirror: remove what the upstream no longer has" }
            label for="remote-policy" { "Blobs" }
            select #remote-policy name="policy" {
                option value="immediate" { "fetch during the sync" }
                option value="on_demand" selected[field("policy") == "on_demand"] { "fetch on first pull" }
            }
            label for="remote-username" { "Username (optional)" }
            input #remote-username type="text" name="username" autocomplete="off" value=(field("username"));
            label for="remote-password" { "Password (optional; stored encrypted, never shown" @if editing.is_some() { "; empty keeps the current one" } ")" }
            input #remote-password type="password" name="password" autocomplete="new-password";
            p { button type="submit" { @if editing.is_some() { "Save remote" } @else { "Create remote" } } }
        }
    }
}

fn audit(o: &Org<'_>) -> Markup {
    let a = o.audit;
    html! {
        form.card method="get" action={ "/ui/orgs/" (o.org) } {
            input type="hidden" name="tab" value="audit";
            label for="f-actor" { "Who" }
            input #f-actor type="text" name="actor" value=(a.actor);
            label for="f-action" { "Action" }
            input #f-action type="text" name="action" value=(a.action) placeholder="push, pull, create_pull_secret…";
            label for="f-target" { "Repository (or any target starting with)" }
            input #f-target type="text" name="target" value=(a.target) placeholder={ (o.org) "/web/app" };
            label for="f-since" { "From (YYYY-MM-DD, UTC)" }
            input #f-since type="text" name="since" value=(a.since) pattern="[0-9]{4}-[0-9]{2}-[0-9]{2}";
            label for="f-until" { "Until (YYYY-MM-DD, UTC, inclusive)" }
            input #f-until type="text" name="until" value=(a.until) pattern="[0-9]{4}-[0-9]{2}-[0-9]{2}";
            p { button type="submit" { "Filter" } }
        }
        @if a.events.is_empty() {
            p.muted { "No events." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "When" } th { "Who" } th { "Action" } th { "Target" } th { "Outcome" } th.optional { "From" } th.optional { "Detail" } } }
                tbody {
                    @for e in &a.events {
                        tr {
                            td { (when(e["at"].as_i64())) }
                            td { (e["actor"].as_str().unwrap_or_default()) " " span.muted { "(" (e["actor_kind"].as_str().unwrap_or_default()) ")" } }
                            td { (e["action"].as_str().unwrap_or_default()) }
                            td.mono { (e["target"].as_str().unwrap_or_default()) }
                            td { @if e["outcome"] == "ok" { span.badge.ok { "ok" } } @else { span.badge.bad { (e["outcome"].as_str().unwrap_or_default()) } } }
                            td.optional { (e["remote"].as_str().unwrap_or_default()) }
                            td.optional { (e["detail"].as_str().unwrap_or_default()) }
                        }
                    }
                }
            } }
            @if let Some(next) = a.next_before {
                @let q = form_urlencoded::Serializer::new(String::new())
                    .append_pair("tab", "audit").append_pair("actor", a.actor).append_pair("action", a.action)
                    .append_pair("target", a.target).append_pair("since", a.since).append_pair("until", a.until)
                    .append_pair("before", &next.to_string()).finish();
                p { a href={ "/ui/orgs/" (o.org) "?" (q) } { "Older events" } }
            }
        }
    }
}

/// A job (a sync): its state and progress; the page refreshes itself while it runs.
pub fn job(viewer: &Viewer<'_>, job: &Value, back: &str) -> Markup {
    let state = job["state"].as_str().unwrap_or_default();
    let running = matches!(state, "queued" | "running");
    let p = &job["progress"];
    let pair = |k: &str| {
        format!(
            "{} of {}",
            p[k]["done"].as_u64().unwrap_or(0),
            p[k]["total"].as_u64().unwrap_or(0)
        )
    };
    let id = job["id"].as_i64().unwrap_or(0);
    html! {
        (layout_refreshing(&format!("Job {id}"), Some(viewer), running.then_some(1), html! {
            h1 { "Sync job " (id) }
            div.card aria-live="polite" {
                p { "State: " strong #job-state { (state) }
                    @if let Some(phase) = p["phase"].as_str().filter(|_| running) { " (" (phase) ")" } }
                @if !p.is_null() {
                    ul {
                        li { "Tags: " (p["tags"].as_u64().unwrap_or(0)) }
                        li { "Manifests: " (pair("manifests")) }
                        li { "Blobs: " (pair("blobs")) }
                        li { "Bytes: " (size(p["bytes"]["done"].as_i64().unwrap_or(0))) " of " (size(p["bytes"]["total"].as_i64().unwrap_or(0))) }
                    }
                    @if let Some(v) = p["outcome"]["version"].as_i64() {
                        p { "Made version " (v) "." }
                    } @else if state == "done" {
                        p { "Nothing new: the repository already had it all." }
                    }
                }
                @if let Some(e) = job["last_error"].as_str() {
                    p.flash.error role="alert" { (e) }
                }
            }
            p { a href=(back) { "Back" } }
        }))
    }
}

/// A new pull secret, shown once, with its client configurations to download.
pub fn new_pull_secret(viewer: &Viewer<'_>, org: &str, made: &Value, host: &str) -> Markup {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let username = made["username"].as_str().unwrap_or_default();
    let secret = made["secret"].as_str().unwrap_or_default();
    let config = serde_json::to_string_pretty(&made["dockerconfigjson"]).unwrap_or_default();
    let k8s_name = username.replace(['_', '.'], "-");
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {k8s_name}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
        b64(&made["dockerconfigjson"].to_string())
    );
    layout(
        "New pull secret",
        Some(viewer),
        html! {
            h1 { "Pull secret " (username) }
            p.flash.ok role="status" { "Created. The secret is shown only now: store it or download a configuration." }
            div.card {
                p { "Username: " code #secret-username { (username) } }
                p { "Secret: " code #secret-value { (secret) } " "
                    button.secondary type="button" data-copy=(secret) hidden { "Copy" } }
                (pull_command(&format!("podman login -u {username} {host}")))
                p {
                    a.button #download-config download="config.json"
                        href={ "data:application/json;base64," (b64(&config)) } { "Download config.json" }
                    " "
                    a.button #download-k8s download={ (k8s_name) ".yaml" }
                        href={ "data:application/yaml;base64," (b64(&yaml)) } { "Download Kubernetes Secret" }
                }
            }
            p { a href={ "/ui/orgs/" (org) "?tab=access" } { "Back to access" } }
        },
    )
}

/// What a repository page shows.
pub struct Repository<'a> {
    pub public: &'a str,
    pub host: &'a str,
    pub tab: &'a str,
    pub can_push: bool,
    /// Organisation admins see the repository's audit events.
    pub can_manage: bool,
    /// The README's Markdown, and as sanitized HTML.
    pub readme: &'a str,
    pub readme_html: &'a str,
    pub message: Option<(&'a str, bool)>,
    /// `GET …/signatures`: tags with their digests and signatures.
    pub tags: &'a [Value],
    /// `GET …/versions`.
    pub versions: &'a [Value],
    /// The remote that fills it, with its last sync job, when it is mirrored (seen by
    /// org admins).
    pub remote: Option<&'a Value>,
    pub last_sync: Option<&'a Value>,
    /// The organisation's signing keys that can sign (for pushers).
    pub signing_keys: &'a [String],
}

pub fn repository(viewer: &Viewer<'_>, r: &Repository<'_>) -> Markup {
    let base = format!("/ui/repos/{}", r.public);
    let tab = |name: &str, label: &str| {
        html! {
            a href={ (base) "?tab=" (name) } aria-current=[(r.tab == name).then_some("page")] { (label) }
        }
    };
    layout(
        r.public,
        Some(viewer),
        html! {
            h1 { (r.public) }
            (flash(r.message.map(|m| m.0), r.message.is_some_and(|m| m.1)))
            (repository_header(viewer, r))
            nav.tabs aria-label="Repository" {
                (tab("images", "Images")) (tab("versions", "Versions"))
                @if r.can_manage {
                    @let org = r.public.split('/').next().unwrap_or_default();
                    a href={ "/ui/orgs/" (org) "?tab=audit&target=" (r.public) } { "Activity" }
                }
            }
            @match r.tab {
                "versions" => (versions(viewer, r)),
                "readme" if r.can_push => (edit_readme(viewer, r)),
                _ => {
                    @if !r.readme.trim().is_empty() {
                        section.card.readme aria-label="README" { (PreEscaped(r.readme_html)) }
                    }
                    @if r.can_push {
                        p { a href={ "/ui/repos/" (r.public) "?tab=readme" } { @if r.readme.trim().is_empty() { "Add a README" } @else { "Edit the README" } } }
                    }
                    (images(viewer, r))
                }
            }
        },
    )
}

/// `sha256:` and the first 12 hex digits, as podman shows image ids.
fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 => format!("{algo}:{}…", &hex[..12]),
        _ => digest.to_owned(),
    }
}

/// Where the content comes from and the actions on the whole repository.
fn repository_header(viewer: &Viewer<'_>, r: &Repository<'_>) -> Markup {
    let mut parts = r.public.splitn(3, '/');
    let (org, product) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    html! {
        @if let Some(remote) = r.remote {
            div.card #mirror {
                p {
                    "Mirrored from " code { (remote["url"].as_str().unwrap_or_default()) "/" (remote["upstream_name"].as_str().unwrap_or_default()) }
                    " · last sync: "
                    @match r.last_sync {
                        Some(job) => {
                            a href={ "/ui/jobs/" (job["id"].as_i64().unwrap_or(0)) } { (job["state"].as_str().unwrap_or_default()) }
                            " (" (when(job["updated_at"].as_i64())) ")"
                            @if let Some(e) = job["last_error"].as_str() { " " span.badge.bad { "error" } " " (e) }
                        }
                        None => "never",
                    }
                }
                form.inline method="post" action={ "/ui/orgs/" (org) "/remotes-sync" } {
                    (csrf_field(viewer))
                    input type="hidden" name="product" value=(product);
                    input type="hidden" name="name" value=(remote["name"].as_str().unwrap_or_default());
                    button type="submit" { "Sync now" }
                }
            }
        }
        @if r.can_push && !r.signing_keys.is_empty() && !r.tags.is_empty() {
            form.card.search method="post" action={ "/ui/repos/" (r.public) "/sign" } {
                (csrf_field(viewer))
                label for="sign-tag" { "Sign" }
                select #sign-tag name="tag" {
                    @for t in r.tags { @let tag = t["tag"].as_str().unwrap_or_default(); option value=(tag) { (tag) } }
                }
                label for="sign-key" { "with" }
                select #sign-key name="key" {
                    @for k in r.signing_keys { option value=(k) { (k) } }
                }
                button type="submit" { "Sign" }
            }
        }
    }
}

fn pull_command(command: &str) -> Markup {
    html! {
        div.pull {
            code { (command) }
            button.secondary type="button" data-copy=(command) hidden aria-label={ "Copy " (command) } { "Copy" }
        }
    }
}

fn images(viewer: &Viewer<'_>, r: &Repository<'_>) -> Markup {
    html! {
        @if r.tags.is_empty() {
            p.muted { "No tags yet. Push one:" }
            (pull_command(&format!("podman push IMAGE {}/{}:TAG", r.host, r.public)))
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Tag" } th { "Pull" } th.optional { "Digest" } th { "Signatures" } @if r.can_push { th { span.visually-hidden { "Actions" } } } } }
                tbody {
                    @for t in r.tags {
                        @let tag = t["tag"].as_str().unwrap_or_default();
                        @let digest = t["digest"].as_str().unwrap_or_default();
                        tr {
                            td { a href={ "/ui/repos/" (r.public) "/manifests/" (digest) } { (tag) } }
                            td { (pull_command(&format!("podman pull {}/{}:{tag}", r.host, r.public))) }
                            td.optional.mono title=(digest) { (short_digest(digest)) }
                            td {
                                @let sigs = t["signatures"].as_array().cloned().unwrap_or_default();
                                @if sigs.is_empty() { span.muted { "unsigned" } }
                                @for s in &sigs {
                                    @if s["valid"] == true {
                                        span.badge.ok title=(s["identity"].as_str().unwrap_or_default()) {
                                            (s["type"].as_str().unwrap_or_default()) ": " (s["key"].as_str().unwrap_or_default())
                                        }
                                    } @else {
                                        span.badge.bad { (s["type"].as_str().unwrap_or_default()) ": unknown key" }
                                    }
                                    " "
                                }
                            }
                            @if r.can_push {
                                td {
                                    form.inline method="post" action={ "/ui/repos/" (r.public) "/untag" }
                                        data-confirm={ "Remove tag " (tag) "?" } {
                                        input type="hidden" name="csrf" value=(viewer.csrf);
                                        input type="hidden" name="tag" value=(tag);
                                        button.danger type="submit" aria-label={ "Remove tag " (tag) } { "Remove tag" }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
        }
    }
}

fn edit_readme(viewer: &Viewer<'_>, r: &Repository<'_>) -> Markup {
    html! {
        form.card method="post" action={ "/ui/repos/" (r.public) "/readme" } {
            (csrf_field(viewer))
            label for="readme" { "README (Markdown; HTML in it is shown as text)" }
            textarea #readme name="content" rows="16" { (r.readme) }
            p { button type="submit" { "Save README" } " " a href={ "/ui/repos/" (r.public) } { "Cancel" } }
        }
    }
}

/// Tags in version `from` and `to` compared: (tag, digest in `from`, digest in `to`) for
/// each tag that differs.
pub fn compare(
    viewer: &Viewer<'_>,
    public: &str,
    from: i64,
    to: i64,
    changes: &[(String, Option<String>, Option<String>)],
) -> Markup {
    layout(
        &format!("{public}: version {from} and {to}"),
        Some(viewer),
        html! {
            p { a href={ "/ui/repos/" (public) "?tab=versions" } { "← versions of " (public) } }
            h1 { (public) ": version " (from) " → " (to) }
            @if changes.is_empty() {
                p.muted { "The two versions have the same tags." }
            } @else {
                div.table-wrap { table.compare {
                    thead { tr { th { "Tag" } th { "In " (from) } th { "In " (to) } } }
                    tbody {
                        @for (tag, a, b) in changes {
                            tr {
                                td { (tag) }
                                td { @match a { Some(d) => a href={ "/ui/repos/" (public) "/manifests/" (d) } { code { (short_digest(d)) } }, None => span.muted { "absent" } } }
                                td { @match b { Some(d) => a href={ "/ui/repos/" (public) "/manifests/" (d) } { code { (short_digest(d)) } }, None => span.muted { "absent" } } }
                            }
                        }
                    }
                } }
            }
        },
    )
}

fn versions(viewer: &Viewer<'_>, r: &Repository<'_>) -> Markup {
    let latest = r.versions.first().and_then(|v| v["number"].as_i64());
    let counts = |v: &Value, side: &str| -> String {
        let s = &v["summary"][side];
        let parts: Vec<String> = ["tags", "manifests", "blobs", "signatures"]
            .iter()
            .filter_map(|k| {
                let n = s[*k].as_i64().unwrap_or(0);
                let k = if n == 1 { k.trim_end_matches('s') } else { k };
                (n > 0).then(|| format!("{n} {k}"))
            })
            .collect();
        if parts.is_empty() {
            "nothing".into()
        } else {
            parts.join(", ")
        }
    };
    html! {
        @if r.versions.is_empty() {
            p.muted { "No versions yet." }
        } @else {
            @if r.versions.len() > 1 {
                form.card.search method="get" action={ "/ui/repos/" (r.public) "/compare" } {
                    label for="cmp-from" { "Compare version" }
                    input #cmp-from type="text" name="from" inputmode="numeric" size="4"
                        value=(r.versions.get(1).and_then(|v| v["number"].as_i64()).unwrap_or(1));
                    label for="cmp-to" { "with" }
                    input #cmp-to type="text" name="to" inputmode="numeric" size="4"
                        value=(r.versions.first().and_then(|v| v["number"].as_i64()).unwrap_or(1));
                    button type="submit" { "Compare" }
                }
            }
            div.table-wrap { table {
                thead { tr { th { "Version" } th { "When" } th { "Why" } th.optional { "Added" } th.optional { "Removed" } @if r.can_push { th { span.visually-hidden { "Actions" } } } } }
                tbody {
                    @for v in r.versions {
                        @let n = v["number"].as_i64().unwrap_or(0);
                        tr {
                            td { a href={ "/ui/repos/" (r.public) "/versions/" (n) } { (n) } @if Some(n) == latest { " " span.badge { "latest" } } }
                            td { (when(v["created_at"].as_i64())) }
                            td { (v["reason"].as_str().unwrap_or_default()) }
                            td.optional { (counts(v, "added")) }
                            td.optional { (counts(v, "removed")) }
                            @if r.can_push {
                                td {
                                    @if Some(n) != latest {
                                        form.inline method="post" action={ "/ui/repos/" (r.public) "/rollback" }
                                            data-confirm={ "Roll back to version " (n) "? This makes a new version with its content." } {
                                            input type="hidden" name="csrf" value=(viewer.csrf);
                                            input type="hidden" name="version" value=(n);
                                            button.secondary type="submit" { "Roll back to " (n) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
        }
    }
}

/// A manifest: an index's platforms, or an image's layers, config and history.
pub fn manifest(viewer: &Viewer<'_>, public: &str, host: &str, d: &Value, can_push: bool) -> Markup {
    let digest = d["digest"].as_str().unwrap_or_default();
    let m = &d["manifest"];
    let tags: Vec<&str> = d["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
        .collect();
    let total: i64 = m["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["size"].as_i64())
        .sum();
    layout(
        &format!("{public}@{}", short_digest(digest)),
        Some(viewer),
        html! {
            p { a href={ "/ui/repos/" (public) } { "← " (public) } }
            h1 { (public) "@" (short_digest(digest)) }
            div.card {
                p { "Digest: " code { (digest) } }
                p { "Media type: " code { (d["media_type"].as_str().unwrap_or_default()) } " · " (size(d["size"].as_i64().unwrap_or(0))) }
                p { "Tags: " @if tags.is_empty() { span.muted { "none" } } @else { (tags.join(", ")) } }
                (pull_command(&format!("podman pull {host}/{public}@{digest}")))
            }
            @if let Some(annotations) = m["annotations"].as_object().filter(|a| !a.is_empty()) {
                h2 { "Annotations" }
                div.table-wrap { table.annotations {
                    thead { tr { th { "Key" } th { "Value" } } }
                    tbody {
                        @for (k, v) in annotations {
                            tr { td.mono { (k) } td { (v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())) } }
                        }
                    }
                } }
            }
            @if let Some(children) = m["manifests"].as_array() {
                h2 { "Platforms" }
                div.table-wrap { table {
                    thead { tr { th { "Platform" } th { "Manifest" } th.optional { "Size" } } }
                    tbody {
                        @for c in children {
                            @let p = &c["platform"];
                            @let child = c["digest"].as_str().unwrap_or_default();
                            tr {
                                td {
                                    @if p.is_null() { span.muted { "(not a platform: " (c["artifactType"].as_str().or(c["mediaType"].as_str()).unwrap_or_default()) ")" } }
                                    @else {
                                        (p["os"].as_str().unwrap_or_default()) "/" (p["architecture"].as_str().unwrap_or_default())
                                        @if let Some(v) = p["variant"].as_str() { "/" (v) }
                                    }
                                }
                                td { a href={ "/ui/repos/" (public) "/manifests/" (child) } { (short_digest(child)) } }
                                td.optional { (size(c["size"].as_i64().unwrap_or(0))) }
                            }
                        }
                    }
                } }
            }
            @if let Some(layers) = m["layers"].as_array() {
                @let c = &d["config"];
                @if !c.is_null() {
                    h2 { "Config" }
                    div.card {
                        p { "Platform: " (c["os"].as_str().unwrap_or("?")) "/" (c["architecture"].as_str().unwrap_or("?")) }
                        @if let Some(created) = c["created"].as_str() { p { "Created: " (created) } }
                        @if let Some(cmd) = c["config"]["Cmd"].as_array() {
                            p { "Command: " code { (cmd.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" ")) } }
                        }
                    }
                }
                h2 { "Layers (" (layers.len()) ", " (size(total)) ")" }
                div.table-wrap { table {
                    thead { tr { th { "#" } th { "Digest" } th { "Size" } th.optional { "Media type" } } }
                    tbody {
                        @for (i, l) in layers.iter().enumerate() {
                            tr {
                                td { (i + 1) }
                                td.mono title=(l["digest"].as_str().unwrap_or_default()) { (short_digest(l["digest"].as_str().unwrap_or_default())) }
                                td { (size(l["size"].as_i64().unwrap_or(0))) }
                                td.optional.mono { (l["mediaType"].as_str().unwrap_or_default()) }
                            }
                        }
                    }
                } }
                @if let Some(history) = c["history"].as_array().filter(|h| !h.is_empty()) {
                    h2 { "History" }
                    div.table-wrap { table {
                        thead { tr { th { "Created" } th { "Step" } } }
                        tbody {
                            @for h in history {
                                tr {
                                    td { (h["created"].as_str().unwrap_or_default()) }
                                    td.mono { (h["created_by"].as_str().or(h["comment"].as_str()).unwrap_or_default())
                                        @if h["empty_layer"] == true { " " span.badge { "no layer" } } }
                                }
                            }
                        }
                    } }
                }
            }
            @if can_push {
                h2 { "Add a tag" }
                form.card method="post" action={ "/ui/repos/" (public) "/tag" } {
                    (csrf_field(viewer))
                    input type="hidden" name="digest" value=(digest);
                    label for="new-tag" { "Tag" }
                    input #new-tag type="text" name="tag" required pattern="[A-Za-z0-9_][A-Za-z0-9._-]{0,127}";
                    p { button type="submit" { "Add tag" } }
                }
            }
        },
    )
}

/// What one version added and removed.
pub fn version(viewer: &Viewer<'_>, public: &str, v: &Value) -> Markup {
    let n = v["version"]["number"].as_i64().unwrap_or(0);
    let items = |side: &str| v["diff"][side].as_array().cloned().unwrap_or_default();
    let row = |i: &Value| {
        let kind = i["kind"].as_str().unwrap_or_default();
        let digest = i["digest"].as_str().unwrap_or_default();
        html! {
            tr {
                td { (kind) }
                td {
                    @match kind {
                        "tag" => { (i["name"].as_str().unwrap_or_default()) " → " code { (short_digest(digest)) } },
                        "manifest" => a href={ "/ui/repos/" (public) "/manifests/" (digest) } { code { (short_digest(digest)) } },
                        "signature" => { "of " code { (short_digest(i["manifest"].as_str().unwrap_or_default())) } },
                        _ => code { (short_digest(digest)) },
                    }
                }
            }
        }
    };
    layout(
        &format!("{public} version {n}"),
        Some(viewer),
        html! {
            p { a href={ "/ui/repos/" (public) "?tab=versions" } { "← versions of " (public) } }
            h1 { (public) " version " (n) }
            p { (v["version"]["reason"].as_str().unwrap_or_default()) " · " (when(v["version"]["created_at"].as_i64())) }
            @for side in ["added", "removed"] {
                h2 { (if side == "added" { "Added" } else { "Removed" }) }
                @let list = items(side);
                @if list.is_empty() { p.muted { "Nothing." } } @else {
                    div.table-wrap { table {
                        thead { tr { th { "Kind" } th { "What" } } }
                        tbody { @for i in &list { (row(i)) } }
                    } }
                }
            }
        },
    )
}

/// Global administration: edge sites and users.
pub fn admin(viewer: &Viewer<'_>, tab: &str, message: Option<(&str, bool)>, items: &[Value]) -> Markup {
    let link = |name: &str, label: &str| {
        html! { a href={ "/ui/admin?tab=" (name) } aria-current=[(tab == name).then_some("page")] { (label) } }
    };
    layout(
        "Administration",
        Some(viewer),
        html! {
            h1 { "Administration" }
            (flash(message.map(|m| m.0), message.is_some_and(|m| m.1)))
            nav.tabs aria-label="Administration" { (link("edges", "Edge sites")) (link("users", "Users")) }
            @if tab == "users" {
                div.table-wrap { table {
                    thead { tr { th { "User" } th { "Global admin" } th.optional { "Created" } th { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for u in items {
                            @let name = u["username"].as_str().unwrap_or_default();
                            tr {
                                td { (name) }
                                td { @if u["global_admin"] == true { "yes" } @else { "no" } }
                                td.optional { (when(u["created_at"].as_i64())) }
                                td {
                                    @if name != viewer.username {
                                        form.inline method="post" action="/ui/admin/users-delete"
                                            data-confirm={ "Delete user " (name) "? Their sessions and tokens end." } {
                                            (csrf_field(viewer))
                                            input type="hidden" name="username" value=(name);
                                            button.danger type="submit" aria-label={ "Delete " (name) } { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }
                form.card method="post" action="/ui/admin/users" {
                    (csrf_field(viewer))
                    label for="user-name" { "New user: username" }
                    input #user-name type="text" name="username" required;
                    label for="user-password" { "Password (12 characters or more)" }
                    input #user-password type="password" name="password" required autocomplete="new-password";
                    label { input type="checkbox" name="global_admin" value="on"; " Global administrator" }
                    p { button type="submit" { "Create user" } }
                }
            } @else {
                @if items.is_empty() {
                    p.muted { "No edge sites. Register one with the API (POST /api/v1/smart-proxies): its credential is shown once." }
                } @else {
                    div.table-wrap { table {
                        thead { tr { th { "Edge site" } th.optional { "Mirrors" } th { "Behind by" } th { "Last sync" } th { "Last error" } th { span.visually-hidden { "Actions" } } } }
                        tbody {
                            @for e in items {
                                @let name = e["name"].as_str().unwrap_or_default();
                                tr {
                                    td { (name) br; span.muted.mono { (e["url"].as_str().unwrap_or_default()) } }
                                    td.optional {
                                        @let m: Vec<&str> = e["mirrors"].as_array().into_iter().flatten().filter_map(|x| x.as_str()).collect();
                                        (m.join(", "))
                                    }
                                    td { (e["behind_by_events"].as_i64().unwrap_or(0)) " events" }
                                    td { (when(e["last_sync_at"].as_i64())) }
                                    td { @if let Some(err) = e["last_error"].as_str() { span.badge.bad { "error" } " " (err) } @else { span.muted { "none" } } }
                                    td {
                                        form.inline method="post" action="/ui/admin/edges-sync" {
                                            (csrf_field(viewer))
                                            input type="hidden" name="name" value=(name);
                                            button type="submit" aria-label={ "Sync " (name) " now" } { "Sync now" }
                                        }
                                    }
                                }
                            }
                        }
                    } }
                }
            }
        },
    )
}
