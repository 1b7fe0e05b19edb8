//! `gatehouse admin`: every admin API operation from a terminal or a script, as
//! Katello admins use `hammer`. Human tables by default, the API's JSON with
//! `--output json`; exit codes scripts can test (see `session::Exit`); progress bars
//! while waiting for a sync.

mod args;
mod content;
mod output;
mod session;
mod wait;

pub use args::AdminArgs;
use args::*;
use output::{Format, record, rows, table};
use reqwest::Method;
use serde_json::{Value, json};
pub use session::{Exit, Failure};
use session::{Outcome, Session};

/// Percent-encode one path segment.
fn seg(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// `org/product/name` in a path, each part encoded.
fn path_of(name: &str) -> String {
    name.split('/').map(seg).collect::<Vec<_>>().join("/")
}

fn split_remote(remote: &str) -> Outcome<(String, String, String)> {
    let parts: Vec<&str> = remote.split('/').collect();
    match parts.as_slice() {
        [o, p, n] if !o.is_empty() && !p.is_empty() && !n.is_empty() => Ok((seg(o), seg(p), seg(n))),
        _ => Err(Failure::new(
            Exit::Refused,
            format!("{remote:?}: give ORG/PRODUCT/NAME"),
        )),
    }
}

fn split_product(product: &str) -> Outcome<(String, String)> {
    match product.split_once('/') {
        Some((o, p)) if !o.is_empty() && !p.is_empty() && !p.contains('/') => Ok((seg(o), seg(p))),
        _ => Err(Failure::new(Exit::Refused, format!("{product:?}: give ORG/PRODUCT"))),
    }
}

/// A secret from standard input (one line, or all of it), or asked for at a terminal.
fn read_secret(from_stdin: bool, prompt: &str) -> Outcome<String> {
    let read = if from_stdin {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map(|_| s.trim_end_matches(['\n', '\r']).to_owned())
    } else {
        rpassword::prompt_password(prompt)
    };
    let secret = read.map_err(|e| Failure::new(Exit::Refused, format!("reading the {prompt}: {e}")))?;
    if secret.is_empty() {
        return Err(Failure::new(Exit::Refused, "an empty password"));
    }
    Ok(secret)
}

/// What a command prints: a table of rows, one record, a message, or raw text.
enum Shown {
    Rows(Value, Option<&'static str>, &'static [&'static str]),
    Record(Value),
    Message(Value, String),
    Text(String),
}

fn print(shown: Shown, format: Format) {
    let text = match (shown, format) {
        (Shown::Text(t), _) => t,
        (Shown::Rows(v, _, _) | Shown::Record(v) | Shown::Message(v, _), Format::Json) => {
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
        }
        (Shown::Rows(v, key, cols), Format::Table) => table(rows(&v, key), cols),
        (Shown::Record(v), Format::Table) => record(&v),
        (Shown::Message(_, m), Format::Table) => m + "\n",
    };
    print!("{text}");
}

/// Run `gatehouse admin …`.
pub async fn run(args: AdminArgs) -> Outcome<()> {
    let format = args.output;
    let ca = args.ca_file.as_deref();
    let shown = match args.command {
        AdminCommand::Completions { shell } => {
            let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "gatehouse", &mut std::io::stdout());
            return Ok(());
        }
        AdminCommand::Login {
            url,
            username,
            password_stdin,
        } => {
            let url = url.trim_end_matches('/').to_owned();
            let password = read_secret(password_stdin, "password")?;
            let http = session::http_client(ca)?;
            let (service, refresh_token) = session::login(&http, &url, &username, &password).await?;
            let path = session::save_login(&session::StoredLogin {
                url: url.clone(),
                username: username.clone(),
                service,
                refresh_token,
                ca_file: args.ca_file.clone(),
            })?;
            Shown::Message(
                json!({ "url": url, "username": username, "stored": path }),
                format!("logged in to {url} as {username} (kept in {})", path.display()),
            )
        }
        AdminCommand::Logout => {
            let had = session::forget_login()?;
            Shown::Message(
                json!({ "logged_out": had }),
                if had { "logged out" } else { "not logged in" }.to_owned(),
            )
        }
        command => {
            let s = Session::open(args.url.as_deref(), ca).await?;
            dispatch(&s, command, format).await?
        }
    };
    print(shown, format);
    Ok(())
}

async fn dispatch(s: &Session, command: AdminCommand, format: Format) -> Outcome<Shown> {
    use Shown::*;
    Ok(match command {
        AdminCommand::Whoami => Record(s.get("/api/v1/whoami").await?),
        AdminCommand::Org(c) => match c {
            OrgCommand::List => Rows(
                s.get("/api/v1/orgs").await?,
                None,
                &["label", "name", "naming_pattern", "created_at=CREATED"],
            ),
            OrgCommand::Create { label, name } => {
                let body = json!({ "label": label, "name": name.unwrap_or_else(|| label.clone()) });
                let v = s.call(Method::POST, "/api/v1/orgs", Some(&body)).await?;
                Message(v, format!("organisation {label} created"))
            }
            OrgCommand::Show { org } => Record(s.get(&format!("/api/v1/orgs/{}", seg(&org))).await?),
            OrgCommand::Update { org, naming_pattern } => Record(
                s.call(
                    Method::PATCH,
                    &format!("/api/v1/orgs/{}", seg(&org)),
                    Some(&json!({ "naming_pattern": naming_pattern })),
                )
                .await?,
            ),
        },
        AdminCommand::Product(c) => match c {
            ProductCommand::List { org } => Rows(
                s.get(&format!("/api/v1/orgs/{}/products", seg(&org))).await?,
                None,
                &[
                    "label",
                    "public",
                    "require_signed_by",
                    "sign_on_push",
                    "created_at=CREATED",
                ],
            ),
            ProductCommand::Create { org, label, public } => {
                let v = s
                    .call(
                        Method::POST,
                        &format!("/api/v1/orgs/{}/products", seg(&org)),
                        Some(&json!({ "label": label, "public": public })),
                    )
                    .await?;
                Message(v, format!("product {org}/{label} created"))
            }
            ProductCommand::Update {
                org,
                product,
                public,
                require_signed_by,
                sign_on_push,
            } => {
                let mut body = json!({});
                if let Some(p) = public {
                    body["public"] = json!(p);
                }
                if let Some(keys) = require_signed_by {
                    let keys: Vec<String> = keys.into_iter().filter(|k| !k.is_empty()).collect();
                    body["require_signed_by"] = json!(keys);
                }
                if let Some(k) = sign_on_push {
                    body["sign_on_push"] = json!(k);
                }
                Record(
                    s.call(
                        Method::PATCH,
                        &format!("/api/v1/orgs/{}/products/{}", seg(&org), seg(&product)),
                        Some(&body),
                    )
                    .await?,
                )
            }
        },
        AdminCommand::Member(c) => match c {
            MemberCommand::List { org } => Rows(
                s.get(&format!("/api/v1/orgs/{}/members", seg(&org))).await?,
                None,
                &["username", "role", "product", "created_at=SINCE"],
            ),
            MemberCommand::Add {
                org,
                username,
                role,
                product,
            } => {
                let v = binding(s, Method::POST, &org, &username, &role, product.as_deref()).await?;
                let scope = product.map_or_else(|| org.clone(), |p| format!("{org}/{p}"));
                Message(v, format!("{username} is {role} of {scope}"))
            }
            MemberCommand::Remove {
                org,
                username,
                role,
                product,
            } => {
                let v = binding(s, Method::DELETE, &org, &username, &role, product.as_deref()).await?;
                Message(v, format!("{username} is no longer {role}"))
            }
        },
        AdminCommand::PullSecret(c) => match c {
            PullSecretCommand::List { org } => Rows(
                s.get(&format!("/api/v1/orgs/{}/pull-secrets", seg(&org))).await?,
                None,
                &[
                    "name",
                    "username",
                    "products",
                    "can_push=PUSH",
                    "expires_at=EXPIRES",
                    "last_used_at=LAST USED",
                ],
            ),
            PullSecretCommand::Create {
                org,
                name,
                products,
                actions,
                expires_in_days,
                format: secret_format,
            } => {
                let mut body = json!({ "name": name });
                if !products.is_empty() {
                    body["products"] = json!(products);
                }
                if !actions.is_empty() {
                    body["actions"] = json!(actions);
                }
                if let Some(d) = expires_in_days {
                    body["expires_in_days"] = json!(d);
                }
                let v = s
                    .call(
                        Method::POST,
                        &format!("/api/v1/orgs/{}/pull-secrets", seg(&org)),
                        Some(&body),
                    )
                    .await?;
                match secret_format {
                    SecretFormat::Docker => {
                        Text(serde_json::to_string_pretty(&v["dockerconfigjson"]).unwrap_or_default() + "\n")
                    }
                    SecretFormat::K8s => Text(v["kubernetes_secret"].as_str().unwrap_or_default().to_owned()),
                    SecretFormat::Json if format == Format::Json => Record(v),
                    SecretFormat::Json => Text(format!(
                        "username  {}\nsecret    {}\n(shown once: keep it now)\n",
                        v["username"].as_str().unwrap_or_default(),
                        v["secret"].as_str().unwrap_or_default()
                    )),
                }
            }
            PullSecretCommand::Revoke { org, name } => {
                let v = s
                    .call(
                        Method::DELETE,
                        &format!("/api/v1/orgs/{}/pull-secrets/{}", seg(&org), seg(&name)),
                        None,
                    )
                    .await?;
                Message(v, format!("pull secret {name} revoked"))
            }
        },
        AdminCommand::Repo(c) => content::repo(s, c, format).await?,
        AdminCommand::Remote(c) => content::remote(s, c, format).await?,
        AdminCommand::Proxy(c) => content::proxy(s, c, format).await?,
        AdminCommand::SigningKey(c) => match c {
            SigningKeyCommand::List { org } => Rows(
                s.get(&format!("/api/v1/orgs/{}/signing-keys", seg(&org))).await?,
                Some("signing_keys"),
                &[
                    "name",
                    "type",
                    "fingerprint",
                    "identity",
                    "can_sign",
                    "created_at=CREATED",
                ],
            ),
            SigningKeyCommand::Create {
                org,
                name,
                kind,
                identity,
                key_file,
                passphrase_stdin,
            } => {
                let mut body = json!({ "name": name });
                if let Some(k) = kind {
                    body["type"] = json!(k);
                }
                if let Some(i) = identity {
                    body["identity"] = json!(i);
                }
                if let Some(f) = key_file {
                    let key = std::fs::read_to_string(&f)
                        .map_err(|e| Failure::new(Exit::Refused, format!("{}: {e}", f.display())))?;
                    body["key"] = json!(key);
                    if passphrase_stdin {
                        body["passphrase"] = json!(read_secret(true, "passphrase")?);
                    }
                }
                let v = s
                    .call(
                        Method::POST,
                        &format!("/api/v1/orgs/{}/signing-keys", seg(&org)),
                        Some(&body),
                    )
                    .await?;
                let fp = v["fingerprint"].as_str().unwrap_or_default().to_owned();
                Message(v, format!("signing key {name} ({fp})"))
            }
            SigningKeyCommand::Show {
                org,
                name,
                format: key_format,
            } => {
                let q = key_format.map(|f| format!("?format={}", seg(&f))).unwrap_or_default();
                let path = format!("/api/v1/orgs/{}/signing-keys/{}{q}", seg(&org), seg(&name));
                if q.is_empty() {
                    Record(s.get(&path).await?)
                } else {
                    Text(s.text(&path).await?)
                }
            }
            SigningKeyCommand::Delete { org, name } => {
                let v = s
                    .call(
                        Method::DELETE,
                        &format!("/api/v1/orgs/{}/signing-keys/{}", seg(&org), seg(&name)),
                        None,
                    )
                    .await?;
                Message(v, format!("signing key {name} deleted"))
            }
        },
        AdminCommand::User(c) => match c {
            UserCommand::List => Rows(
                s.get("/api/v1/users").await?,
                None,
                &["username", "global_admin=GLOBAL ADMIN", "created_at=CREATED"],
            ),
            UserCommand::Create {
                username,
                global_admin,
                password_stdin,
            } => {
                let password = read_secret(password_stdin, "new user's password")?;
                let v = s
                    .call(
                        Method::POST,
                        "/api/v1/users",
                        Some(&json!({ "username": username, "password": password, "global_admin": global_admin })),
                    )
                    .await?;
                Message(v, format!("user {username} created"))
            }
            UserCommand::Delete { username } => {
                let v = s
                    .call(Method::DELETE, &format!("/api/v1/users/{}", seg(&username)), None)
                    .await?;
                Message(v, format!("user {username} deleted"))
            }
            UserCommand::Passwd {
                username,
                password_stdin,
            } => {
                let password = read_secret(password_stdin, "new password")?;
                let v = s
                    .call(
                        Method::PUT,
                        &format!("/api/v1/users/{}/password", seg(&username)),
                        Some(&json!({ "password": password })),
                    )
                    .await?;
                Message(v, format!("password of {username} changed"))
            }
        },
        AdminCommand::Audit(a) => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("limit", &a.limit.to_string());
            for (k, v) in [("actor", &a.actor), ("action", &a.action), ("target", &a.target)] {
                if let Some(v) = v {
                    q.append_pair(k, v);
                }
            }
            let path = match &a.org {
                Some(o) => format!("/api/v1/orgs/{}/audit?{}", seg(o), q.finish()),
                None => format!("/api/v1/audit?{}", q.finish()),
            };
            Rows(
                s.get(&path).await?,
                Some("events"),
                &["at=AT", "actor", "action", "target", "outcome", "remote"],
            )
        }
        AdminCommand::Job(c) => match c {
            JobCommand::List { state } => {
                let q = state.map(|st| format!("?state={}", seg(&st))).unwrap_or_default();
                Rows(
                    s.get(&format!("/api/v1/jobs{q}")).await?,
                    Some("jobs"),
                    &[
                        "id",
                        "kind",
                        "state",
                        "attempts",
                        "last_error=ERROR",
                        "updated_at=UPDATED",
                    ],
                )
            }
            JobCommand::Events { after, limit } => Rows(
                s.get(&format!("/api/v1/events?after={after}&limit={limit}")).await?,
                Some("events"),
                &["id", "repository", "version", "created_at=AT"],
            ),
            JobCommand::Show { id, wait } => {
                if wait {
                    Record(wait::job(s, id, format).await?)
                } else {
                    Record(s.get(&format!("/api/v1/jobs/{id}")).await?)
                }
            }
        },
        AdminCommand::Distribution(c) => {
            let one = |n: &str| format!("/api/v1/distributions/{}", path_of(n));
            match c {
                DistributionCommand::Show { name } => Record(s.get(&one(&name)).await?),
                DistributionCommand::Set {
                    name,
                    repository,
                    version,
                } => Record(
                    s.call(
                        Method::PUT,
                        &one(&name),
                        Some(&json!({ "repository": repository, "version": version })),
                    )
                    .await?,
                ),
                DistributionCommand::Delete { name } => {
                    let v = s.call(Method::DELETE, &one(&name), None).await?;
                    Message(v, format!("{name} is no longer served"))
                }
            }
        }
        AdminCommand::Login { .. } | AdminCommand::Logout | AdminCommand::Completions { .. } => {
            unreachable!("handled before a session is opened")
        }
    })
}

/// Add (POST) or remove (DELETE) a role binding.
async fn binding(s: &Session, method: Method, org: &str, username: &str, role: &str, product: Option<&str>) -> Outcome {
    s.call(
        method,
        &format!("/api/v1/orgs/{}/members", seg(org)),
        Some(&json!({ "username": username, "role": role, "product": product })),
    )
    .await
}
