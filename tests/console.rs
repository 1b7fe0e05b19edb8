//! The web console in a real browser (Debian's headless Chromium through chromedriver):
//! log in, browse an organisation's repositories to an image pushed with the OCI
//! protocol, remove a tag and roll back through the forms; a viewer sees no actions
//! and a forged form post of theirs is refused; what users typed stays inert text;
//! logging out and a password change end sessions. Screenshots of the pages are saved
//! (see `save_screenshot`).

mod common;

use common::browser::Browser;
use common::gateway::{TestGateway, USER_PASSWORD, push_image_with};
use serde_json::json;

async fn site() -> TestGateway {
    let gw = TestGateway::start_tls().await;
    gw.admin(
        "POST",
        "/api/v1/orgs",
        json!({"label": "acme", "name": "ACME <script>document.title='pwned'</script>"}),
    )
    .await;
    gw.create_product("acme", "web", false).await;
    gw.create_member("dev", "acme", "pusher", Some("web")).await;
    gw.create_member("watcher", "acme", "viewer", Some("web")).await;
    let token = gw
        .token(Some(("dev", USER_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    for (tag, seed) in [("1.0", 1), ("2.0", 2)] {
        assert_eq!(push_image_with(&gw, &token, "acme/web/app", tag, seed).await.0, 201);
    }
    gw
}

/// Screenshots go to `target/screenshots`, or to `$GATEHOUSE_SCREENSHOTS` (the README's
/// are made with `GATEHOUSE_SCREENSHOTS=docs/screenshots`).
fn save_screenshot(name: &str, png: &[u8]) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = match std::env::var_os("GATEHOUSE_SCREENSHOTS") {
        Some(d) => root.join(d),
        None => root.join("target/screenshots"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pusher_browses_to_an_image_removes_a_tag_and_rolls_back() {
    let gw = site().await;
    let base = gw.url("");
    let b = Browser::start().await;

    // Not logged in: sent to the login page, and back after.
    b.goto(&format!("{base}/ui/orgs/acme")).await;
    assert!(b.url().await.contains("/ui/login"), "{}", b.url().await);
    b.type_into("#username", "dev").await;
    b.type_into("#password", "wrong password").await;
    let submit = b.find("form button[type=submit]").await;
    b.click_to_load(&submit).await;
    let alert = b.find("[role=alert]").await;
    assert!(b.text(&alert).await.contains("Wrong username or password"));
    b.log_in(&base, "dev", USER_PASSWORD).await;
    b.wait_url(|u| u.ends_with("/ui/")).await;
    let source = b.source().await;
    assert!(
        source.contains("ACME &lt;script&gt;"),
        "the organisation's name is shown as text"
    );
    save_screenshot("organisations.png", &b.screenshot().await);

    let acme = b.find("a[href='/ui/orgs/acme']").await;
    b.click_to_load(&acme).await;
    let repo = b.find("a[href='/ui/repos/acme/web/app']").await;
    assert_eq!(b.text(&repo).await, "acme/web/app");
    save_screenshot("repositories.png", &b.screenshot().await);
    b.click_to_load(&repo).await;

    // The images tab: each tag with the exact pull command.
    // The registry host the browser used (the request's Host: no public_url is set).
    let host = base.trim_start_matches("https://").trim_end_matches('/').to_owned();
    let commands: Vec<String> = {
        let mut out = Vec::new();
        for e in b.find_all(".pull code").await {
            out.push(b.text(&e).await);
        }
        out
    };
    assert_eq!(
        commands,
        [
            format!("podman pull {host}/acme/web/app:1.0"),
            format!("podman pull {host}/acme/web/app:2.0")
        ]
    );
    let copy = b.find("button[data-copy]").await;
    assert_eq!(
        b.attr(&copy, "hidden").await,
        None,
        "the copy button is shown once the script runs"
    );
    save_screenshot("repository.png", &b.screenshot().await);

    // Remove tag 2.0 (confirmed), then roll back to the version before.
    let buttons = b.find_all("form[action$='/untag'] button").await;
    assert_eq!(buttons.len(), 2);
    assert_eq!(
        b.attr(&buttons[1], "aria-label").await.as_deref(),
        Some("Remove tag 2.0")
    );
    b.click_confirmed(&buttons[1]).await;
    let status = b.find("[role=status]").await;
    assert!(b.text(&status).await.contains("Tag removed"));
    assert_eq!(b.find_all(".pull code").await.len(), 1, "2.0 is gone");

    b.goto(&format!("{base}/ui/repos/acme/web/app?tab=versions")).await;
    let rows = b.find_all("tbody tr").await;
    assert_eq!(rows.len(), 3, "push 1.0, push 2.0, delete tag 2.0");
    assert!(b.text(&rows[0]).await.contains("latest"));
    save_screenshot("versions.png", &b.screenshot().await);
    let compare = b.find_with_text("form button", "Compare").await.unwrap();
    b.click_to_load(&compare).await;
    let row = b.text(&b.find("table.compare tbody tr").await).await;
    assert!(row.starts_with("2.0") && row.contains("absent"), "{row}");
    b.goto(&format!("{base}/ui/repos/acme/web/app?tab=versions")).await;
    let back = b
        .find_with_text("form[action$='/rollback'] button", "Roll back to 2")
        .await
        .expect("a rollback button for version 2");
    b.click_confirmed(&back).await;
    let status = b.find("[role=status]").await;
    assert!(b.text(&status).await.contains("Rolled back"));
    b.goto(&format!("{base}/ui/repos/acme/web/app")).await;
    assert_eq!(b.find_all(".pull code").await.len(), 2, "2.0 is back");

    // Logging out ends the session: the pages ask to log in again.
    let logout = b.find("header form button").await;
    b.click_to_load(&logout).await;
    b.wait_url(|u| u.contains("/ui/login")).await;
    b.goto(&format!("{base}/ui/orgs/acme")).await;
    assert!(b.url().await.contains("/ui/login"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_sees_no_actions_and_a_forged_post_is_refused() {
    let gw = site().await;
    let base = gw.url("");
    let b = Browser::start().await;
    b.log_in(&base, "watcher", USER_PASSWORD).await;
    b.goto(&format!("{base}/ui/repos/acme/web/app")).await;
    assert_eq!(b.find_all(".pull code").await.len(), 2);
    assert!(
        b.find_all("form[action$='/untag']").await.is_empty(),
        "no remove buttons"
    );
    assert!(b.find_all("#delete-repository").await.is_empty(), "no delete button");
    b.goto(&format!("{base}/ui/repos/acme/web/app?tab=versions")).await;
    assert!(
        b.find_all("form[action$='/rollback']").await.is_empty(),
        "no rollback buttons"
    );

    // A crafted form post with the viewer's own valid CSRF token: the API refuses it.
    let status = b
        .run_async(
            "const done = arguments[0];
             const csrf = document.querySelector('header input[name=csrf]').value;
             fetch('/ui/repos/acme/web/app/untag', {method: 'POST',
                   body: new URLSearchParams({csrf: csrf, tag: '1.0'})})
               .then(r => done(r.status));",
        )
        .await;
    assert_eq!(status, 403);
    // And one without the token is refused before anything is asked.
    let status = b
        .run_async(
            "const done = arguments[0];
             fetch('/ui/repos/acme/web/app/untag', {method: 'POST',
                   body: new URLSearchParams({csrf: 'forged', tag: '1.0'})})
               .then(r => done(r.status));",
        )
        .await;
    assert_eq!(status, 403);
    // Nor may the viewer delete the repository with a forged post.
    let status = b
        .run_async(
            "const done = arguments[0];
             const csrf = document.querySelector('header input[name=csrf]').value;
             fetch('/ui/repos/acme/web/app/delete', {method: 'POST',
                   body: new URLSearchParams({csrf: csrf})})
               .then(r => done(r.status));",
        )
        .await;
    assert_eq!(status, 403);
    b.goto(&format!("{base}/ui/repos/acme/web/app")).await;
    assert_eq!(b.find_all(".pull code").await.len(), 2, "nothing was removed");
    assert!(b.find_with_text("header nav a", "Administration").await.is_none());
    b.goto(&format!("{base}/ui/admin?tab=users")).await;
    let h1 = b.text(&b.find("h1").await).await;
    assert_eq!(h1, "Not allowed", "a viewer cannot list users");

    // A password change ends the viewer's session.
    gw.admin(
        "PUT",
        "/api/v1/users/watcher/password",
        json!({"password": "a-new-password-1234"}),
    )
    .await;
    b.goto(&format!("{base}/ui/repos/acme/web/app")).await;
    assert!(b.url().await.contains("/ui/login"), "{}", b.url().await);
}

/// A global admin creates an organisation and a product, adds a member, and creates a
/// pull secret whose downloaded config.json podman then pulls with; revoking it stops
/// that; a name with markup in an error message stays text.
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_sets_up_an_org_and_a_pull_secret_that_podman_uses() {
    let gw = TestGateway::start_tls().await;
    let (s, _) = gw
        .api(
            "POST",
            "/api/v1/users",
            ("admin", common::gateway::ADMIN_PASSWORD),
            Some(json!({"username": "dev", "password": USER_PASSWORD})),
        )
        .await;
    assert_eq!(s, 201);
    let base = gw.url("");
    let b = Browser::start().await;
    b.log_in(&base, "admin", common::gateway::ADMIN_PASSWORD).await;

    b.type_into("#org-label", "globex").await;
    b.type_into("#org-name", "Globex Corporation").await;
    let create = b.find_with_text("form button", "Create organisation").await.unwrap();
    b.click_to_load(&create).await;
    b.wait_url(|u| u.contains("/ui/orgs/globex?tab=products")).await;
    b.type_into("#label", "web").await;
    let create = b.find_with_text("form button", "Create product").await.unwrap();
    b.click_to_load(&create).await;
    let status = b.find("[role=status]").await;
    assert!(b.text(&status).await.contains("Product created"));

    b.goto(&format!("{base}/ui/orgs/globex?tab=access")).await;
    b.type_into("#member-username", "dev").await;
    let role = b.find("#member-role option[value=pusher]").await;
    b.click(&role).await;
    let scope = b.find("#member-product option[value=web]").await;
    b.click(&scope).await;
    let add = b.find_with_text("form button", "Add member").await.unwrap();
    b.click_to_load(&add).await;
    let status = b.find("[role=status]").await;
    assert!(b.text(&status).await.contains("Member added"));
    let row = b.find_with_text("tbody tr", "dev").await.expect("dev is listed");
    assert!(b.text(&row).await.contains("pusher"));

    // A name the API refuses: its error is shown, and the markup in it is text.
    b.type_into("#secret-name", "<img src=x onerror=alert(1)>").await;
    let create = b.find_with_text("form button", "Create pull secret").await.unwrap();
    b.click_to_load(&create).await;
    let alert = b.find("[role=alert]").await;
    assert!(!b.text(&alert).await.is_empty());
    assert!(b.find_all("main img").await.is_empty(), "no element made from the name");

    b.goto(&format!("{base}/ui/orgs/globex?tab=access")).await;
    b.type_into("#secret-name", "ci").await;
    let web = b.find("input[name=products][value=web]").await;
    b.click(&web).await;
    let create = b.find_with_text("form button", "Create pull secret").await.unwrap();
    b.click_to_load(&create).await;
    let username = b.text(&b.find("#secret-username").await).await;
    assert_eq!(username, "globex-ci");
    let href = b.attr(&b.find("#download-config").await, "href").await.unwrap();
    let config = {
        use base64::Engine;
        let b64 = href.strip_prefix("data:application/json;base64,").unwrap();
        base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
    };
    save_screenshot("pull-secret.png", &b.screenshot().await);
    let yaml_href = b.attr(&b.find("#download-k8s").await, "href").await.unwrap();
    assert!(yaml_href.starts_with("data:application/yaml;base64,"));

    // dev pushes with podman; a machine with only the downloaded config pulls.
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(gw.ca_cert(), certs.join("ca.crt")).unwrap();
    let host = base.trim_start_matches("https://").trim_end_matches('/').to_owned();
    let image = format!("{host}/globex/web/app:1.0");
    let cd = certs.to_str().unwrap().to_owned();
    tokio::task::block_in_place(|| {
        let dev = common::clients::Podman::new();
        dev.import_files("localhost/app:1.0", &[("etc/hello", b"hello".as_slice())]);
        dev.run(&["login", "--cert-dir", &cd, "-u", "dev", "-p", USER_PASSWORD, &host]);
        dev.run(&["push", "--cert-dir", &cd, "localhost/app:1.0", &image]);
    });
    let authfile = dir.path().join("config.json");
    std::fs::write(&authfile, &config).unwrap();
    let pull = || {
        common::clients::Podman::new().try_run(&[
            "pull",
            "--authfile",
            authfile.to_str().unwrap(),
            "--cert-dir",
            &cd,
            &image,
        ])
    };
    let out = tokio::task::block_in_place(pull);
    assert!(
        out.status.success(),
        "podman pulls with the downloaded config: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What podman pushed shows in the console: the tag, its layers, the version.
    b.goto(&format!("{base}/ui/repos/globex/web/app")).await;
    let tag = b.find_with_text("tbody td a", "1.0").await.expect("the pushed tag");
    b.click_to_load(&tag).await;
    let main = b.text(&b.find("main").await).await;
    assert!(main.contains("Layers (1,"), "{main}");
    b.goto(&format!("{base}/ui/repos/globex/web/app?tab=versions")).await;
    let main = b.text(&b.find("main").await).await;
    assert!(main.contains("push 1.0"), "{main}");

    b.goto(&format!("{base}/ui/orgs/globex?tab=access")).await;
    let revoke = b.find("button[aria-label='Revoke ci']").await;
    b.click_confirmed(&revoke).await;
    let status = b.find("[role=status]").await;
    assert!(b.text(&status).await.contains("revoked"));
    let out = tokio::task::block_in_place(pull);
    assert!(!out.status.success(), "a revoked pull secret no longer pulls");

    // The audit log, filtered by action, and by a time range with nothing in it.
    b.goto(&format!("{base}/ui/orgs/globex?tab=audit&action=revoke_pull_secret"))
        .await;
    let rows = b.find_all("tbody tr").await;
    assert_eq!(rows.len(), 1);
    let row = b.text(&rows[0]).await;
    assert!(row.contains("admin") && row.contains("globex-ci"), "{row}");
    save_screenshot("audit.png", &b.screenshot().await);
    b.goto(&format!("{base}/ui/orgs/globex?tab=audit&until=2000-01-01"))
        .await;
    assert!(b.find_with_text("main p", "No events").await.is_some());
}

/// An org admin creates a remote on Debian's docker-registry through the form, starts
/// its sync, and watches the job page (it reloads itself) until it is done; the
/// repository then lists the synced tag and shows as mirrored.
#[tokio::test(flavor = "multi_thread")]
async fn an_org_admin_creates_a_remote_and_watches_its_sync_complete() {
    let gw = site().await;
    gw.create_member("acme-admin", "acme", "org_admin", None).await;
    let dist = common::distribution::start_distribution();
    common::distribution::push_plain(&dist.base, "library/tool", "3.1", &[common::random_bytes(4096, 9)]).await;
    common::distribution::push_plain(&dist.base, "library/tool", "4.0-rc", &[common::random_bytes(4096, 10)]).await;
    let base = gw.url("");
    let b = Browser::start().await;
    b.log_in(&base, "acme-admin", USER_PASSWORD).await;
    b.goto(&format!("{base}/ui/orgs/acme?tab=remotes")).await;
    let web = b.find("#remote-product option[value=web]").await;
    b.click(&web).await;
    b.type_into("#remote-name", "tool").await;
    b.type_into("#remote-url", &dist.base).await;
    b.type_into("#remote-upstream", "library/tool").await;
    b.type_into("#remote-exclude", "*-rc*").await;
    let create = b.find_with_text("form button", "Create remote").await.unwrap();
    b.click_to_load(&create).await;
    let status = b.find("[role=status]").await;
    assert!(b.text(&status).await.contains("Remote created"));

    let sync = b.find("button[aria-label='Sync tool now']").await;
    b.click_to_load(&sync).await;
    b.wait_url(|u| u.contains("/ui/jobs/")).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let state = b.text(&b.find("#job-state").await).await;
        if state == "done" {
            break;
        }
        assert_ne!(state, "failed", "{}", b.source().await);
        assert!(std::time::Instant::now() < deadline, "the sync did not finish: {state}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let main = b.text(&b.find("main").await).await;
    assert!(main.contains("Made version 1"), "{main}");
    save_screenshot("sync.png", &b.screenshot().await);

    b.goto(&format!("{base}/ui/repos/acme/web/tool")).await;
    let mirror = b.text(&b.find("#mirror").await).await;
    assert!(
        mirror.contains("Mirrored from") && mirror.contains("library/tool") && mirror.contains("done"),
        "{mirror}"
    );
    b.goto(&format!("{base}/ui/orgs/acme")).await;
    let row = b.find_with_text("tbody tr", "acme/web/tool").await.expect("listed");
    assert!(b.text(&row).await.contains("mirrored"));
    b.goto(&format!("{base}/ui/repos/acme/web/tool")).await;
    let commands = b.find_all(".pull code").await;
    assert_eq!(commands.len(), 1, "4.0-rc is excluded");
    assert!(b.text(&commands[0]).await.ends_with("/acme/web/tool:3.1"));

    // Edit the remote to take release candidates too; the next sync brings 4.0-rc.
    b.goto(&format!("{base}/ui/orgs/acme?tab=remotes")).await;
    let edit = b.find("a[aria-label='Edit tool']").await;
    b.click_to_load(&edit).await;
    b.clear("#remote-exclude").await;
    let save = b.find_with_text("form button", "Save remote").await.unwrap();
    b.click_to_load(&save).await;
    let status = b.find("[role=status]").await;
    assert!(b.text(&status).await.contains("Remote saved"));
    let job = gw.sync_remote("acme/web", "tool").await;
    assert_eq!(job["state"], "done", "{job}");
    b.goto(&format!("{base}/ui/repos/acme/web/tool")).await;
    assert_eq!(b.find_all(".pull code").await.len(), 2, "3.1 and 4.0-rc");
}

/// An index expands into its platforms, an image shows its config and layers, a pusher
/// adds a tag from the image page, and the version it made lists what it added.
#[tokio::test(flavor = "multi_thread")]
async fn images_and_indexes_are_inspected_and_tagged() {
    let gw = site().await;
    let token = gw
        .token(Some(("dev", USER_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    let (_, amd) = push_image_with(&gw, &token, "acme/web/app", "amd", 11).await;
    let (_, arm) = push_image_with(&gw, &token, "acme/web/app", "arm", 12).await;
    let index = common::index_manifest(&[(&amd, "amd64"), (&arm, "arm64")]);
    let r = gw
        .client()
        .put(gw.url("/v2/acme/web/app/manifests/multi"))
        .bearer_auth(&token)
        .header("content-type", common::OCI_INDEX)
        .body(index)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // An image whose annotation carries markup.
    let mut annotated: serde_json::Value = serde_json::from_slice(&amd).unwrap();
    annotated["annotations"] =
        json!({"org.opencontainers.image.description": "<script>document.title='pwned'</script>"});
    let r = gw
        .client()
        .put(gw.url("/v2/acme/web/app/manifests/annotated"))
        .bearer_auth(&token)
        .header("content-type", common::OCI_MANIFEST)
        .body(annotated.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    gw.admin("POST", "/api/v1/orgs/acme/signing-keys", json!({"name": "release"}))
        .await;

    let base = gw.url("");
    let b = Browser::start().await;
    b.log_in(&base, "dev", USER_PASSWORD).await;
    b.goto(&format!("{base}/ui/repos/acme/web/app")).await;
    let annotated = b.find_with_text("tbody td a", "annotated").await.unwrap();
    b.click_to_load(&annotated).await;
    let cell = b.find("table.annotations tbody td:last-child").await;
    assert_eq!(b.text(&cell).await, "<script>document.title='pwned'</script>");
    assert!(b.find_all("table.annotations script").await.is_empty());
    assert_ne!(b.run_async("arguments[0](document.title)").await, "pwned");
    b.goto(&format!("{base}/ui/repos/acme/web/app")).await;
    let multi = b.find_with_text("tbody td a", "multi").await.expect("the index's tag");
    b.click_to_load(&multi).await;
    let rows = b.find_all("tbody tr").await;
    let mut platforms = Vec::new();
    for r in &rows {
        platforms.push(b.text(r).await);
    }
    assert_eq!(platforms.len(), 2, "{platforms:?}");
    assert!(platforms[0].starts_with("linux/amd64"), "{platforms:?}");
    assert!(platforms[1].starts_with("linux/arm64"), "{platforms:?}");
    let first = b.find("tbody td a").await;
    b.click_to_load(&first).await;
    let main = b.text(&b.find("main").await).await;
    assert!(main.contains("Platform: linux/amd64"), "{main}");
    assert!(main.contains("Layers (1, 2.0 KiB)"), "{main}");
    save_screenshot("image.png", &b.screenshot().await);

    b.type_into("#new-tag", "stable").await;
    let add = b.find_with_text("form button", "Add tag").await.unwrap();
    b.click_to_load(&add).await;
    let status = b.find("[role=status]").await;
    assert!(b.text(&status).await.contains("Tag added"));
    assert!(b.find_with_text("tbody td a", "stable").await.is_some());

    // Sign the new tag with the organisation's key from the repository page.
    let stable = b.find("#sign-tag option[value=stable]").await;
    b.click(&stable).await;
    let sign = b.find_with_text("form button", "Sign").await.unwrap();
    b.click_to_load(&sign).await;
    let status = b.find("[role=status]").await;
    assert!(b.text(&status).await.contains("Signed"));
    let row = b.find_with_text("tbody tr", "stable").await.unwrap();
    assert!(b.text(&row).await.contains("atomic: release"), "{}", b.text(&row).await);
    // The version that added the tag lists it.
    b.goto(&format!("{base}/ui/repos/acme/web/app?tab=versions")).await;
    let latest = b.find_all("tbody tr td a").await[1].clone();
    b.click_to_load(&latest).await;
    let main = b.text(&b.find("main").await).await;
    assert!(main.contains("tag stable"), "{main}");

    // A README with markup and a script address: rendered Markdown, nothing active.
    b.goto(&format!("{base}/ui/repos/acme/web/app?tab=readme")).await;
    b.type_into(
        "#readme",
        "# Hello app\n\n<script>document.title='pwned'</script>\n\n[docs](javascript:document.title='pwned') [site](https://example.com/)",
    )
    .await;
    let save = b.find_with_text("form button", "Save README").await.unwrap();
    b.click_to_load(&save).await;
    let status = b.find("[role=status]").await;
    assert!(b.text(&status).await.contains("README saved"));
    let heading = b.find("section.readme h1").await;
    assert_eq!(b.text(&heading).await, "Hello app");
    assert!(b.find_all("section.readme script").await.is_empty());
    let docs = b.find_with_text("section.readme a", "docs").await.unwrap();
    assert_eq!(b.attr(&docs, "href").await.as_deref(), Some("#"));
    b.click(&docs).await;
    let title = b.run_async("arguments[0](document.title)").await;
    assert_ne!(title, "pwned");
    save_screenshot("readme.png", &b.screenshot().await);
}

/// Failed logins are limited per address and user: the eleventh attempt is refused
/// even with the right password, and says why.
#[tokio::test]
async fn failed_logins_are_limited() {
    let gw = TestGateway::start_tls().await;
    gw.create_org("acme").await;
    gw.create_member("dev", "acme", "viewer", None).await;
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(gw.ca_cert()).unwrap()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let attempt = async |password: &str| {
        let form = c.get(gw.url("/ui/login")).send().await.unwrap();
        let cookie = form.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let html = form.text().await.unwrap();
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        let r = c
            .post(gw.url("/ui/login"))
            .header("cookie", cookie)
            .form(&[
                ("username", "dev"),
                ("password", password),
                ("csrf", &csrf),
                ("next", "/ui/"),
            ])
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    for _ in 0..10 {
        assert_eq!(attempt("wrong password").await.0, 401);
    }
    let (status, page) = attempt(USER_PASSWORD).await;
    assert_eq!(status, 429);
    assert!(page.contains("Too many failed logins"), "{page}");
}

/// On a phone's screen (390 px wide) no page is wider than the screen (wide tables
/// scroll in their own box), every field has a label, and everything a mouse can use is
/// reachable with the keyboard; the org admin then deletes the repository from its page.
#[tokio::test(flavor = "multi_thread")]
async fn pages_fit_a_phone_and_an_org_admin_deletes_a_repository() {
    let gw = site().await;
    gw.create_member("boss", "acme", "org_admin", None).await;
    let base = gw.url("");
    let b = Browser::start().await;
    b.set_window_size(390, 844).await;
    b.log_in(&base, "admin", common::gateway::ADMIN_PASSWORD).await;
    let digest = {
        let (_, v) = gw
            .api(
                "GET",
                "/api/v1/repositories/acme/web/app/signatures",
                ("admin", common::gateway::ADMIN_PASSWORD),
                None,
            )
            .await;
        v["tags"][0]["digest"].as_str().unwrap().to_owned()
    };
    let pages = [
        "/ui/".to_owned(),
        "/ui/orgs/acme".to_owned(),
        "/ui/orgs/acme?tab=products".to_owned(),
        "/ui/orgs/acme?tab=access".to_owned(),
        "/ui/orgs/acme?tab=remotes".to_owned(),
        "/ui/orgs/acme?tab=audit".to_owned(),
        "/ui/repos/acme/web/app".to_owned(),
        "/ui/repos/acme/web/app?tab=versions".to_owned(),
        "/ui/repos/acme/web/app?tab=readme".to_owned(),
        format!("/ui/repos/acme/web/app/manifests/{digest}"),
        "/ui/repos/acme/web/app/versions/1".to_owned(),
        "/ui/admin".to_owned(),
        "/ui/admin?tab=users".to_owned(),
    ];
    for page in &pages {
        b.goto(&format!("{base}{page}")).await;
        let check = b
            .run(
                "const wide = document.documentElement.scrollWidth > window.innerWidth + 1;
                 const unlabelled = [...document.querySelectorAll('input, select, textarea')]
                   .filter(e => e.type !== 'hidden' && !e.hidden)
                   .filter(e => !e.getAttribute('aria-label') && !(e.id && document.querySelector(`label[for='${e.id}']`)) && !e.closest('label'))
                   .map(e => e.outerHTML);
                 const unreachable = [...document.querySelectorAll('a[href], button, input, select, textarea, summary')]
                   .filter(e => e.type !== 'hidden' && !e.hidden && e.tabIndex < 0)
                   .map(e => e.outerHTML);
                 const overflowing = [...document.querySelectorAll('body *')]
                   .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !(e.parentElement && e.parentElement.closest('.table-wrap')) && !e.closest('.visually-hidden'))
                   .slice(0, 5)
                   .map(e => e.outerHTML.slice(0, 200));
                 return {wide: wide, width: document.documentElement.scrollWidth, overflowing: overflowing,
                         unlabelled: unlabelled, unreachable: unreachable};",
            )
            .await;
        if check["wide"] == true {
            save_screenshot("phone-too-wide.png", &b.screenshot().await);
        }
        assert_eq!(check["wide"], false, "{page} is wider than a phone: {check}");
        assert_eq!(check["unlabelled"], json!([]), "{page}: fields without a label");
        assert_eq!(
            check["unreachable"],
            json!([]),
            "{page}: controls the keyboard cannot reach"
        );
    }
    b.goto(&format!("{base}/ui/repos/acme/web/app")).await;
    save_screenshot("phone-repository.png", &b.screenshot().await);

    // A pusher sees no Delete; the org admin does, and deleting (confirmed) takes the
    // repository out of the organisation's list.
    let logout = b.find("header form button").await;
    b.click_to_load(&logout).await;
    b.log_in(&base, "dev", USER_PASSWORD).await;
    b.goto(&format!("{base}/ui/repos/acme/web/app")).await;
    assert!(
        b.find_all("#delete-repository").await.is_empty(),
        "a pusher cannot delete it"
    );
    let logout = b.find("header form button").await;
    b.click_to_load(&logout).await;
    b.log_in(&base, "boss", USER_PASSWORD).await;
    b.goto(&format!("{base}/ui/repos/acme/web/app")).await;
    let form = b.find("form[action$='/delete']").await;
    assert!(
        b.attr(&form, "data-confirm")
            .await
            .unwrap()
            .contains("cannot be undone"),
        "deleting asks first"
    );
    let delete = b.find("#delete-repository").await;
    b.click_confirmed(&delete).await;
    let status = b.find("[role=status]").await;
    assert!(b.text(&status).await.contains("Repository deleted"));
    assert!(b.find_all("a[href='/ui/repos/acme/web/app']").await.is_empty());
    b.goto(&format!("{base}/ui/repos/acme/web/app")).await;
    assert!(
        b.find_all(".pull code").await.len() == 1,
        "only the push command is left"
    );
    assert!(b.source().await.contains("No tags yet"));
}
