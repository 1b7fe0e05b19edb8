//! A repository's pages: images, versions, README, an image, a version, a comparison.

use super::*;
use maud::{Markup, PreEscaped, html};
use serde_json::Value;

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
    /// The caller may delete the whole repository (org admins).
    pub can_delete: bool,
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

/// Where the content comes from and the actions on the whole repository.
pub(super) fn repository_header(viewer: &Viewer<'_>, r: &Repository<'_>) -> Markup {
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
        @if r.can_delete {
            form.inline method="post" action={ "/ui/repos/" (r.public) "/delete" }
                data-confirm={ "Delete " (r.public) " with all its tags and versions? Pulls of it stop working; this cannot be undone." } {
                (csrf_field(viewer))
                button.danger #delete-repository type="submit" { "Delete repository" }
            }
        }
    }
}

pub(super) fn images(viewer: &Viewer<'_>, r: &Repository<'_>) -> Markup {
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

pub(super) fn edit_readme(viewer: &Viewer<'_>, r: &Repository<'_>) -> Markup {
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

pub(super) fn versions(viewer: &Viewer<'_>, r: &Repository<'_>) -> Markup {
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
