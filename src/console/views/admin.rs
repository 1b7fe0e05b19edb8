//! Global administration: edge sites and users.

use super::*;
use maud::{Markup, html};
use serde_json::Value;

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
                                    td {
                                        @let (events, secs) = (e["behind_by_events"].as_i64().unwrap_or(0), e["behind_by_seconds"].as_i64().unwrap_or(0));
                                        @if events == 0 { span.badge.ok { "in sync" } }
                                        @else { (events) @if events == 1 { " change" } @else { " changes" } ", " (duration(secs)) }
                                    }
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

/// Seconds as people read a delay: "45 s", "3 min", "2 h 5 min", "3 days".
fn duration(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} days", s / 86_400),
    }
}
