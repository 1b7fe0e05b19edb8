//! Passwords, pull-secret secrets and tokens never appear in the server's output, even
//! at debug level, whatever the client sends (the real binary, all of its output).

mod common;

use common::http;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_appear_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let admin_password = "Adm1n-p4ssword-from-env";
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--insecure-http", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .envs(common::backend_env(&dir.path().join("data")))
        .env("GATEHOUSE_ADMIN_PASSWORD", admin_password)
        .env("GATEHOUSE_LOG", "debug")
        .env("GATEHOUSE_POLICY_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let mut readers = Vec::new();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let (output, tx) = (output.clone(), tx.clone());
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listen=").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
                }
                let mut o = output.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        }));
    }
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("server address");
    let url = |p: &str| format!("http://{addr}{p}");
    let c = http();
    let admin = ("admin", admin_password);
    let user_password = "us3r-p4ssword-xyz";
    let wrong_password = "wr0ng-p4ssword-abc";

    let api = |method: reqwest::Method, path: &str, body: Value| {
        c.request(method, url(path))
            .basic_auth(admin.0, Some(admin.1))
            .json(&body)
            .send()
    };
    assert!(
        api(reqwest::Method::POST, "/api/v1/orgs", json!({"label": "acme"}))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let r = api(
        reqwest::Method::POST,
        "/api/v1/users",
        json!({"username": "dev", "password": user_password}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let r = api(
        reqwest::Method::POST,
        "/api/v1/orgs/acme/members",
        json!({"username": "dev", "role": "pusher"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let ps: Value = api(
        reqwest::Method::POST,
        "/api/v1/orgs/acme/pull-secrets",
        json!({"name": "ci"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let secret = ps["secret"].as_str().unwrap().to_owned();
    let secret_user = ps["username"].as_str().unwrap().to_owned();

    let mut tokens = Vec::new();
    for (user, pass) in [("dev", user_password), (secret_user.as_str(), secret.as_str())] {
        let v: Value = c
            .get(url(
                "/v2/token?service=gatehouse&scope=repository:acme/web/app:pull,push&offline_token=true",
            ))
            .basic_auth(user, Some(pass))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push(v["token"].as_str().unwrap().to_owned());
        tokens.push(v["refresh_token"].as_str().unwrap().to_owned());
    }
    // The OAuth2 form with the password in the body, and a failed login.
    let r = c
        .post(url("/v2/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "dev"),
            ("password", user_password),
            ("service", "gatehouse"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(url("/v2/token"))
        .basic_auth("dev", Some(wrong_password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Tokens used on the registry, including one in a query string by mistake.
    for t in &tokens[..1] {
        let r = c
            .get(url(&format!("/v2/acme/web/app/tags/list?token={t}")))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    let _ = child.kill();
    let _ = child.wait();
    // The readers end when the pipes close: everything written is collected.
    for r in readers {
        r.join().unwrap();
    }
    let out = output.lock().unwrap().clone();
    assert!(out.contains("/v2/token"), "the log has request lines: {out}");
    for (what, s) in [
        ("admin password", admin_password),
        ("user password", user_password),
        ("wrong password", wrong_password),
        ("pull secret", secret.as_str()),
    ]
    .into_iter()
    .chain(tokens.iter().map(|t| ("token", t.as_str())))
    {
        assert!(!out.contains(s), "{what} appears in the server output");
    }
}
