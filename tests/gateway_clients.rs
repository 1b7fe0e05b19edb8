//! Real podman and skopeo through the gateway, over TLS trusting only the dev CA (the
//! way podman documents: a `ca.crt` in a certs.d-style directory), as each kind of
//! principal: org admin, pusher, viewer, pull secret, anonymous on a public product.

mod common;

use common::clients::{Podman, Skopeo};
use common::gateway::{TestGateway, USER_PASSWORD};
use serde_json::json;
use std::process::Output;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Site {
    gw: TestGateway,
    cert_dir: tempfile::TempDir,
    secret_user: String,
    secret: String,
}

async fn site() -> Site {
    let gw = TestGateway::start_tls().await;
    gw.create_org("acme").await;
    gw.create_product("acme", "web", false).await;
    gw.create_product("acme", "pub", true).await;
    gw.create_member("acme-admin", "acme", "org_admin", None).await;
    gw.create_member("dev", "acme", "pusher", Some("web")).await;
    gw.create_member("watcher", "acme", "viewer", Some("web")).await;
    let (secret_user, secret, _) = gw
        .create_pull_secret("acme", json!({"name": "ci-puller", "products": ["web"]}))
        .await;
    let cert_dir = tempfile::tempdir().unwrap();
    std::fs::copy(gw.ca_cert(), cert_dir.path().join("ca.crt")).unwrap();
    Site {
        gw,
        cert_dir,
        secret_user,
        secret,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_as_admin_pusher_viewer_pull_secret_and_anonymous() {
    let site = site().await;
    let host = site.gw.host();
    let cert_dir = site.cert_dir.path().to_str().unwrap().to_owned();
    let (secret_user, secret) = (site.secret_user.clone(), site.secret.clone());
    tokio::task::spawn_blocking(move || {
        let cd = ["--cert-dir", cert_dir.as_str()];
        let login = |p: &Podman, user: &str, pass: &str| {
            p.try_run(&["login", "--cert-dir", &cert_dir, "-u", user, "-p", pass, &host])
        };
        let image = |repo: &str| format!("{host}/{repo}");

        // Org admin: pushes to a product and to the org's own push product (org/name).
        let admin = Podman::new();
        admin.import_files("localhost/app:1.0", &[("etc/release", b"one")]);
        let wrong = login(&admin, "acme-admin", "not-the-password");
        assert!(!wrong.status.success(), "a wrong password fails podman login");
        assert!(login(&admin, "acme-admin", USER_PASSWORD).status.success());
        for repo in ["acme/web/app:1.0", "acme/app:1.0", "acme/pub/tool:1.0"] {
            admin.run(&[&["push"][..], &cd, &["localhost/app:1.0", &image(repo)]].concat());
        }

        // Pusher on web: push and pull there.
        let dev = Podman::new();
        dev.import_files("localhost/app:2.0", &[("etc/release", b"two")]);
        assert!(login(&dev, "dev", USER_PASSWORD).status.success());
        dev.run(&[&["push"][..], &cd, &["localhost/app:2.0", &image("acme/web/app:2.0")]].concat());
        dev.run(&[&["pull"][..], &cd, &[&image("acme/web/app:1.0")]].concat());
        let other = dev.try_run(&[&["push"][..], &cd, &["localhost/app:2.0", &image("acme/app:2.0")]].concat());
        assert!(
            !other.status.success(),
            "pusher on web cannot push to the org push product"
        );

        // Viewer: pull yes, push no.
        let viewer = Podman::new();
        viewer.import_files("localhost/app:3.0", &[("etc/release", b"three")]);
        assert!(login(&viewer, "watcher", USER_PASSWORD).status.success());
        viewer.run(&[&["pull"][..], &cd, &[&image("acme/web/app:2.0")]].concat());
        let push = viewer.try_run(&[&["push"][..], &cd, &["localhost/app:3.0", &image("acme/web/app:3.0")]].concat());
        assert!(!push.status.success(), "viewer push must fail");
        let out = text(&push);
        assert!(out.contains("denied") || out.contains("unauthorized"), "{out}");

        // Pull secret: podman login -u NAME -p SECRET, pull yes, push no, other product no.
        let robot = Podman::new();
        robot.import_files("localhost/app:4.0", &[("etc/release", b"four")]);
        assert!(login(&robot, &secret_user, &secret).status.success());
        robot.run(&[&["pull"][..], &cd, &[&image("acme/web/app:1.0")]].concat());
        let push = robot.try_run(&[&["push"][..], &cd, &["localhost/app:4.0", &image("acme/web/app:4.0")]].concat());
        assert!(!push.status.success(), "pull secret push must fail");
        let elsewhere = robot.try_run(&[&["pull"][..], &cd, &[&image("acme/app:1.0")]].concat());
        assert!(
            !elsewhere.status.success(),
            "pull secret scoped to web cannot pull other products"
        );

        // Anonymous: a public product pulls without login; a private one does not.
        let anon = Podman::new();
        anon.run(&[&["pull"][..], &cd, &[&image("acme/pub/tool:1.0")]].concat());
        let private = anon.try_run(&[&["pull"][..], &cd, &[&image("acme/web/app:1.0")]].concat());
        assert!(!private.status.success(), "anonymous cannot pull a private product");

        // What was pulled is what was pushed.
        let saved = dev.save_archive(&image("acme/web/app:1.0"));
        assert!(saved.windows(3).any(|w| w == b"one"));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_copies_with_src_and_dest_creds() {
    let site = site().await;
    let host = site.gw.host();
    let cert_dir = site.cert_dir.path().to_str().unwrap().to_owned();
    let layout = tempfile::tempdir().unwrap();
    let config = common::config_blob("amd64");
    let layer = common::random_bytes(300_000, 77);
    let manifest = common::image_manifest(&config, &[&layer], json!({}));
    common::write_oci_layout(
        layout.path(),
        &[&config, &layer],
        &[(&manifest, common::OCI_MANIFEST, "v1")],
    );
    let out = tempfile::tempdir().unwrap();
    let (layout_path, out_path) = (layout.path().to_owned(), out.path().to_owned());
    let (secret_user, secret) = (site.secret_user.clone(), site.secret.clone());
    tokio::task::spawn_blocking(move || {
        let skopeo = Skopeo::new();
        let dest = format!("docker://{host}/acme/web/app:v1");
        let dev_creds = format!("dev:{USER_PASSWORD}");
        skopeo.copy_verified(
            &[
                "--preserve-digests",
                "--dest-cert-dir",
                &cert_dir,
                "--dest-creds",
                &dev_creds,
            ],
            &format!("oci:{}:v1", layout_path.display()),
            &dest,
        );
        let robot_creds = format!("{secret_user}:{secret}");
        skopeo.copy_verified(
            &[
                "--preserve-digests",
                "--src-cert-dir",
                &cert_dir,
                "--src-creds",
                &robot_creds,
            ],
            &dest,
            &format!("oci:{}:v1", out_path.display()),
        );
        // The pull secret cannot write.
        let refused = skopeo.try_copy(
            &["--dest-cert-dir", &cert_dir, "--dest-creds", &robot_creds],
            &format!("oci:{}:v1", layout_path.display()),
            &format!("docker://{host}/acme/web/app:robot"),
        );
        assert!(!refused.status.success(), "{}", text(&refused));
        // Wrong credentials are refused as such.
        let bad = skopeo.try_copy(
            &["--src-cert-dir", &cert_dir, "--src-creds", "dev:wrong-password"],
            &dest,
            &format!("oci:{}:bad", out_path.display()),
        );
        assert!(!bad.status.success());
    })
    .await
    .unwrap();
    assert_eq!(common::layout_blob(out.path(), &common::digest(&layer)), layer);
    assert_eq!(common::layout_blob(out.path(), &common::digest(&manifest)), manifest);
}
