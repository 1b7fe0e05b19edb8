//! The content commands: repositories, remotes and edges (which wait on jobs).

use super::args::{ProxyCommand, RemoteCommand, RemoteFields, RepoCommand};
use super::output::{Format, rows};
use super::session::{Exit, Failure, Outcome, Session};
use super::{Shown, path_of, read_secret, seg, split_product, split_remote, wait};
use reqwest::Method;
use serde_json::{Value, json};

pub(super) async fn repo(s: &Session, c: RepoCommand, format: Format) -> Outcome<Shown> {
    use Shown::*;
    let base = |r: &str| format!("/api/v1/repositories/{}", path_of(r));
    let post = |r: &str, op: &str, body: Value| {
        let path = format!("{}/{op}", base(r));
        async move { s.call(Method::POST, &path, Some(&body)).await }
    };
    let version_of = |v: &Value| {
        v["version"]
            .as_i64()
            .map_or_else(|| "no change".to_owned(), |n| format!("version {n}"))
    };
    Ok(match c {
        RepoCommand::List { org, query } => {
            let q = query.map(|q| format!("?q={}", seg(&q))).unwrap_or_default();
            Rows(
                s.get(&format!("/api/v1/orgs/{}/repositories{q}", seg(&org))).await?,
                Some("repositories"),
                &[
                    "name",
                    "tags",
                    "size",
                    "latest_version=VERSION",
                    "mirrored",
                    "changed_at=CHANGED",
                ],
            )
        }
        RepoCommand::Versions { repo } => Rows(
            s.get(&format!("{}/versions", base(&repo))).await?,
            Some("versions"),
            &[
                "number=VERSION",
                "created_at=CREATED",
                "reason",
                "summary.present.tags=TAGS",
                "summary.added.manifests=+MANIFESTS",
                "summary.removed.manifests=-MANIFESTS",
            ],
        ),
        RepoCommand::Version { repo, number } => Record(s.get(&format!("{}/versions/{number}", base(&repo))).await?),
        RepoCommand::Rollback { repo, number } => {
            let v = post(&repo, "rollback", json!({ "version": number })).await?;
            let made = version_of(&v);
            Message(v, format!("{repo}: {made}, equal to version {number}"))
        }
        RepoCommand::Copy {
            repo,
            from,
            tags,
            digests,
        } => {
            let v = post(&repo, "copy", json!({ "from": from, "tags": tags, "digests": digests })).await?;
            let made = version_of(&v);
            Message(v, format!("{repo}: {made}"))
        }
        RepoCommand::Remove {
            repo,
            tags,
            digests,
            force,
        } => {
            let v = post(
                &repo,
                "remove",
                json!({ "tags": tags, "digests": digests, "force": force }),
            )
            .await?;
            let made = version_of(&v);
            Message(v, format!("{repo}: {made}"))
        }
        RepoCommand::Tag { repo, digest, tag } => {
            let v = post(&repo, "tag", json!({ "digest": digest, "tag": tag })).await?;
            let made = version_of(&v);
            Message(v, format!("{repo}:{tag} → {digest} ({made})"))
        }
        RepoCommand::Untag { repo, tag } => {
            let v = post(&repo, "untag", json!({ "tag": tag })).await?;
            let made = version_of(&v);
            Message(v, format!("{repo}: tag {tag} removed ({made})"))
        }
        RepoCommand::Signatures { repo } => {
            let v = s.get(&format!("{}/signatures", base(&repo))).await?;
            // One row per signature (a tag without any shows as unsigned).
            let mut out = Vec::new();
            for t in rows(&v, Some("tags")) {
                let sigs = rows(t, Some("signatures"));
                if sigs.is_empty() {
                    out.push(json!({ "tag": t["tag"], "digest": t["digest"], "type": "unsigned" }));
                }
                for sig in sigs {
                    out.push(
                        json!({ "tag": t["tag"], "digest": t["digest"], "type": sig["type"], "valid": sig["valid"],
                                     "key": sig["key"], "identity": sig["identity"] }),
                    );
                }
            }
            Rows(json!(out), None, &["tag", "type", "valid", "key", "identity", "digest"])
        }
        RepoCommand::Sign {
            repo,
            key,
            tags,
            digests,
            registry,
        } => {
            let mut body = json!({ "key": key, "tags": tags, "digests": digests });
            if let Some(r) = registry {
                body["registry"] = json!(r);
            }
            let v = post(&repo, "sign", body).await?;
            let made = version_of(&v);
            Message(v, format!("{repo}: signed with {key} ({made})"))
        }
        RepoCommand::Readme { repo, set: None } => {
            let v = s.get(&format!("{}/readme", base(&repo))).await?;
            let text = v["readme"]["content"].as_str().unwrap_or_default().to_owned();
            match format {
                Format::Json => Record(v),
                Format::Table => Text(if text.ends_with('\n') || text.is_empty() {
                    text
                } else {
                    text + "\n"
                }),
            }
        }
        RepoCommand::Readme { repo, set: Some(file) } => {
            let content = std::fs::read_to_string(&file)
                .map_err(|e| Failure::new(Exit::Refused, format!("{}: {e}", file.display())))?;
            let v = post(&repo, "readme", json!({ "content": content })).await?;
            Message(v, format!("{repo}: README saved"))
        }
        RepoCommand::Import { repo, file, tag } => {
            let q = tag.map(|t| format!("?tag={}", seg(&t))).unwrap_or_default();
            let v = wait::upload(s, &format!("{}/import{q}", base(&repo)), &file, format).await?;
            let made = v["import"]["version"]
                .as_i64()
                .map_or_else(|| "no change".to_owned(), |n| format!("version {n}"));
            let tags = v["import"]["tags"].as_array().map_or(0, Vec::len);
            Message(v, format!("{repo}: {tags} tags imported ({made})"))
        }
        RepoCommand::Delete { repo, yes } => {
            if !yes && !confirm(&format!("Delete {repo} with all its tags and versions? [y/N] "))? {
                return Err(Failure::new(Exit::Refused, "not deleted"));
            }
            let v = s.call(Method::DELETE, &base(&repo), None).await?;
            Message(v, format!("{repo} deleted"))
        }
    })
}

/// Ask at the terminal; without one, refuse (scripts pass --yes).
fn confirm(question: &str) -> Outcome<bool> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(Exit::Refused, "not a terminal: confirm with --yes"));
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn remote_body(f: RemoteFields, name: Option<&str>) -> Outcome<Value> {
    let mut body = json!({});
    if let Some(n) = name {
        body["name"] = json!(n);
    }
    let RemoteFields {
        url,
        upstream_name,
        include_tags,
        exclude_tags,
        mirror,
        policy,
        username,
        password_stdin,
        signed_only,
        sigstore,
        remote_ca_file,
    } = f;
    for (k, v) in [
        ("url", url.map(Value::from)),
        ("upstream_name", upstream_name.map(Value::from)),
        ("include_tags", include_tags.map(Value::from)),
        ("exclude_tags", exclude_tags.map(Value::from)),
        ("mirror", mirror.map(Value::from)),
        ("policy", policy.map(Value::from)),
        ("username", username.map(Value::from)),
        ("signed_only", signed_only.map(Value::from)),
        ("sigstore", sigstore.map(Value::from)),
    ] {
        if let Some(v) = v {
            body[k] = v;
        }
    }
    if password_stdin {
        body["password"] = json!(read_secret(true, "remote's password")?);
    }
    if let Some(f) = remote_ca_file {
        let pem =
            std::fs::read_to_string(&f).map_err(|e| Failure::new(Exit::Refused, format!("{}: {e}", f.display())))?;
        body["ca_certificate"] = json!(pem);
    }
    Ok(body)
}

pub(super) async fn remote(s: &Session, c: RemoteCommand, format: Format) -> Outcome<Shown> {
    use Shown::*;
    let one = |r: &str| -> Outcome<String> {
        let (o, p, n) = split_remote(r)?;
        Ok(format!("/api/v1/orgs/{o}/products/{p}/remotes/{n}"))
    };
    Ok(match c {
        RemoteCommand::List { product } => {
            let (o, p) = split_product(&product)?;
            Rows(
                s.get(&format!("/api/v1/orgs/{o}/products/{p}/remotes")).await?,
                Some("remotes"),
                &[
                    "name",
                    "url",
                    "upstream_name=UPSTREAM",
                    "policy",
                    "mirror",
                    "last_job=LAST JOB",
                ],
            )
        }
        RemoteCommand::Create { remote: r, fields } => {
            let (o, p, n) = split_remote(&r)?;
            let body = remote_body(fields, Some(&n))?;
            let v = s
                .call(
                    Method::POST,
                    &format!("/api/v1/orgs/{o}/products/{p}/remotes"),
                    Some(&body),
                )
                .await?;
            Message(
                v,
                format!("remote {r} created: `gatehouse admin remote sync {r} --wait` fills it"),
            )
        }
        RemoteCommand::Show { remote: r } => Record(s.get(&one(&r)?).await?),
        RemoteCommand::Update { remote: r, fields } => {
            let body = remote_body(fields, None)?;
            Record(s.call(Method::PATCH, &one(&r)?, Some(&body)).await?)
        }
        RemoteCommand::Delete { remote: r } => {
            let v = s.call(Method::DELETE, &one(&r)?, None).await?;
            Message(v, format!("remote {r} deleted"))
        }
        RemoteCommand::Sync { remote: r, wait } => {
            let v = s.call(Method::POST, &format!("{}/sync", one(&r)?), None).await?;
            sync_started(s, v, wait, format).await?
        }
    })
}

/// A sync was queued (`{"job": id}`): say so, or follow it to its end.
async fn sync_started(s: &Session, v: Value, wait: bool, format: Format) -> Outcome<Shown> {
    let id = v["job"]
        .as_i64()
        .or_else(|| v["job"]["id"].as_i64())
        .ok_or_else(|| Failure::new(Exit::Unavailable, format!("no job in the answer: {v}")))?;
    if wait {
        return Ok(Shown::Record(wait::job(s, id, format).await?));
    }
    Ok(Shown::Message(
        v,
        format!("sync queued as job {id} (`gatehouse admin job show {id} --wait` follows it)"),
    ))
}

pub(super) async fn proxy(s: &Session, c: ProxyCommand, format: Format) -> Outcome<Shown> {
    use Shown::*;
    let one = |n: &str| format!("/api/v1/smart-proxies/{}", seg(n));
    Ok(match c {
        ProxyCommand::List => Rows(
            s.get("/api/v1/smart-proxies").await?,
            Some("smart_proxies"),
            &[
                "name",
                "url",
                "mirrors",
                "behind_by_events=BEHIND (CHANGES)",
                "behind_by_seconds=BEHIND (S)",
                "last_sync_at=LAST SYNC",
                "last_error=ERROR",
            ],
        ),
        ProxyCommand::Create {
            name,
            url,
            orgs,
            sync_after_push,
        } => {
            let mut body = json!({ "name": name, "url": url, "orgs": orgs });
            if let Some(b) = sync_after_push {
                body["sync_after_push"] = json!(b);
            }
            let v = s.call(Method::POST, "/api/v1/smart-proxies", Some(&body)).await?;
            let msg = format!(
                "edge {name} registered; its credential (shown once):\n  username  {}\n  secret    {}",
                v["credential"]["username"].as_str().unwrap_or_default(),
                v["credential"]["secret"].as_str().unwrap_or_default()
            );
            Message(v, msg)
        }
        ProxyCommand::Show { name } => Record(s.get(&one(&name)).await?),
        ProxyCommand::Update {
            name,
            url,
            orgs,
            sync_after_push,
        } => {
            let mut body = json!({});
            if let Some(u) = url {
                body["url"] = json!(u);
            }
            if let Some(o) = orgs {
                body["orgs"] = json!(o);
            }
            if let Some(b) = sync_after_push {
                body["sync_after_push"] = json!(b);
            }
            Record(s.call(Method::PATCH, &one(&name), Some(&body)).await?)
        }
        ProxyCommand::Delete { name } => {
            let v = s.call(Method::DELETE, &one(&name), None).await?;
            Message(v, format!("edge {name} removed; its credential no longer works"))
        }
        ProxyCommand::Sync { name, wait } => {
            let v = s.call(Method::POST, &format!("{}/sync", one(&name)), None).await?;
            match (wait, v["job"].as_i64()) {
                (true, Some(id)) => Record(wait::edge(s, &name, id, format).await?),
                _ => sync_started(s, v, false, format).await?,
            }
        }
    })
}
