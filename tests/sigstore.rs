//! Sigstore signatures as attachments (`sha256-<hex>.sig` tags, ECDSA P-256 keys).
//!
//! Debian's podman 4.3, skopeo 1.9 and buildah are built with sigstore disabled both
//! ways ("Debian-local change: sigstore disabled", on signing and on a `sigstoreSigned`
//! policy), and no cosign is packaged: so the client here signs as cosign does on the
//! wire (the payload a layer of the attachment, the signature in its annotation, pushed
//! through the gateway with push rights), and the signatures gatehouse makes are checked
//! by the test itself against the downloaded PEM, with the claims containers/image
//! checks. podman still pulls, through the gateway's own enforcement
//! (`require_signed_by` counts sigstore signers). Keys live in temp dirs.

mod common;

use common::clients::Podman;
use common::gateway::{TestGateway, USER_PASSWORD, push_blob};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Output;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = b64(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// A key pair as cosign and containers/image write one: the private key PKCS#8,
/// encrypted with scrypt + NaCl secretbox under `passphrase` (go-securesystemslib's
/// envelope), PEM `ENCRYPTED SIGSTORE PRIVATE KEY`; the public key an SPKI PEM.
struct CosignKey {
    key: p256::ecdsa::SigningKey,
    private: PathBuf,
    public: PathBuf,
}

fn cosign_key(dir: &Path, name: &str, passphrase: &str) -> CosignKey {
    use crypto_secretbox::aead::{Aead, KeyInit};
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let der = key.to_pkcs8_der().unwrap();
    let salt: [u8; 32] = rand::random();
    let nonce: [u8; 24] = rand::random();
    let (log_n, r, p) = (15u8, 8u32, 1u32);
    let mut secret = [0u8; 32];
    scrypt::scrypt(
        passphrase.as_bytes(),
        &salt,
        &scrypt::Params::new(log_n, r, p, 32).unwrap(),
        &mut secret,
    )
    .unwrap();
    let sealed = crypto_secretbox::XSalsa20Poly1305::new(&secret.into())
        .encrypt(&nonce.into(), der.as_bytes())
        .unwrap();
    let envelope = json!({
        "kdf": {"name": "scrypt", "params": {"N": 1u64 << log_n, "r": r, "p": p}, "salt": b64(&salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": b64(&nonce)},
        "ciphertext": b64(&sealed),
    });
    let private = dir.join(format!("{name}.key"));
    std::fs::write(
        &private,
        pem("ENCRYPTED SIGSTORE PRIVATE KEY", envelope.to_string().as_bytes()),
    )
    .unwrap();
    let public = dir.join(format!("{name}.pub"));
    let spki = key.verifying_key().to_public_key_der().unwrap();
    std::fs::write(&public, pem("PUBLIC KEY", spki.as_bytes())).unwrap();
    CosignKey { key, private, public }
}

struct Site {
    gw: TestGateway,
    dir: tempfile::TempDir,
    cert_dir: PathBuf,
}

async fn site() -> Site {
    let gw = TestGateway::start_tls().await;
    gw.create_org("acme").await;
    gw.create_product("acme", "web", false).await;
    gw.create_member("dev", "acme", "pusher", Some("web")).await;
    gw.create_member("watcher", "acme", "viewer", Some("web")).await;
    gw.create_member("acme-admin", "acme", "org_admin", None).await;
    let dir = tempfile::tempdir().unwrap();
    let cert_dir = dir.path().join("certs");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(gw.ca_cert(), cert_dir.join("ca.crt")).unwrap();
    Site { gw, dir, cert_dir }
}

const ADMIN: (&str, &str) = ("acme-admin", USER_PASSWORD);

impl Site {
    /// podman logged in as `user`.
    fn podman(&self, user: &str) -> Podman {
        let p = Podman::new();
        p.run(&[
            "login",
            "--cert-dir",
            self.cert_dir.to_str().unwrap(),
            "-u",
            user,
            "-p",
            USER_PASSWORD,
            &self.gw.host(),
        ]);
        p
    }

    fn image(&self, tag: &str) -> String {
        format!("{}/acme/web/app:{tag}", self.gw.host())
    }

    /// podman push of a new image as acme/web/app:`tag`.
    fn push(&self, tag: &str) {
        let p = self.podman("dev");
        let local = format!("localhost/app:{tag}");
        p.import_files(&local, &[("etc/marker", format!("image {tag}").as_bytes())]);
        let image = self.image(tag);
        let out = p.try_run(&["push", "--cert-dir", self.cert_dir.to_str().unwrap(), &local, &image]);
        assert!(out.status.success(), "podman push {tag}: {}", text(&out));
    }

    /// Sign acme/web/app:`tag` (manifest `digest`) with `key` as cosign does, as `dev` with push rights:
    /// the signed payload a layer of the manifest's attachment, the signature in its
    /// annotation; an existing attachment is rewritten with one more layer.
    async fn cosign_sign(&self, key: &CosignKey, tag: &str, digest: &str) -> Vec<u8> {
        use p256::ecdsa::signature::Signer;
        let payload = json!({
            "critical": {
                "identity": {"docker-reference": self.image(tag)},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": null,
        })
        .to_string()
        .into_bytes();
        let signature: p256::ecdsa::Signature = key.key.sign(&payload);
        let token = self
            .gw
            .token(Some(("dev", USER_PASSWORD)), &["repository:acme/web/app:pull,push"])
            .await;
        let sig_tag = attachment_tag(digest);
        let existing = self.get(&format!("/v2/acme/web/app/manifests/{sig_tag}")).await;
        let mut layers = match existing.status().as_u16() {
            200 => existing.json::<Value>().await.unwrap()["layers"]
                .as_array()
                .unwrap()
                .clone(),
            _ => Vec::new(),
        };
        layers.push(json!({
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "size": payload.len(),
            "digest": common::digest(&payload),
            "annotations": {"dev.cosignproject.cosign/signature": b64(signature.to_der().as_bytes())},
        }));
        let diff_ids: Vec<Value> = layers.iter().map(|l| l["digest"].clone()).collect();
        let config =
            json!({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}})
                .to_string()
                .into_bytes();
        for blob in [&payload, &config] {
            assert_eq!(push_blob(&self.gw, &token, "acme/web/app", blob).await, 201);
        }
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": common::OCI_MANIFEST,
            "config": common::descriptor("application/vnd.oci.image.config.v1+json", &config),
            "layers": layers,
        }))
        .unwrap();
        let r = self
            .gw
            .client()
            .put(self.gw.url(&format!("/v2/acme/web/app/manifests/{sig_tag}")))
            .bearer_auth(&token)
            .header("content-type", common::OCI_MANIFEST)
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        manifest
    }

    /// podman pull of acme/web/app:`tag` as `watcher`, the client accepting anything
    /// (what the gateway enforces is under test).
    fn pull(&self, tag: &str) -> Output {
        let policy = self.dir.path().join("anything.json");
        std::fs::write(&policy, r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
        self.pull_with(&policy, tag)
    }

    fn pull_with(&self, policy: &Path, tag: &str) -> Output {
        let p = self.podman("watcher");
        p.try_run(&[
            "pull",
            "--cert-dir",
            self.cert_dir.to_str().unwrap(),
            "--signature-policy",
            policy.to_str().unwrap(),
            &self.image(tag),
        ])
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        let token = self
            .gw
            .token(Some(("watcher", USER_PASSWORD)), &["repository:acme/web/app:pull"])
            .await;
        self.gw
            .client()
            .get(self.gw.url(path))
            .header("accept", common::OCI_MANIFEST)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn digest(&self, tag: &str) -> String {
        let r = self.get(&format!("/v2/acme/web/app/manifests/{tag}")).await;
        assert_eq!(r.status(), 200, "{tag}");
        r.headers()["docker-content-digest"].to_str().unwrap().to_owned()
    }

    async fn tags(&self) -> Vec<String> {
        let v: Value = self.get("/v2/acme/web/app/tags/list").await.json().await.unwrap();
        serde_json::from_value(v["tags"].clone()).unwrap()
    }

    async fn keyfile(&self, name: &str) -> PathBuf {
        let r = self
            .gw
            .client()
            .get(
                self.gw
                    .url(&format!("/api/v1/orgs/acme/signing-keys/{name}?format=pem")),
            )
            .basic_auth("watcher", Some(USER_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/x-pem-file");
        let path = self.dir.path().join(format!("{name}.pem"));
        std::fs::write(&path, r.bytes().await.unwrap()).unwrap();
        path
    }
}

fn attachment_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// A client signs as cosign does: the attachment is stored and served byte for byte,
/// reaches the normal repository with the post-push copy, and counts for a product
/// requiring the client's key (imported public only); a second signature rewrites the
/// attachment and the first still counts; removing the manifest removes its attachment.
#[tokio::test(flavor = "multi_thread")]
async fn a_cosign_attachment_is_served_as_pushed_and_counts_as_a_signer() {
    let site = site().await;
    let gw = &site.gw;
    let keys = site.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let dev = cosign_key(&keys, "dev", "correct horse");
    let stranger = cosign_key(&keys, "stranger", "battery staple");

    tokio::task::block_in_place(|| site.push("1.0"));
    tokio::task::block_in_place(|| site.push("2.0"));
    let digest = site.digest("1.0").await;
    let digest2 = site.digest("2.0").await;
    let pushed = site.cosign_sign(&dev, "1.0", &digest).await;
    let sig_tag = attachment_tag(&digest);
    let tags = site.tags().await;
    assert!(
        tags.contains(&sig_tag),
        "the attachment tag is in the repository: {tags:?}"
    );
    let r = site.get(&format!("/v2/acme/web/app/manifests/{sig_tag}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], common::OCI_MANIFEST);
    assert_eq!(r.bytes().await.unwrap().to_vec(), pushed, "served byte for byte");

    let public = std::fs::read_to_string(&dev.public).unwrap();
    let (s, v) = gw
        .api(
            "POST",
            "/api/v1/orgs/acme/signing-keys",
            ADMIN,
            Some(json!({"name": "dev", "key": public})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (v["type"].as_str(), v["can_sign"].as_bool()),
        (Some("sigstore"), Some(false))
    );
    let (s, v) = gw
        .api(
            "PATCH",
            "/api/v1/orgs/acme/products/web",
            ADMIN,
            Some(json!({"require_signed_by": ["dev"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let out = tokio::task::block_in_place(|| site.pull("1.0"));
    assert!(out.status.success(), "signed by dev: {}", text(&out));
    let out = tokio::task::block_in_place(|| site.pull("2.0"));
    assert!(!out.status.success(), "unsigned 2.0 is refused");
    assert!(
        text(&out).contains("not signed by an accepted key (dev)"),
        "{}",
        text(&out)
    );

    // Another signer rewrites the attachment with a second layer: dev's still counts.
    site.cosign_sign(&stranger, "1.0", &digest).await;
    let r = site.get(&format!("/v2/acme/web/app/manifests/{sig_tag}")).await;
    let attachment: Value = r.json().await.unwrap();
    assert_eq!(attachment["layers"].as_array().unwrap().len(), 2);
    let out = tokio::task::block_in_place(|| site.pull("1.0"));
    assert!(out.status.success(), "still signed by dev: {}", text(&out));
    // A stranger's signature alone does not make 2.0 pullable.
    site.cosign_sign(&stranger, "2.0", &digest2).await;
    let out = tokio::task::block_in_place(|| site.pull("2.0"));
    assert!(!out.status.success(), "2.0 is signed, but not by dev");

    // Removing the manifest removes its attachment with it.
    let v = gw
        .admin(
            "POST",
            "/api/v1/repositories/acme/web/app/remove",
            json!({ "digests": [digest] }),
        )
        .await;
    assert!(v["version"].is_number(), "{v}");
    let tags = site.tags().await;
    assert!(
        !tags.contains(&sig_tag),
        "the attachment left with its manifest: {tags:?}"
    );
}

/// Check a gatehouse-made sigstore signature of acme/web/app:`tag` as containers/image
/// would: the attachment's payload verifies with `public_pem` and claims the manifest
/// digest and the name clients pull.
async fn check_server_signature(site: &Site, tag: &str, public_pem: &str) {
    use p256::ecdsa::signature::Verifier;
    use p256::pkcs8::DecodePublicKey;
    let digest = site.digest(tag).await;
    let r = site
        .get(&format!("/v2/acme/web/app/manifests/{}", attachment_tag(&digest)))
        .await;
    assert_eq!(r.status(), 200);
    let attachment: Value = r.json().await.unwrap();
    let layer = &attachment["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.dev.cosign.simplesigning.v1+json");
    let payload = site
        .get(&format!("/v2/acme/web/app/blobs/{}", layer["digest"].as_str().unwrap()))
        .await
        .bytes()
        .await
        .unwrap();
    let signature = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(
                layer["annotations"]["dev.cosignproject.cosign/signature"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap()
    };
    let key = p256::ecdsa::VerifyingKey::from_public_key_pem(public_pem).unwrap();
    key.verify(&payload, &p256::ecdsa::Signature::from_der(&signature).unwrap())
        .expect("the signature verifies with the downloaded key");
    let claim: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(claim["critical"]["type"], "cosign container image signature");
    assert_eq!(claim["critical"]["image"]["docker-manifest-digest"], digest.as_str());
    assert_eq!(
        claim["critical"]["identity"]["docker-reference"],
        site.image(tag).as_str()
    );
}

/// An org's generated sigstore key signs a tag server side for the public name, as an
/// attachment that verifies with the downloaded PEM. An imported cosign key (with its passphrase)
/// counts as a signer for `require_signed_by`, which then refuses what neither signed.
#[tokio::test(flavor = "multi_thread")]
async fn org_sigstore_keys_sign_and_are_required_on_pull() {
    let site = site().await;
    let gw = &site.gw;
    let keys = site.dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let dev = cosign_key(&keys, "dev", "correct horse");

    let (s, key) = gw
        .api(
            "POST",
            "/api/v1/orgs/acme/signing-keys",
            ADMIN,
            Some(json!({"name": "release", "type": "sigstore"})),
        )
        .await;
    assert_eq!(s, 201, "{key}");
    assert_eq!(key["type"], "sigstore");
    assert_eq!(key["can_sign"], true);
    assert!(
        key["public_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    assert!(key.get("private_key").is_none());

    // Importing an encrypted key needs its passphrase, and the right one.
    let private = std::fs::read_to_string(&dev.private).unwrap();
    for (body, field) in [
        (json!({"name": "dev", "key": private}), "passphrase"),
        (
            json!({"name": "dev", "key": private, "passphrase": "wrong"}),
            "passphrase",
        ),
        (
            json!({"name": "dev", "key": "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"}),
            "key",
        ),
    ] {
        let (s, v) = gw
            .api("POST", "/api/v1/orgs/acme/signing-keys", ADMIN, Some(body))
            .await;
        assert_eq!((s.as_u16(), v["error"]["field"].as_str()), (400, Some(field)), "{v}");
    }
    let (s, imported) = gw
        .api(
            "POST",
            "/api/v1/orgs/acme/signing-keys",
            ADMIN,
            Some(json!({"name": "dev", "key": private, "passphrase": "correct horse"})),
        )
        .await;
    assert_eq!(s, 201, "{imported}");
    assert_eq!(imported["type"], "sigstore");
    assert_eq!(
        imported["public_key"].as_str().unwrap().trim(),
        std::fs::read_to_string(&dev.public).unwrap().trim(),
        "the imported key's public part is the client's"
    );

    for tag in ["1.0", "2.0", "3.0"] {
        tokio::task::block_in_place(|| site.push(tag));
    }
    let digest = site.digest("1.0").await;
    site.cosign_sign(&dev, "1.0", &digest).await;
    let (s, v) = gw
        .api(
            "POST",
            "/api/v1/repositories/acme/web/app/sign",
            ADMIN,
            Some(json!({"tags": ["2.0"], "key": "release"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let release_pem = std::fs::read_to_string(site.keyfile("release").await).unwrap();
    check_server_signature(&site, "2.0", &release_pem).await;

    // Signature status names the signer of each tag.
    let (s, status) = gw
        .api("GET", "/api/v1/repositories/acme/web/app/signatures", ADMIN, None)
        .await;
    assert_eq!(s, 200);
    let signer = |tag: &str| -> Vec<(Value, Value)> {
        status["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tag"] == tag)
            .map(|t| {
                t["signatures"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| (s["type"].clone(), s["key"].clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(signer("1.0"), vec![(json!("sigstore"), json!("dev"))], "{status}");
    assert_eq!(signer("2.0"), vec![(json!("sigstore"), json!("release"))], "{status}");
    assert_eq!(signer("3.0"), vec![], "{status}");

    // Signing on push with the sigstore key: the copy and its attachment, one version.
    let (s, v) = gw
        .api(
            "PATCH",
            "/api/v1/orgs/acme/products/web",
            ADMIN,
            Some(json!({"sign_on_push": "release"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    tokio::task::block_in_place(|| site.push("4.0"));
    check_server_signature(&site, "4.0", &release_pem).await;
    let (_, versions) = gw
        .api("GET", "/api/v1/repositories/acme/web/app/versions", ADMIN, None)
        .await;
    assert_eq!(
        versions["versions"][0]["reason"], "push 4.0 (signed with release)",
        "{versions}"
    );

    // The product requires release or dev: 1.0 and 2.0 pull, 3.0 is refused, whatever
    // the client's own policy.
    let (s, v) = gw
        .api(
            "PATCH",
            "/api/v1/orgs/acme/products/web",
            ADMIN,
            Some(json!({"require_signed_by": ["release", "dev"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    for tag in ["1.0", "2.0"] {
        let out = tokio::task::block_in_place(|| site.pull(tag));
        assert!(
            out.status.success(),
            "{tag} is signed by an accepted key: {}",
            text(&out)
        );
    }
    let out = tokio::task::block_in_place(|| site.pull("3.0"));
    assert!(!out.status.success(), "3.0 is unsigned");
    assert!(
        text(&out).contains("not signed by an accepted key (dev, release)"),
        "{}",
        text(&out)
    );
}
