//! The `gatehouse admin` command line: what each command takes.

use super::output::Format;
use clap::{Args, Subcommand};
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
    /// Names served from a repository's latest or a pinned version
    #[command(subcommand)]
    Distribution(DistributionCommand),
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
    /// The README (Markdown); with --set FILE, replace it (`--set /dev/null` removes it)
    Readme {
        repo: String,
        #[arg(long)]
        set: Option<PathBuf>,
    },
    /// Import a `docker save`/`podman save` tarball or an OCI archive as one new version
    Import {
        repo: String,
        file: PathBuf,
        /// The tag for an archive whose images name none
        #[arg(long)]
        tag: Option<String>,
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
    pub(super) url: Option<String>,
    /// Its repository name
    #[arg(long)]
    pub(super) upstream_name: Option<String>,
    #[arg(long)]
    pub(super) include_tags: Option<Vec<String>>,
    #[arg(long)]
    pub(super) exclude_tags: Option<Vec<String>>,
    /// Remove what the other registry no longer has
    #[arg(long)]
    pub(super) mirror: Option<bool>,
    /// immediate or on_demand
    #[arg(long)]
    pub(super) policy: Option<String>,
    #[arg(long)]
    pub(super) username: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub(super) password_stdin: bool,
    /// Only manifests with a signature
    #[arg(long)]
    pub(super) signed_only: Option<bool>,
    /// Where the other registry keeps simple-signing signatures (a sigstore lookaside URL)
    #[arg(long)]
    pub(super) sigstore: Option<String>,
    /// A CA certificate (PEM file) the other registry's certificate is signed by
    #[arg(long)]
    pub(super) remote_ca_file: Option<PathBuf>,
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
    pub(super) org: Option<String>,
    #[arg(long)]
    pub(super) actor: Option<String>,
    #[arg(long)]
    pub(super) action: Option<String>,
    /// Events whose target contains this (a repository, say)
    #[arg(long)]
    pub(super) target: Option<String>,
    #[arg(long, default_value = "50")]
    pub(super) limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum DistributionCommand {
    Show {
        name: String,
    },
    /// Serve NAME (org/product/name) from REPOSITORY, its latest version or --version
    Set {
        name: String,
        #[arg(long)]
        repository: String,
        #[arg(long)]
        version: Option<i64>,
    },
    Delete {
        name: String,
    },
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
    /// Content-changed events (what edges are notified of), oldest first
    Events {
        #[arg(long, default_value = "0")]
        after: i64,
        #[arg(long, default_value = "100")]
        limit: u32,
    },
}
