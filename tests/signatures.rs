//! Simple-signing (GPG) signatures through the signature extension API, with the real
//! clients and real keys: skopeo signs on push (`--sign-by`, a key made by gpg in a
//! temporary GNUPGHOME), podman verifies on pull against a policy.json `signedBy` the
//! key (files in temp dirs passed by flags, never /etc). Signatures are content: they
//! make a version, leave with their manifest and come back with a rollback.

mod common;

use common::clients::Podman;
use common::gateway::{ADMIN_PASSWORD, TestGateway, USER_PASSWORD};
use common::{OCI_MANIFEST, http};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A GPG home with one signing key (RSA, no passphrase), made by Debian's gpg.
struct Gpg {
    home: tempfile::TempDir,
    email: String,
}

impl Gpg {
    fn new(email: &str) -> Self {
        let found = Command::new("gpg")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "gpg is required (apt-get install -y gpg; the README test command does)"
        );
        // Short path: gpg-agent's socket path must fit a sockaddr_un.
        let home = tempfile::Builder::new().prefix("gh-gpg").tempdir_in("/tmp").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let gpg = Self {
            home,
            email: email.to_owned(),
        };
        let out = gpg.run(&[
            "--batch",
            "--passphrase",
            "",
            "--quick-generate-key",
            &format!("Test Signer <{email}>"),
            "rsa2048",
            "sign",
            "never",
        ]);
        assert!(out.status.success(), "gpg key generation: {}", text(&out));
        gpg
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args(args)
            .output()
            .expect("run gpg")
    }

    /// The armored public key, written to `dir`; its path.
    fn export(&self, dir: &Path) -> PathBuf {
        let out = self.run(&["--armor", "--export", &self.email]);
        assert!(out.status.success(), "{}", text(&out));
        let path = dir.join(format!("{}.gpg", self.email));
        std::fs::write(&path, out.stdout).unwrap();
        path
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

/// skopeo with a private registries.d and policy, signing with `gpg`'s key.
fn skopeo_copy(gpg: Option<&Gpg>, config: &Path, cert_dir: &Path, creds: &str, src: &str, dst: &str) -> Output {
    let mut cmd = Command::new("skopeo");
    cmd.arg("--registries.d")
        .arg(config.join("registries.d"))
        .arg("--policy")
        .arg(config.join("insecure-policy.json"))
        .arg("copy")
        .arg("--dest-cert-dir")
        .arg(cert_dir)
        .args(["--dest-creds", creds]);
    if let Some(g) = gpg {
        cmd.env("GNUPGHOME", g.home.path()).args(["--sign-by", &g.email]);
    }
    cmd.args([src, dst]).output().expect("run skopeo")
}

/// An image in an OCI layout: a config and one layer (a tar with a file unique to `seed`).
fn layout(dir: &Path, seed: u64) {
    let config = common::config_blob("amd64");
    let mut layer = tar::Builder::new(Vec::new());
    let data = common::random_bytes(2048, seed);
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    layer.append_data(&mut header, "etc/marker", data.as_slice()).unwrap();
    let layer = layer.into_inner().unwrap();
    let manifest = common::image_manifest(&config, &[&layer], json!({}));
    common::write_oci_layout(dir, &[&config, &layer], &[(&manifest, OCI_MANIFEST, "1.0")]);
}

struct Site {
    gw: TestGateway,
    dir: tempfile::TempDir,
    cert_dir: PathBuf,
    config: PathBuf,
}

async fn site() -> Site {
    let gw = TestGateway::start_tls().await;
    gw.create_org("acme").await;
    gw.create_product("acme", "web", false).await;
    gw.create_member("dev", "acme", "pusher", Some("web")).await;
    gw.create_member("watcher", "acme", "viewer", Some("web")).await;
    let dir = tempfile::tempdir().unwrap();
    let cert_dir = dir.path().join("certs");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(gw.ca_cert(), cert_dir.join("ca.crt")).unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("registries.d")).unwrap();
    std::fs::write(
        config.join("insecure-policy.json"),
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    Site {
        gw,
        dir,
        cert_dir,
        config,
    }
}

impl Site {
    /// Push the image of `seed` as acme/web/app:`tag`, signed by `gpg` if given.
    fn push(&self, gpg: Option<&Gpg>, seed: u64, tag: &str) {
        let src = self.dir.path().join(format!("layout-{tag}"));
        layout(&src, seed);
        let out = skopeo_copy(
            gpg,
            &self.config,
            &self.cert_dir,
            &format!("dev:{USER_PASSWORD}"),
            &format!("oci:{}:1.0", src.display()),
            &format!("docker://{}/acme/web/app:{tag}", self.gw.host()),
        );
        assert!(out.status.success(), "skopeo copy --sign-by: {}", text(&out));
    }

    /// A policy.json that requires signatures by `keys` for acme/web.
    fn policy(&self, name: &str, keys: &[&Path]) -> PathBuf {
        let reqs: Vec<Value> = keys
            .iter()
            .map(|k| json!({"type": "signedBy", "keyType": "GPGKeys", "keyPath": k}))
            .collect();
        let policy = json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {format!("{}/acme/web", self.gw.host()): reqs}}
        });
        let path = self.config.join(name);
        std::fs::write(&path, policy.to_string()).unwrap();
        path
    }

    fn pull(&self, policy: &Path, tag: &str) -> Output {
        let p = Podman::new();
        let cd = self.cert_dir.to_str().unwrap();
        let image = format!("{}/acme/web/app:{tag}", self.gw.host());
        p.run(&[
            "login",
            "--cert-dir",
            cd,
            "-u",
            "watcher",
            "-p",
            USER_PASSWORD,
            &self.gw.host(),
        ]);
        p.try_run(&[
            "pull",
            "--cert-dir",
            cd,
            "--signature-policy",
            policy.to_str().unwrap(),
            &image,
        ])
    }

    async fn digest(&self, tag: &str) -> String {
        let token = self
            .gw
            .token(Some(("watcher", USER_PASSWORD)), &["repository:acme/web/app:pull"])
            .await;
        let r = self
            .gw
            .client()
            .head(self.gw.url(&format!("/v2/acme/web/app/manifests/{tag}")))
            .header("accept", OCI_MANIFEST)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{tag}");
        r.headers()["docker-content-digest"].to_str().unwrap().to_owned()
    }

    async fn signatures(&self, digest: &str) -> Vec<Value> {
        let token = self
            .gw
            .token(Some(("watcher", USER_PASSWORD)), &["repository:acme/web/app:pull"])
            .await;
        let r = self
            .gw
            .client()
            .get(self.gw.url(&format!("/extensions/v2/acme/web/app/signatures/{digest}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["signatures"].as_array().unwrap().clone()
    }

    async fn versions(&self) -> Vec<Value> {
        let v = self
            .gw
            .admin("GET", "/api/v1/repositories/acme/web/app/versions", json!(null))
            .await;
        v["versions"].as_array().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_signs_on_push_and_podman_verifies_on_pull() {
    let site = site().await;
    let dev = Gpg::new("dev@acme.example");
    let stranger = Gpg::new("stranger@elsewhere.example");
    let keys = site.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let dev_key = dev.export(&keys);
    let policy = site.policy("policy.json", &[&dev_key]);

    // Signed by dev on push; podman, requiring dev's signature, pulls it.
    tokio::task::block_in_place(|| site.push(Some(&dev), 1, "1.0"));
    let digest = site.digest("1.0").await;
    let sigs = site.signatures(&digest).await;
    assert_eq!(sigs.len(), 1, "{sigs:?}");
    assert_eq!(sigs[0]["type"], "atomic");
    assert_eq!(sigs[0]["schemaVersion"], 2);
    assert!(sigs[0]["name"].as_str().unwrap().starts_with(&format!("{digest}@")));
    let out = tokio::task::block_in_place(|| site.pull(&policy, "1.0"));
    assert!(
        out.status.success(),
        "a pull signed by the required key: {}",
        text(&out)
    );

    // Unsigned, or signed by another key: refused by the client's policy.
    tokio::task::block_in_place(|| site.push(None, 2, "2.0"));
    let out = tokio::task::block_in_place(|| site.pull(&policy, "2.0"));
    assert!(!out.status.success(), "an unsigned image is refused");
    assert!(text(&out).contains("signature"), "{}", text(&out));
    tokio::task::block_in_place(|| site.push(Some(&stranger), 3, "3.0"));
    let out = tokio::task::block_in_place(|| site.pull(&policy, "3.0"));
    assert!(!out.status.success(), "an image signed by another key is refused");

    // A tampered signature (valid base64, not a valid signature): refused too.
    let d4 = {
        tokio::task::block_in_place(|| site.push(None, 4, "4.0"));
        site.digest("4.0").await
    };
    let push_token = site
        .gw
        .token(Some(("dev", USER_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    let mut tampered = base64_decode(sigs[0]["content"].as_str().unwrap());
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0xff;
    let r = site
        .gw
        .client()
        .put(site.gw.url(&format!("/extensions/v2/acme/web/app/signatures/{d4}")))
        .bearer_auth(&push_token)
        .json(
            &json!({"schemaVersion": 2, "type": "atomic", "name": format!("{d4}@{}", "0".repeat(32)),
                      "content": base64_encode(&tampered)}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let out = tokio::task::block_in_place(|| site.pull(&policy, "4.0"));
    assert!(!out.status.success(), "a tampered signature is refused");

    // Signatures are content: signing made a version that counts it.
    let versions = site.versions().await;
    let signed = versions
        .iter()
        .find(|v| v["reason"] == format!("sign {digest}"))
        .unwrap_or_else(|| panic!("no version for the signature: {versions:?}"));
    assert_eq!(signed["summary"]["added"]["signatures"], 1, "{signed}");
    let latest = &versions[0];
    assert_eq!(latest["summary"]["present"]["signatures"], 3, "{latest}");

    // Rolled back to before the signature, it is gone; forward again, it is back.
    let before = signed["number"].as_i64().unwrap() - 1;
    let after = signed["number"].as_i64().unwrap();
    for (version, expected) in [(before, 0), (after, 1)] {
        let (s, v) = site
            .gw
            .api(
                "POST",
                "/api/v1/repositories/acme/web/app/rollback",
                ("admin", ADMIN_PASSWORD),
                Some(json!({"version": version})),
            )
            .await;
        assert!(s.is_success(), "{v}");
        assert_eq!(
            site.signatures(&digest).await.len(),
            expected,
            "after rollback to {version}"
        );
    }
    let out = tokio::task::block_in_place(|| site.pull(&policy, "1.0"));
    assert!(
        out.status.success(),
        "verified again after the rollback: {}",
        text(&out)
    );

    // A copy into another repository carries the signatures.
    let (s, v) = site
        .gw
        .api(
            "POST",
            "/api/v1/repositories/acme/web/copied/copy",
            ("admin", ADMIN_PASSWORD),
            Some(json!({"from": "acme/web/app", "tags": ["1.0"]})),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let token = site
        .gw
        .token(Some(("watcher", USER_PASSWORD)), &["repository:acme/web/copied:pull"])
        .await;
    let copied: Value = site
        .gw
        .client()
        .get(
            site.gw
                .url(&format!("/extensions/v2/acme/web/copied/signatures/{digest}")),
        )
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(copied["signatures"].as_array().map(Vec::len), Some(1), "{copied}");

    // Removing the manifest removes its signatures.
    let del = site
        .gw
        .token(
            Some(("admin", ADMIN_PASSWORD)),
            &["repository:acme/web/app:pull,delete"],
        )
        .await;
    let r = site
        .gw
        .client()
        .delete(site.gw.url(&format!("/v2/acme/web/app/manifests/{digest}")))
        .bearer_auth(&del)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(site.signatures(&digest).await.is_empty());
}

#[tokio::test]
async fn the_extension_api_answers_as_clients_expect() {
    let gw = TestGateway::start().await;
    gw.create_org("acme").await;
    gw.create_member("dev", "acme", "pusher", None).await;
    gw.create_member("watcher", "acme", "viewer", None).await;
    let c = http();

    // The header is on the /v2/ answer clients ping, the 401 included.
    let r = c.get(gw.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-registry-supports-signatures"], "1");

    let push = gw
        .token(Some(("dev", USER_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    let (status, manifest) = common::gateway::push_image_with(&gw, &push, "acme/web/app", "1.0", 9).await;
    assert_eq!(status, 201);
    let digest = common::digest(&manifest);
    let url = gw.url(&format!("/extensions/v2/acme/web/app/signatures/{digest}"));

    // Without a token: the registry's challenge, for the pull scope.
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("repository:acme/web/app:pull"),
        "{:?}",
        r.headers()
    );

    // None yet: an empty list, not a 404.
    let view = gw
        .token(Some(("watcher", USER_PASSWORD)), &["repository:acme/web/app:pull"])
        .await;
    let r = c.get(&url).bearer_auth(&view).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"signatures": []}));
    let other = common::digest(b"no such manifest");
    let r = c
        .get(gw.url(&format!("/extensions/v2/acme/web/app/signatures/{other}")))
        .bearer_auth(&view)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"signatures": []}));

    let sig = |name: String, content: &[u8]| json!({"schemaVersion": 2, "type": "atomic", "name": name, "content": base64_encode(content)});
    let good = sig(format!("{digest}@{}", "a1".repeat(16)), b"signature bytes");

    // A viewer cannot write.
    let r = c.put(&url).bearer_auth(&view).json(&good).send().await.unwrap();
    assert_eq!(r.status(), 401, "pull scope only: the client is challenged for push");

    // Bad bodies say which field is wrong, and store nothing.
    for (body, field) in [
        (sig(format!("{other}@{}", "a1".repeat(16)), b"x"), "name"),
        (sig(format!("{digest}@short"), b"x"), "name"),
        (
            json!({"schemaVersion": 2, "type": "atomic", "name": format!("{digest}@{}", "a1".repeat(16)), "content": "%%%"}),
            "content",
        ),
        (
            json!({"schemaVersion": 2, "type": "cosign", "name": format!("{digest}@{}", "a1".repeat(16)), "content": "eA=="}),
            "type",
        ),
    ] {
        let r = c.put(&url).bearer_auth(&push).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["errors"][0]["code"], "INVALID_REQUEST", "{e}");
        assert_eq!(e["errors"][0]["detail"]["field"], field, "{e}");
    }
    let r = c.put(&url).bearer_auth(&push).body("not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .put(gw.url(&format!("/extensions/v2/acme/web/app/signatures/{other}")))
        .bearer_auth(&push)
        .json(&sig(format!("{other}@{}", "a1".repeat(16)), b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "a signature of a manifest that is not there");
    assert_eq!(common::error_code(r).await, "MANIFEST_UNKNOWN");

    // One per PUT; the same one twice is kept once.
    for _ in 0..2 {
        let r = c.put(&url).bearer_auth(&push).json(&good).send().await.unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = c.get(&url).bearer_auth(&view).send().await.unwrap();
    assert_eq!(r.headers()["x-registry-supports-signatures"], "1");
    let list: Value = r.json().await.unwrap();
    assert_eq!(list, json!({"signatures": [good]}));

    // Audited as a signing.
    let audit = gw.admin("GET", "/api/v1/audit", json!(null)).await;
    let events = audit["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "sign" && e["target"] == format!("acme/web/app@{digest}") && e["actor"] == "dev"),
        "{audit}"
    );
}

/// `POST /api/v1/repositories/acme/web/app/sign` as `who`.
async fn sign(gw: &TestGateway, who: (&str, &str), body: Value) -> (reqwest::StatusCode, Value) {
    gw.api("POST", "/api/v1/repositories/acme/web/app/sign", who, Some(body))
        .await
}

/// `POST /api/v1/orgs/{org}/signing-keys` as `who`.
async fn new_key(gw: &TestGateway, org: &str, who: (&str, &str), body: Value) -> (reqwest::StatusCode, Value) {
    gw.api("POST", &format!("/api/v1/orgs/{org}/signing-keys"), who, Some(body))
        .await
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// A remote on another gatehouse brings its signatures (through the extension API),
/// a signature added upstream later arrives with the next sync as a new version, and
/// a sync with nothing new records nothing.
#[tokio::test]
async fn a_remote_on_another_gatehouse_syncs_its_signatures() {
    let upstream = TestGateway::start().await;
    upstream.create_org("vendor").await;
    let push = upstream
        .token(
            Some(("admin", ADMIN_PASSWORD)),
            &["repository:vendor/tools/cli:pull,push"],
        )
        .await;
    let (status, manifest) = common::gateway::push_image_with(&upstream, &push, "vendor/tools/cli", "1.0", 5).await;
    assert_eq!(status, 201);
    let digest = common::digest(&manifest);
    let put = async |suffix: &str, content: &[u8]| {
        let r = http()
            .put(upstream.url(&format!("/extensions/v2/vendor/tools/cli/signatures/{digest}")))
            .bearer_auth(&push)
            .json(
                &json!({"schemaVersion": 2, "type": "atomic", "name": format!("{digest}@{suffix}"),
                          "content": base64_encode(content)}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    };
    put(&"1".repeat(32), b"first signature").await;
    let (user, secret, _) = upstream
        .create_pull_secret("vendor", json!({"name": "mirror", "products": ["tools"]}))
        .await;

    let gw = TestGateway::start().await;
    gw.create_org("acme").await;
    gw.create_product("acme", "base", false).await;
    let (status, v) = gw
        .api(
            "POST",
            "/api/v1/orgs/acme/products/base/remotes",
            ("admin", ADMIN_PASSWORD),
            Some(
                json!({"name": "cli", "url": upstream.url(""), "upstream_name": "vendor/tools/cli",
                        "username": user, "password": secret, "mirror": true}),
            ),
        )
        .await;
    assert!(status.is_success(), "{v}");
    // Sync remote `name`, which must succeed.
    let sync = async |name: &str| {
        let job = gw.sync_remote("acme/base", name).await;
        assert_eq!(job["state"], "done", "{job}");
        job
    };
    let signatures = async || {
        let token = gw
            .token(Some(("admin", ADMIN_PASSWORD)), &["repository:acme/base/cli:pull"])
            .await;
        let v: Value = http()
            .get(gw.url(&format!("/extensions/v2/acme/base/cli/signatures/{digest}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut contents: Vec<Vec<u8>> = v["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| base64_decode(s["content"].as_str().unwrap()))
            .collect();
        contents.sort();
        contents
    };

    let job = sync("cli").await;
    assert_eq!(job["progress"]["outcome"]["version"], 1, "{job}");
    assert_eq!(signatures().await, vec![b"first signature".to_vec()]);

    // Nothing new: no version.
    let job = sync("cli").await;
    assert!(job["progress"]["outcome"]["version"].is_null(), "{job}");

    // A signature added upstream later comes with the next sync.
    put(&"2".repeat(32), b"second signature").await;
    let job = sync("cli").await;
    assert_eq!(job["progress"]["outcome"]["version"], 2, "{job}");
    assert_eq!(
        signatures().await,
        vec![b"first signature".to_vec(), b"second signature".to_vec()]
    );
    let v = gw
        .admin("GET", "/api/v1/repositories/acme/base/cli/versions", json!(null))
        .await;
    assert_eq!(v["versions"][0]["summary"]["added"]["signatures"], 1, "{v}");
    assert_eq!(v["versions"][0]["summary"]["present"]["signatures"], 2, "{v}");

    // signed_only: a tag the upstream has no signature of is not taken.
    let (status, _) = common::gateway::push_image_with(&upstream, &push, "vendor/tools/cli", "2.0", 6).await;
    assert_eq!(status, 201);
    let (status, v) = gw
        .api(
            "POST",
            "/api/v1/orgs/acme/products/base/remotes",
            ("admin", ADMIN_PASSWORD),
            Some(
                json!({"name": "signed", "url": upstream.url(""), "upstream_name": "vendor/tools/cli",
                        "username": user, "password": secret, "signed_only": true}),
            ),
        )
        .await;
    assert!(status.is_success(), "{v}");
    assert_eq!(v["signed_only"], true, "{v}");
    sync("signed").await;
    let token = gw
        .token(Some(("admin", ADMIN_PASSWORD)), &["repository:acme/base/signed:pull"])
        .await;
    let tags: Value = http()
        .get(gw.url("/v2/acme/base/signed/tags/list"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!(["1.0"]), "only the signed tag: {tags}");
}

/// An organisation's own key, made by gatehouse: org admins create it, members download
/// its public key, a pusher signs a tag with it for the public name, and podman, with
/// that key in its policy, accepts the pull. An imported GPG secret key signs too; a
/// public-only key and another organisation's key cannot.
#[tokio::test(flavor = "multi_thread")]
async fn an_org_key_signs_for_the_public_name_and_podman_verifies_it() {
    let site = site().await;
    let gw = &site.gw;
    gw.create_member("acme-admin", "acme", "org_admin", None).await;
    tokio::task::block_in_place(|| site.push(None, 11, "1.0"));
    tokio::task::block_in_place(|| site.push(None, 12, "2.0"));
    let admin = ("acme-admin", USER_PASSWORD);

    // Org admins create keys; viewers may not.
    let (s, v) = new_key(gw, "acme", ("watcher", USER_PASSWORD), json!({"name": "x"})).await;
    assert_eq!(s, 403, "{v}");
    let (s, key) = new_key(gw, "acme", admin, json!({"name": "release", "type": "gpg"})).await;
    assert_eq!(s, 201, "{key}");
    assert_eq!(key["type"], "gpg");
    assert_eq!(key["can_sign"], true);
    assert_eq!(key["fingerprint"].as_str().unwrap().len(), 40, "{key}");
    assert!(
        key["public_key"]
            .as_str()
            .unwrap()
            .contains("BEGIN PGP PUBLIC KEY BLOCK")
    );
    assert!(!key.to_string().contains("PRIVATE"), "{key}");
    let (s, v) = new_key(gw, "acme", admin, json!({"name": "release"})).await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = new_key(gw, "acme", admin, json!({"name": "Bad Name"})).await;
    assert_eq!((s.as_u16(), v["error"]["field"].as_str()), (400, Some("name")), "{v}");
    let (s, v) = new_key(gw, "acme", admin, json!({"name": "k", "type": "cosign"})).await;
    assert_eq!((s.as_u16(), v["error"]["field"].as_str()), (400, Some("type")), "{v}");

    // Members list keys and download the armored public key for their policy.json.
    let (s, list) = gw
        .api(
            "GET",
            "/api/v1/orgs/acme/signing-keys",
            ("watcher", USER_PASSWORD),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(list["signing_keys"][0]["name"], "release", "{list}");
    let r = gw
        .client()
        .get(gw.url("/api/v1/orgs/acme/signing-keys/release?format=armored"))
        .basic_auth("watcher", Some(USER_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pgp-keys");
    let armored = r.text().await.unwrap();
    assert_eq!(armored, key["public_key"].as_str().unwrap());
    let keys = site.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let release_pub = keys.join("release.asc");
    std::fs::write(&release_pub, &armored).unwrap();
    let policy = site.policy("release-policy.json", &[&release_pub]);

    let out = tokio::task::block_in_place(|| site.pull(&policy, "1.0"));
    assert!(!out.status.success(), "not signed yet");

    // A pusher signs 1.0 for the name users pull: one new version.
    let (s, v) = sign(
        gw,
        ("dev", USER_PASSWORD),
        json!({"tags": ["1.0"], "key": "release", "registry": gw.host()}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert!(v["version"].is_number(), "{v}");
    let versions = site.versions().await;
    assert_eq!(versions[0]["reason"], "sign 1.0 with release", "{versions:?}");
    assert_eq!(versions[0]["summary"]["added"]["signatures"], 1);
    let out = tokio::task::block_in_place(|| site.pull(&policy, "1.0"));
    assert!(out.status.success(), "signed by the org's key: {}", text(&out));
    let out = tokio::task::block_in_place(|| site.pull(&policy, "2.0"));
    assert!(!out.status.success(), "2.0 was not signed");

    // A viewer cannot sign; an unknown tag or key says which field is wrong.
    let (s, v) = sign(
        gw,
        ("watcher", USER_PASSWORD),
        json!({"tags": ["2.0"], "key": "release", "registry": gw.host()}),
    )
    .await;
    assert_eq!(s, 403, "the viewer sees the repository but may not sign in it: {v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("may pull"), "{v}");
    let (s, v) = sign(
        gw,
        ("dev", USER_PASSWORD),
        json!({"tags": ["2.0"], "key": "nope", "registry": gw.host()}),
    )
    .await;
    assert_eq!((s.as_u16(), v["error"]["field"].as_str()), (400, Some("key")), "{v}");
    let (s, _) = sign(
        gw,
        ("dev", USER_PASSWORD),
        json!({"tags": ["9.9"], "key": "release", "registry": gw.host()}),
    )
    .await;
    assert_eq!(s, 404);

    // Another organisation's key cannot sign acme's content.
    gw.create_org("globex").await;
    let (s, _) = new_key(gw, "globex", ("admin", ADMIN_PASSWORD), json!({"name": "theirs"})).await;
    assert_eq!(s, 201);
    let (s, v) = sign(
        gw,
        ("admin", ADMIN_PASSWORD),
        json!({"tags": ["2.0"], "key": "theirs", "registry": gw.host()}),
    )
    .await;
    assert_eq!((s.as_u16(), v["error"]["field"].as_str()), (400, Some("key")), "{v}");

    // An imported GPG secret key signs; podman verifies with gpg's export of it.
    let gpg = Gpg::new("ci@acme.example");
    let secret = gpg.run(&["--armor", "--export-secret-keys", "ci@acme.example"]);
    assert!(secret.status.success());
    let (s, imported) = new_key(
        gw,
        "acme",
        admin,
        json!({"name": "ci", "key": String::from_utf8(secret.stdout).unwrap()}),
    )
    .await;
    assert_eq!(s, 201, "{imported}");
    assert_eq!(imported["can_sign"], true);
    let (s, v) = sign(
        gw,
        ("dev", USER_PASSWORD),
        json!({"tags": ["2.0"], "key": "ci", "registry": gw.host()}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let ci_policy = site.policy("ci-policy.json", &[&gpg.export(&keys)]);
    let out = tokio::task::block_in_place(|| site.pull(&ci_policy, "2.0"));
    assert!(out.status.success(), "signed by the imported key: {}", text(&out));

    // A public key alone verifies only.
    let (s, public_only) = new_key(
        gw,
        "acme",
        admin,
        json!({"name": "outside", "key": std::fs::read_to_string(keys.join("ci@acme.example.gpg")).unwrap()}),
    )
    .await;
    assert_eq!(s, 201, "{public_only}");
    assert_eq!(public_only["can_sign"], false);
    let (s, v) = sign(
        gw,
        ("dev", USER_PASSWORD),
        json!({"tags": ["2.0"], "key": "outside", "registry": gw.host()}),
    )
    .await;
    assert_eq!((s.as_u16(), v["error"]["field"].as_str()), (400, Some("key")), "{v}");
    let (s, v) = new_key(
        gw,
        "acme",
        admin,
        json!({"name": "junk", "key": "-----BEGIN PGP PRIVATE KEY BLOCK-----\nnope\n"}),
    )
    .await;
    assert_eq!((s.as_u16(), v["error"]["field"].as_str()), (400, Some("key")), "{v}");

    // Private keys are sealed at rest.
    let sealed: Vec<Option<String>> = sqlx::query_scalar("SELECT private_sealed FROM signing_keys")
        .fetch_all(&gw.app_db.write_pool())
        .await
        .unwrap();
    assert!(sealed.iter().flatten().count() >= 2);
    assert!(
        sealed.iter().flatten().all(|s| !s.contains("PGP PRIVATE KEY")),
        "{sealed:?}"
    );

    // Signature status, per tag, against the organisation's keys.
    let status = |v: &Value, tag: &str| -> Vec<Value> {
        v["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tag"] == tag)
            .unwrap_or_else(|| panic!("no tag {tag}: {v}"))["signatures"]
            .as_array()
            .unwrap()
            .clone()
    };
    let (s, v) = gw
        .api(
            "GET",
            "/api/v1/repositories/acme/web/app/signatures",
            ("watcher", USER_PASSWORD),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let one = status(&v, "1.0");
    assert_eq!(one.len(), 1, "{v}");
    assert_eq!(
        (one[0]["valid"].as_bool(), one[0]["key"].as_str()),
        (Some(true), Some("release"))
    );
    assert_eq!(one[0]["identity"], format!("{}/acme/web/app:1.0", gw.host()));
    assert_eq!(status(&v, "2.0")[0]["key"], "ci");

    // Deleting a key keeps the signatures made with it (they are content), which no
    // longer verify against the organisation's keys.
    let (s, _) = gw
        .api("DELETE", "/api/v1/orgs/acme/signing-keys/release", admin, None)
        .await;
    assert_eq!(s, 204);
    let digest = site.digest("1.0").await;
    assert_eq!(site.signatures(&digest).await.len(), 1);
    let (_, v) = gw
        .api(
            "GET",
            "/api/v1/repositories/acme/web/app/signatures",
            ("watcher", USER_PASSWORD),
            None,
        )
        .await;
    assert_eq!(status(&v, "1.0")[0]["valid"], false, "{v}");
}

/// A product that requires signatures by its organisation's keys: a manifest no
/// accepted key signed is refused (403 DENIED naming the keys) to everyone, global
/// administrators included, whatever the client's own policy; platforms of a signed
/// index are pulled by digest; tags and blobs stay readable; lifting the requirement
/// lets everything through again.
#[tokio::test(flavor = "multi_thread")]
async fn a_product_requiring_signatures_refuses_what_its_keys_did_not_sign() {
    let site = site().await;
    let gw = &site.gw;
    gw.create_member("acme-admin", "acme", "org_admin", None).await;
    let admin = ("acme-admin", USER_PASSWORD);
    let (s, _) = new_key(gw, "acme", admin, json!({"name": "release"})).await;
    assert_eq!(s, 201);
    let push = gw
        .token(Some(("dev", USER_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    // 1.0 has a real layer, for podman; the rest are pushed raw.
    tokio::task::block_in_place(|| site.push(None, 21, "1.0"));
    let mut images = vec![Vec::new()];
    for (tag, seed) in [("2.0", 22), ("a", 23), ("b", 24)] {
        let (s, m) = common::gateway::push_image_with(gw, &push, "acme/web/app", tag, seed).await;
        assert_eq!(s, 201);
        images.push(m);
    }
    // An index of image "a" only, tagged "multi".
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": common::digest(&images[2]), "size": images[2].len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}]});
    let r = gw
        .client()
        .put(gw.url("/v2/acme/web/app/manifests/multi"))
        .bearer_auth(&push)
        .header("content-type", "application/vnd.oci.image.index.v1+json")
        .body(index.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (s, v) = sign(
        gw,
        ("dev", USER_PASSWORD),
        json!({"tags": ["1.0", "multi"], "key": "release", "registry": gw.host()}),
    )
    .await;
    assert_eq!(s, 201, "{v}");

    // Only keys of the organisation can be required.
    let (s, v) = gw
        .api(
            "PATCH",
            "/api/v1/orgs/acme/products/web",
            admin,
            Some(json!({"require_signed_by": ["nope"]})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["field"].as_str()),
        (400, Some("require_signed_by")),
        "{v}"
    );
    let (s, v) = gw
        .api(
            "PATCH",
            "/api/v1/orgs/acme/products/web",
            admin,
            Some(json!({"require_signed_by": ["release"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["require_signed_by"], json!(["release"]));

    let get = async |who: (&str, &str), reference: &str| {
        let token = gw.token(Some(who), &["repository:acme/web/app:pull"]).await;
        let r = gw
            .client()
            .get(gw.url(&format!("/v2/acme/web/app/manifests/{reference}")))
            .header(
                "accept",
                format!("{OCI_MANIFEST}, application/vnd.oci.image.index.v1+json"),
            )
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap_or_default())
    };
    let viewer = ("watcher", USER_PASSWORD);
    assert_eq!(get(viewer, "1.0").await.0, 200, "signed by release");
    let (status, body) = get(viewer, "2.0").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errors"][0]["code"], "DENIED");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("not signed by an accepted key (release)"), "{message}");
    assert_eq!(get(("admin", ADMIN_PASSWORD), "2.0").await.0, 403, "global admins too");
    assert_eq!(get(viewer, "multi").await.0, 200, "the signed index");
    assert_eq!(
        get(viewer, &common::digest(&images[2])).await.0,
        200,
        "a platform of the signed index, by digest"
    );
    assert_eq!(
        get(viewer, &common::digest(&images[3])).await.0,
        403,
        "b is in no signed index"
    );

    // Tags and blobs are not manifests: still readable.
    let token = gw.token(Some(viewer), &["repository:acme/web/app:pull"]).await;
    let r = gw
        .client()
        .get(gw.url("/v2/acme/web/app/tags/list"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // podman, with a policy that accepts anything, is refused by the registry.
    let insecure = site.config.join("insecure-policy.json");
    let out = tokio::task::block_in_place(|| site.pull(&insecure, "1.0"));
    assert!(out.status.success(), "{}", text(&out));
    let out = tokio::task::block_in_place(|| site.pull(&insecure, "2.0"));
    assert!(!out.status.success());
    assert!(text(&out).contains("not signed by an accepted key"), "{}", text(&out));

    // The refusal is audited.
    let audit = gw.admin("GET", "/api/v1/audit", json!(null)).await;
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["outcome"] == "denied" && e["detail"].as_str().unwrap_or("").contains("not signed")),
        "{audit}"
    );

    // Lifted: everything pulls again.
    let (s, v) = gw
        .api(
            "PATCH",
            "/api/v1/orgs/acme/products/web",
            admin,
            Some(json!({"require_signed_by": []})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(get(viewer, "2.0").await.0, 200);
}

/// A product that signs on push: the post-push copy signs each pushed tag with the
/// organisation's key, for the name clients pull, in the same version; podman verifies
/// it with the key's public part. A client cannot ask for signing itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_product_that_signs_on_push_signs_in_the_copy() {
    let site = site().await;
    let gw = &site.gw;
    gw.create_member("acme-admin", "acme", "org_admin", None).await;
    let admin = ("acme-admin", USER_PASSWORD);
    let (s, key) = new_key(gw, "acme", admin, json!({"name": "release"})).await;
    assert_eq!(s, 201);
    let (s, v) = gw
        .api(
            "PATCH",
            "/api/v1/orgs/acme/products/web",
            admin,
            Some(json!({"sign_on_push": "nope"})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["error"]["field"].as_str()),
        (400, Some("sign_on_push")),
        "{v}"
    );
    let (s, v) = gw
        .api(
            "PATCH",
            "/api/v1/orgs/acme/products/web",
            admin,
            Some(json!({"sign_on_push": "release"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["sign_on_push"], "release");

    tokio::task::block_in_place(|| site.push(None, 31, "1.0"));
    let versions = site.versions().await;
    assert_eq!(
        versions.len(),
        1,
        "one version: the copy and its signature: {versions:?}"
    );
    assert_eq!(versions[0]["reason"], "push 1.0 (signed with release)");
    assert_eq!(versions[0]["summary"]["added"]["signatures"], 1);
    let keys = site.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let public = keys.join("release.asc");
    std::fs::write(&public, key["public_key"].as_str().unwrap()).unwrap();
    let policy = site.policy("policy.json", &[&public]);
    let out = tokio::task::block_in_place(|| site.pull(&policy, "1.0"));
    assert!(out.status.success(), "signed on push: {}", text(&out));

    // Another product, not signing on push: a client's forged header signs nothing.
    let (s, _) = gw
        .api(
            "PATCH",
            "/api/v1/orgs/acme/products/web",
            admin,
            Some(json!({"sign_on_push": ""})),
        )
        .await;
    assert_eq!(s, 200);
    let push = gw
        .token(Some(("dev", USER_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    let (s, m) = common::gateway::push_image_with(gw, &push, "acme/web/app", "2.0", 32).await;
    assert_eq!(s, 201);
    let r = gw
        .client()
        .put(gw.url("/v2/acme/web/app/manifests/2.1"))
        .bearer_auth(&push)
        .header("content-type", OCI_MANIFEST)
        .header(
            "x-gatehouse-sign-on-push",
            format!("acme release {}/acme/web/app", gw.host()),
        )
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(site.signatures(&common::digest(&m)).await.is_empty());
    let versions = site.versions().await;
    assert_eq!(versions[0]["reason"], "push 2.1", "{versions:?}");
}

/// A static web server for `dir` on loopback (a signature lookaside, as a vendor
/// publishes one); returns its base URL.
async fn serve_dir(dir: PathBuf) -> String {
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let file = dir.join(uri.path().trim_start_matches('/'));
        async move {
            match std::fs::read(&file) {
                Ok(bytes) if !uri.path().contains("..") => bytes.into_response(),
                _ => axum::http::StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A remote on Debian's docker-registry whose vendor signs with GPG into a lookaside
/// (skopeo `--sign-by` with `lookaside-staging`, served over HTTP) and attaches a cosign
/// `.sig` to another tag: with `sigstore` (the lookaside) and `signed_only`, the sync
/// takes the signed tags with their signatures and the attachment though the tag filter
/// does not name it, and leaves the unsigned tag; podman then verifies the vendor's
/// signature through gatehouse's extension API, mapping the vendor's name to ours.
#[tokio::test(flavor = "multi_thread")]
async fn a_remote_on_distribution_brings_lookaside_signatures_and_attachments() {
    let site = site().await;
    let gw = &site.gw;
    let dist = common::distribution::start_distribution();
    let upstream_host = dist.base.trim_start_matches("http://").to_owned();
    let vendor = Gpg::new("vendor@upstream.example");
    let staging = site.dir.path().join("lookaside");
    std::fs::write(
        site.config.join("registries.d/upstream.yaml"),
        format!(
            "docker:\n  {upstream_host}:\n    lookaside-staging: file://{}\n",
            staging.display()
        ),
    )
    .unwrap();
    let src = site.dir.path().join("vendor-layout");
    layout(&src, 41);
    let out = Command::new("skopeo")
        .env("GNUPGHOME", vendor.home.path())
        .arg("--registries.d")
        .arg(site.config.join("registries.d"))
        .arg("--policy")
        .arg(site.config.join("insecure-policy.json"))
        .args(["copy", "--dest-tls-verify=false", "--sign-by", &vendor.email])
        .arg(format!("oci:{}:1.0", src.display()))
        .arg(format!("docker://{upstream_host}/library/app:1.0"))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy --sign-by: {}", text(&out));
    let lookaside = serve_dir(staging).await;
    common::distribution::push_plain(&dist.base, "library/app", "2.0", &[common::random_bytes(512, 42)]).await;
    let three =
        common::distribution::push_plain(&dist.base, "library/app", "3.0", &[common::random_bytes(512, 43)]).await;
    // A cosign attachment of 3.0, as cosign writes it.
    let payload = json!({"critical": {"identity": {"docker-reference": format!("{upstream_host}/library/app:3.0")},
        "image": {"docker-manifest-digest": common::digest(&three)}, "type": "cosign container image signature"},
        "optional": null})
    .to_string()
    .into_bytes();
    let config = br#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    for blob in [&payload, &config] {
        common::distribution::push_blob_plain(&dist.base, "library/app", blob).await;
    }
    let mut layer = common::descriptor("application/vnd.dev.cosign.simplesigning.v1+json", &payload);
    layer["annotations"] = json!({"dev.cosignproject.cosign/signature": "MEUCIQDexample"});
    let attachment = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": common::descriptor("application/vnd.oci.image.config.v1+json", &config), "layers": [layer]})
    .to_string()
    .into_bytes();
    let sig_tag = format!("{}.sig", common::digest(&three).replacen(':', "-", 1));
    common::distribution::put_manifest_plain(&dist.base, "library/app", &sig_tag, &attachment).await;

    let (status, v) = gw
        .api(
            "POST",
            "/api/v1/orgs/acme/products/web/remotes",
            ("admin", ADMIN_PASSWORD),
            Some(json!({"name": "app", "url": dist.base, "upstream_name": "library/app",
                        "include_tags": ["?.0"], "signed_only": true, "sigstore": format!("{lookaside}/")})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["sigstore"], lookaside, "{v}");
    let job = gw.sync_remote("acme/web", "app").await;
    assert_eq!(job["state"], "done", "{job}");
    let token = gw
        .token(Some(("watcher", USER_PASSWORD)), &["repository:acme/web/app:pull"])
        .await;
    let tags: Value = gw
        .client()
        .get(gw.url("/v2/acme/web/app/tags/list"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!(["1.0", "3.0", sig_tag]), "{tags}");
    let r = gw
        .client()
        .get(gw.url(&format!("/v2/acme/web/app/manifests/{sig_tag}")))
        .header("accept", OCI_MANIFEST)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        attachment,
        "the attachment byte for byte"
    );
    let one = site.digest("1.0").await;
    assert_eq!(
        site.signatures(&one).await.len(),
        1,
        "the lookaside signature came along"
    );

    // podman verifies the vendor's signature, which names the vendor's repository.
    let keys = site.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let policy = json!({
        "default": [{"type": "reject"}],
        "transports": {"docker": {format!("{}/acme/web", gw.host()): [{
            "type": "signedBy", "keyType": "GPGKeys", "keyPath": vendor.export(&keys),
            "signedIdentity": {"type": "remapIdentity", "prefix": format!("{}/acme/web/app", gw.host()),
                               "signedPrefix": format!("{upstream_host}/library/app")}}]}}
    });
    let path = site.config.join("vendor-policy.json");
    std::fs::write(&path, policy.to_string()).unwrap();
    let out = tokio::task::block_in_place(|| site.pull(&path, "1.0"));
    assert!(out.status.success(), "the vendor's signature verifies: {}", text(&out));
}
