//! The web console in a real browser (Debian's headless Chromium through chromedriver):
//! log in, browse an organisation's repositories to an image pushed with the OCI
//! protocol, remove a tag and roll back through the forms; a viewer sees no actions
//! and a forged form post of theirs is refused; what users typed stays inert text;
//! logging out and a password change end sessions. Screenshots of the pages go to
//! `docs/screenshots/`.

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

fn save_screenshot(name: &str, png: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
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
    b.click(&submit).await;
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
    b.click(&acme).await;
    let repo = b.find("a[href='/ui/repos/acme/web/app']").await;
    assert_eq!(b.text(&repo).await, "acme/web/app");
    save_screenshot("repositories.png", &b.screenshot().await);
    b.click(&repo).await;

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
    b.click(&buttons[1]).await;
    b.accept_dialog().await;
    let status = b.find("[role=status]").await;
    assert!(b.text(&status).await.contains("Tag removed"));
    assert_eq!(b.find_all(".pull code").await.len(), 1, "2.0 is gone");

    b.goto(&format!("{base}/ui/repos/acme/web/app?tab=versions")).await;
    let rows = b.find_all("tbody tr").await;
    assert_eq!(rows.len(), 3, "push 1.0, push 2.0, delete tag 2.0");
    assert!(b.text(&rows[0]).await.contains("latest"));
    save_screenshot("versions.png", &b.screenshot().await);
    let back = b
        .find_with_text("form[action$='/rollback'] button", "Roll back to 2")
        .await
        .expect("a rollback button for version 2");
    b.click(&back).await;
    b.accept_dialog().await;
    let status = b.find("[role=status]").await;
    assert!(b.text(&status).await.contains("Rolled back"));
    b.goto(&format!("{base}/ui/repos/acme/web/app")).await;
    assert_eq!(b.find_all(".pull code").await.len(), 2, "2.0 is back");

    // Logging out ends the session: the pages ask to log in again.
    let logout = b.find("header form button").await;
    b.click(&logout).await;
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
    b.goto(&format!("{base}/ui/repos/acme/web/app")).await;
    assert_eq!(b.find_all(".pull code").await.len(), 2, "nothing was removed");

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
