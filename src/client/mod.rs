//! `gatehouse admin`: every admin API operation from a terminal or a script, as
//! Katello admins use `hammer`. Human tables by default, the API's JSON with
//! `--output json`; exit codes scripts can test (see `session::Exit`); progress bars
//! while waiting for a sync.

mod output;
mod session;
mod wait;

use clap::{Args, Subcommand};
use output::{Format, record, rows, table};
use reqwest::Method;
use serde_json::{Value, json};
pub use session::{Exit, Failure};
use session::{Outcome, Session};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
    /// table (for people) or json (the API's answer, for scripts)
    #[arg(long, short = 'o', global = true, value_enum, default_value = "table")]
    pub output: Format,
    /// The server (by default the one logged in to); with GATEHOUSE_TOKEN, required
    #[arg(long, global = true, env = "GATEHOUSE_URL")]
    pub url: Option<String>,
    /// CA certificate (PEM) of the server's certificate, besides the system's
    #[arg(long, global = true)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Log in and keep a refresh token (0600, in ~/.config/gatehouse/login.json)
    Login {
        /// The server, e.g. https://registry.example.com:5000
        url: String,
        #[arg(long, short = 'u')]
        username: String,
        /// Read the password from standard input (else it is asked for)
        #[arg(long)]
        password_stdin: bool,
    },
    /// Forget the stored login
    Logout,
    /// Who the stored login is, and their roles
    Whoami,
    /// Organisations
    #[command(subcommand)]
    Org(OrgCommand),
    /// Products of an organisation
    #[command(subcommand)]
    Product(ProductCommand),
    /// Members of an organisation and their roles
    #[command(subcommand)]
    Member(MemberCommand),
    /// Pull secrets (robot accounts) of an organisation
    #[command(subcommand)]
    PullSecret(PullSecretCommand),
    /// Repositories: list, versions, rollback, copy, remove, tag, sign, delete
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Remotes: other registries mirrored into a product
    #[command(subcommand)]
    Remote(RemoteCommand),
    /// Edge sites (smart proxies)
    #[command(subcommand)]
    Proxy(ProxyCommand),
    /// Signing keys of an organisation
    #[command(subcommand)]
    SigningKey(SigningKeyCommand),
    /// Users (global admins)
    #[command(subcommand)]
    User(UserCommand),
    /// The audit log of an organisation (or everything, for global admins)
    Audit(AuditArgs),
    /// Jobs: post-push copies, syncs, edge notifications
    #[command(subcommand)]
    Job(JobCommand),
    /// Shell completions: `gatehouse admin completions bash > /etc/bash_completion.d/gatehouse`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    List,
    /// Create an organisation (global admins)
    Create {
        label: String,
        #[arg(long)]
        name: Option<String>,
    },
    Show {
        org: String,
    },
    /// Change how pushed repositories are named (`{org}/{product}/{name}` by default)
    Update {
        org: String,
        #[arg(long)]
        naming_pattern: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProductCommand {
    List {
        org: String,
    },
    Create {
        org: String,
        label: String,
        /// Anyone may pull it, without credentials
        #[arg(long)]
        public: bool,
    },
    Update {
        org: String,
        product: String,
        #[arg(long)]
        public: Option<bool>,
        /// Keys one of which must have signed a manifest for it to be pulled (repeat;
        /// `--require-signed-by ''` lifts the requirement)
        #[arg(long)]
        require_signed_by: Option<Vec<String>>,
        /// The key pushes are signed with (`''`: none)
        #[arg(long)]
        sign_on_push: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    List {
        org: String,
    },
    Add {
        org: String,
        username: String,
        /// org_admin, pusher or viewer
        #[arg(long)]
        role: String,
        /// Only in this product
        #[arg(long)]
        product: Option<String>,
    },
    Remove {
        org: String,
        username: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        product: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SecretFormat {
    /// The API's answer: username, secret, …
    Json,
    /// A docker/podman `config.json` (`--authfile`)
    Docker,
    /// A Kubernetes `kubernetes.io/dockerconfigjson` Secret
    K8s,
}

#[derive(Debug, Subcommand)]
pub enum PullSecretCommand {
    List {
        org: String,
    },
    /// Create one; its secret is printed once
    Create {
        org: String,
        name: String,
        /// Only these products (repeat); all of the organisation's by default
        #[arg(long = "product")]
        products: Vec<String>,
        /// pull (default) or pull,push
        #[arg(long, value_delimiter = ',')]
        actions: Vec<String>,
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[arg(long, value_enum, default_value = "json")]
        format: SecretFormat,
    },
    Revoke {
        org: String,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// An organisation's repositories
    List {
        org: String,
        /// Names containing this
        #[arg(long, short)]
        query: Option<String>,
    },
    Versions {
        repo: String,
    },
    /// One version: its tags and what it added and removed
    Version {
        repo: String,
        number: i64,
    },
    /// A new version equal to version NUMBER
    Rollback {
        repo: String,
        number: i64,
    },
    /// Copy tags or manifests from another repository
    Copy {
        repo: String,
        #[arg(long)]
        from: String,
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long = "digest")]
        digests: Vec<String>,
    },
    /// Remove tags, or manifests with their tags
    Remove {
        repo: String,
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long = "digest")]
        digests: Vec<String>,
        /// Also a manifest an index of the repository lists
        #[arg(long)]
        force: bool,
    },
    Tag {
        repo: String,
        digest: String,
        tag: String,
    },
    Untag {
        repo: String,
        tag: String,
    },
    /// Each tag's signatures, checked against the organisation's keys
    Signatures {
        repo: String,
    },
    /// Sign tags or digests with one of the organisation's keys
    Sign {
        repo: String,
        #[arg(long)]
        key: String,
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long = "digest")]
        digests: Vec<String>,
        /// The registry host clients pull from (by default the server's)
        #[arg(long)]
        registry: Option<String>,
    },
    /// Delete the whole repository with its versions
    Delete {
        repo: String,
        /// Do not ask
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct RemoteFields {
    /// The other registry, https://host[:port]
    #[arg(long)]
    url: Option<String>,
    /// Its repository name
    #[arg(long)]
    upstream_name: Option<String>,
    #[arg(long)]
    include_tags: Option<Vec<String>>,
    #[arg(long)]
    exclude_tags: Option<Vec<String>>,
    /// Remove what the other registry no longer has
    #[arg(long)]
    mirror: Option<bool>,
    /// immediate or on_demand
    #[arg(long)]
    policy: Option<String>,
    #[arg(long)]
    username: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    password_stdin: bool,
    /// Only manifests with a signature
    #[arg(long)]
    signed_only: Option<bool>,
    /// Where the other registry keeps simple-signing signatures (a sigstore lookaside URL)
    #[arg(long)]
    sigstore: Option<String>,
    /// A CA certificate (PEM file) the other registry's certificate is signed by
    #[arg(long)]
    remote_ca_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Remotes of a product: ORG/PRODUCT
    List {
        product: String,
    },
    /// ORG/PRODUCT/NAME: the repository ORG/PRODUCT/NAME mirrors the remote
    Create {
        remote: String,
        #[command(flatten)]
        fields: RemoteFields,
    },
    Show {
        remote: String,
    },
    Update {
        remote: String,
        #[command(flatten)]
        fields: RemoteFields,
    },
    Delete {
        remote: String,
    },
    /// Sync now; with --wait, follow it to the end
    Sync {
        remote: String,
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProxyCommand {
    /// Each edge with how far behind it is, its last sync and error
    List,
    /// Register an edge; its credential is printed once
    Create {
        name: String,
        /// Where the edge is reached, https://host:port
        #[arg(long)]
        url: String,
        /// Organisations (acme) or products (acme/web) it mirrors (repeat)
        #[arg(long = "org", required = true)]
        orgs: Vec<String>,
        #[arg(long)]
        sync_after_push: Option<bool>,
    },
    Show {
        name: String,
    },
    Update {
        name: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long = "org")]
        orgs: Option<Vec<String>>,
        #[arg(long)]
        sync_after_push: Option<bool>,
    },
    Delete {
        name: String,
    },
    Sync {
        name: String,
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    List {
        org: String,
    },
    /// Generate a key (gpg or sigstore), or import one with --key-file
    Create {
        org: String,
        name: String,
        #[arg(long = "type")]
        kind: Option<String>,
        /// The signer identity (a GPG key's user id)
        #[arg(long)]
        identity: Option<String>,
        /// Import this private key (armored OpenPGP, PEM, or cosign's encrypted key)
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Read the key's passphrase from standard input
        #[arg(long)]
        passphrase_stdin: bool,
    },
    /// The public key, as clients' policy.json needs it
    Show {
        org: String,
        name: String,
        /// armored (GPG) or pem (sigstore)
        #[arg(long)]
        format: Option<String>,
    },
    Delete {
        org: String,
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    List,
    Create {
        username: String,
        #[arg(long)]
        global_admin: bool,
        /// Read the password from standard input (else it is asked for)
        #[arg(long)]
        password_stdin: bool,
    },
    Delete {
        username: String,
    },
    /// Set a user's password (their sessions and tokens end)
    Passwd {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// An organisation's log (all of it, for global admins, when absent)
    #[arg(long)]
    org: Option<String>,
    #[arg(long)]
    actor: Option<String>,
    #[arg(long)]
    action: Option<String>,
    /// Events whose target contains this (a repository, say)
    #[arg(long)]
    target: Option<String>,
    #[arg(long, default_value = "50")]
    limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    List {
        /// queued, running, done or failed
        #[arg(long)]
        state: Option<String>,
    },
    Show {
        id: i64,
        #[arg(long)]
        wait: bool,
    },
}

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
                let v = s
                    .call(
                        Method::POST,
                        &format!("/api/v1/orgs/{}/members", seg(&org)),
                        Some(&json!({ "username": username, "role": role, "product": product })),
                    )
                    .await?;
                let scope = product.map_or_else(|| org.clone(), |p| format!("{org}/{p}"));
                Message(v, format!("{username} is {role} of {scope}"))
            }
            MemberCommand::Remove {
                org,
                username,
                role,
                product,
            } => {
                let v = s
                    .call(
                        Method::DELETE,
                        &format!("/api/v1/orgs/{}/members", seg(&org)),
                        Some(&json!({ "username": username, "role": role, "product": product })),
                    )
                    .await?;
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
        AdminCommand::Repo(c) => repo(s, c).await?,
        AdminCommand::Remote(c) => remote(s, c, format).await?,
        AdminCommand::Proxy(c) => proxy(s, c, format).await?,
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
            JobCommand::Show { id, wait } => {
                if wait {
                    Record(wait::job(s, id, format).await?)
                } else {
                    Record(s.get(&format!("/api/v1/jobs/{id}")).await?)
                }
            }
        },
        AdminCommand::Login { .. } | AdminCommand::Logout | AdminCommand::Completions { .. } => {
            unreachable!("handled before a session is opened")
        }
    })
}

async fn repo(s: &Session, c: RepoCommand) -> Outcome<Shown> {
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

async fn remote(s: &Session, c: RemoteCommand, format: Format) -> Outcome<Shown> {
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

async fn proxy(s: &Session, c: ProxyCommand, format: Format) -> Outcome<Shown> {
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
