//! The organisations pages and their tabs, jobs, and a new pull secret.

use super::*;
use maud::{Markup, html};
use serde_json::Value;

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

pub(super) fn repositories(o: &Org<'_>) -> Markup {
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

pub(super) fn products(viewer: &Viewer<'_>, o: &Org<'_>) -> Markup {
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

pub(super) fn access(viewer: &Viewer<'_>, o: &Org<'_>) -> Markup {
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

pub(super) fn remotes(viewer: &Viewer<'_>, o: &Org<'_>) -> Markup {
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

pub(super) fn audit(o: &Org<'_>) -> Markup {
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
    let yaml = made["kubernetes_secret"].as_str().unwrap_or_default();
    let k8s_name = username.replace(['_', '.'], "-");
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
                        href={ "data:application/yaml;base64," (b64(yaml)) } { "Download Kubernetes Secret" }
                }
            }
            p { a href={ "/ui/orgs/" (org) "?tab=access" } { "Back to access" } }
        },
    )
}
