//! `gatehouse admin`, the real binary against a real server over TLS: a whole admin
//! session (login kept 0600, an organisation, a product, a user and their role, a pull
//! secret as a Kubernetes Secret, versions and a rollback, a remote synced with
//! `--wait`, edges, the audit log), JSON output that parses, errors that name the field
//! with exit codes scripts can test, `GATEHOUSE_URL` + `GATEHOUSE_TOKEN`, logout; and no
//! password or token in any output but the one-time secret.

mod common;

use common::gateway::{ADMIN_PASSWORD, TestGateway, push_image_with};
use serde_json::Value;
use std::io::Write as _;
use std::process::{Command, Stdio};

struct Cli {
    config: tempfile::TempDir,
    ca: std::path::PathBuf,
    /// Everything the CLI printed, to look for secrets at the end.
    printed: std::sync::Mutex<String>,
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Cli {
    fn new(gw: &TestGateway) -> Self {
        Self {
            config: tempfile::tempdir().unwrap(),
            ca: gw.ca_cert(),
            printed: Default::default(),
        }
    }

    /// Run `gatehouse admin ARGS` with `stdin`, extra environment, in its own config dir.
    async fn run_with(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Ran {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.arg("admin")
            .args(args)
            .env("GATEHOUSE_CONFIG_DIR", self.config.path())
            .env_remove("GATEHOUSE_URL")
            .env_remove("GATEHOUSE_TOKEN")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let stdin = stdin.map(str::to_owned);
        let out = tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().expect("run gatehouse admin");
            let mut input = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                input.write_all(s.as_bytes()).unwrap();
            }
            drop(input);
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let ran = Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let mut printed = self.printed.lock().unwrap();
        printed.push_str(&ran.stdout);
        printed.push_str(&ran.stderr);
        ran
    }

    async fn run(&self, args: &[&str]) -> Ran {
        self.run_with(args, None, &[]).await
    }

    /// Run and expect success.
    async fn ok(&self, args: &[&str]) -> Ran {
        let r = self.run(args).await;
        assert_eq!(r.code, 0, "gatehouse admin {args:?}: {}{}", r.stdout, r.stderr);
        r
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_session_from_login_to_a_waited_sync() {
    let gw = TestGateway::start_tls().await;
    let url = gw.url("").trim_end_matches('/').to_owned();
    let cli = Cli::new(&gw);
    let ca = cli.ca.to_str().unwrap().to_owned();

    // Not logged in yet: exit 3, and what to do.
    let r = cli.run(&["org", "list"]).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("gatehouse admin login"), "{}", r.stderr);

    // A wrong password is refused; the right one is kept as a refresh token, 0600.
    let login = [
        "login",
        &url,
        "--username",
        "admin",
        "--password-stdin",
        "--ca-file",
        &ca,
    ];
    let r = cli.run_with(&login, Some("wrong password\n"), &[]).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    let r = cli.run_with(&login, Some(&format!("{ADMIN_PASSWORD}\n")), &[]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let stored = cli.config.path().join("login.json");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777, 0o600);
    let kept = std::fs::read_to_string(&stored).unwrap();
    assert!(!kept.contains(ADMIN_PASSWORD), "the password is not kept");
    assert!(kept.contains("refresh_token"));

    cli.ok(&["org", "create", "acme", "--name", "ACME Corp"]).await;
    let orgs = cli.ok(&["org", "list", "-o", "json"]).await.json();
    assert_eq!(orgs[0]["label"], "acme");
    let table = cli.ok(&["org", "list"]).await.stdout;
    assert!(table.starts_with("LABEL") && table.contains("ACME Corp"), "{table}");
    cli.ok(&["product", "create", "acme", "web"]).await;
    cli.ok(&["product", "create", "acme", "base"]).await;
    cli.run_with(
        &["user", "create", "dev", "--password-stdin"],
        Some("dev-password-1234\n"),
        &[],
    )
    .await;
    let r = cli
        .ok(&["member", "add", "acme", "dev", "--role", "pusher", "--product", "web"])
        .await;
    assert_eq!(r.stdout.trim(), "dev is pusher of acme/web");
    let members = cli.ok(&["member", "list", "acme", "-o", "json"]).await.json();
    assert!(members.as_array().unwrap().iter().any(|m| m["username"] == "dev"));

    // Errors name the field, with an exit code per kind.
    let r = cli.run(&["product", "create", "acme", "Bad Name"]).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("label"), "{}", r.stderr);
    let r = cli.run(&["org", "show", "nosuch"]).await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    let r = cli.run(&["member", "add", "acme", "dev", "--role", "emperor"]).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("role"), "{}", r.stderr);

    // A pull secret for the product, as a Kubernetes Secret.
    let r = cli
        .ok(&[
            "pull-secret",
            "create",
            "acme",
            "ci",
            "--product",
            "web",
            "--format",
            "k8s",
        ])
        .await;
    assert!(r.stdout.contains("kind: Secret") && r.stdout.contains("type: kubernetes.io/dockerconfigjson"));
    let encoded = r.stdout.split(".dockerconfigjson: ").nth(1).unwrap().trim();
    use base64::Engine as _;
    let config: Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(encoded).unwrap()).unwrap();
    let (_, entry) = config["auths"].as_object().unwrap().iter().next().unwrap();
    let auth = entry["auth"].as_str().unwrap();
    let pair = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(auth).unwrap()).unwrap();
    let (ps_user, ps_secret) = pair.split_once(':').unwrap();
    let one_time_secret = ps_secret.to_owned();
    let listed = cli.ok(&["pull-secret", "list", "acme"]).await.stdout;
    assert!(listed.contains(ps_user) && !listed.contains(ps_secret), "{listed}");

    // Pushes make versions; a rollback is one more.
    let token = gw
        .token(Some(("admin", ADMIN_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    for (tag, seed) in [("1.0", 1), ("2.0", 2)] {
        assert_eq!(push_image_with(&gw, &token, "acme/web/app", tag, seed).await.0, 201);
    }
    let versions = cli.ok(&["repo", "versions", "acme/web/app", "-o", "json"]).await.json();
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    let r = cli.ok(&["repo", "rollback", "acme/web/app", "1"]).await;
    assert_eq!(r.stdout.trim(), "acme/web/app: version 3, equal to version 1");
    let table = cli.ok(&["repo", "versions", "acme/web/app"]).await.stdout;
    assert!(table.contains("rollback to version 1"), "{table}");
    // An OCI archive imported as one more version.
    let archive = cli.config.path().join("image.tar");
    let config_blob = common::config_blob("arm64");
    std::fs::write(
        &archive,
        common::oci_archive(&config_blob, &[&common::random_bytes(4096, 9)], "3.0"),
    )
    .unwrap();
    let r = cli
        .ok(&["repo", "import", "acme/web/app", archive.to_str().unwrap()])
        .await;
    assert_eq!(r.stdout.trim(), "acme/web/app: 1 tags imported (version 4)");
    let readme = cli.config.path().join("README.md");
    std::fs::write(&readme, "# app\nThe web app.\n").unwrap();
    cli.ok(&["repo", "readme", "acme/web/app", "--set", readme.to_str().unwrap()])
        .await;
    assert_eq!(
        cli.ok(&["repo", "readme", "acme/web/app"]).await.stdout,
        "# app\nThe web app.\n"
    );
    let events = cli.ok(&["job", "events", "-o", "json"]).await.json();
    assert!(events["events"].as_array().unwrap().len() >= 4, "{events}");
    let repos = cli.ok(&["repo", "list", "acme", "-o", "json"]).await.json();
    assert_eq!(repos["repositories"][0]["name"], "acme/web/app");

    // A remote mirroring it (this same server, with the pull secret) synced with --wait.
    let r = cli
        .run_with(
            &[
                "remote",
                "create",
                "acme/base/mirror",
                "--url",
                &url,
                "--upstream-name",
                "acme/web/app",
                "--username",
                ps_user,
                "--password-stdin",
                "--remote-ca-file",
                &ca,
            ],
            Some(ps_secret),
            &[],
        )
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let job = cli
        .ok(&["remote", "sync", "acme/base/mirror", "--wait", "-o", "json"])
        .await
        .json();
    assert_eq!(job["state"], "done", "{job}");
    // Tags 1.0 (the rollback's content) and 3.0 (imported), already in the store.
    assert_eq!(job["progress"]["outcome"]["tags"], 2, "{job}");
    assert_eq!(job["progress"]["outcome"]["version"], 1, "{job}");
    let remotes = cli.ok(&["remote", "list", "acme/base"]).await.stdout;
    assert!(
        remotes.contains("mirror") && remotes.contains("acme/web/app"),
        "{remotes}"
    );

    // Edges (none yet), jobs and the audit log.
    let proxies = cli.ok(&["proxy", "list", "-o", "json"]).await.json();
    assert_eq!(proxies["smart_proxies"], serde_json::json!([]));
    let audit = cli.ok(&["audit", "--org", "acme"]).await.stdout;
    assert!(
        audit.contains("create_pull_secret") && audit.contains("rollback"),
        "{audit}"
    );

    // A token from the environment instead of the stored login.
    let bearer = gw.token(Some(("admin", ADMIN_PASSWORD)), &[]).await;
    let r = cli
        .run_with(
            &["org", "list", "-o", "json", "--ca-file", &ca],
            None,
            &[("GATEHOUSE_URL", &url), ("GATEHOUSE_TOKEN", &bearer)],
        )
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()[0]["label"], "acme");

    // Completions for shells.
    let r = cli.ok(&["completions", "bash"]).await;
    assert!(r.stdout.contains("gatehouse") && r.stdout.contains("pull-secret"));

    cli.ok(&["logout"]).await;
    assert!(!stored.exists());
    assert_eq!(cli.run(&["org", "list"]).await.code, 3);

    // Nothing secret was ever printed, but the pull secret, once, at its creation.
    let printed = cli.printed.lock().unwrap().clone();
    assert!(!printed.contains(ADMIN_PASSWORD));
    assert!(!printed.contains("dev-password-1234"));
    assert!(!printed.contains(&token) && !printed.contains(&bearer));
    let refresh: Value = serde_json::from_str(&kept).unwrap();
    assert!(!printed.contains(refresh["refresh_token"].as_str().unwrap()));
    assert!(
        !printed.contains(&one_time_secret),
        "the k8s output carries it only encoded"
    );
}
