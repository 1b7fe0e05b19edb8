//! The gateway's token protocol and authorization, at protocol level against a real
//! gateway: challenges, the token endpoint, scopes, policies, pull secrets, attacks.

mod common;

use common::gateway::{ADMIN_PASSWORD, TestGateway, USER_PASSWORD, claims_of, push_image_with};
use common::{OCI_MANIFEST, http};
use gatehouse::gateway::scope::Access;
use gatehouse::gateway::token::{Claims, new_jti, now_secs};
use serde_json::{Value, json};

fn www_authenticate(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// An org `acme` with products `web` (private) and `pub` (public), and users:
/// `acme-admin` (org_admin), `dev` (pusher on web), `watcher` (viewer on web).
async fn acme() -> TestGateway {
    let gw = TestGateway::start().await;
    gw.create_org("acme").await;
    gw.create_product("acme", "web", false).await;
    gw.create_product("acme", "pub", true).await;
    gw.create_member("acme-admin", "acme", "org_admin", None).await;
    gw.create_member("dev", "acme", "pusher", Some("web")).await;
    gw.create_member("watcher", "acme", "viewer", Some("web")).await;
    gw
}

#[tokio::test]
async fn ping_challenges_then_accepts_a_token_from_the_realm() {
    let gw = acme().await;
    let c = http();
    let r = c.get(gw.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = www_authenticate(&r);
    let realm = format!("http://{}/v2/token", gw.addr);
    assert_eq!(challenge, format!(r#"Bearer realm="{realm}",service="gatehouse""#));
    assert_eq!(r.headers()["docker-distribution-api-version"], "registry/2.0");

    // podman login: token with Basic credentials and no scope, then the ping again.
    let (status, body) = gw.token_request(Some(("dev", USER_PASSWORD)), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["token"], body["access_token"]);
    assert!(body["expires_in"].as_u64().unwrap() >= 60);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    let token = body["token"].as_str().unwrap();
    let header: Value = {
        use base64::Engine;
        let h = token.split('.').next().unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
    };
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].is_string());
    let claims = claims_of(token);
    for k in ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "access"] {
        assert!(claims.get(k).is_some(), "claim {k} in {claims}");
    }
    assert_eq!(claims["sub"], "dev");
    assert_eq!(claims["aud"], "gatehouse");
    let r = c.get(gw.url("/v2/")).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // The JWKS publishes the key that signed it.
    let jwks: Value = c
        .get(gw.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == header["kid"])
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_401_and_no_token() {
    let gw = acme().await;
    for creds in [("dev", "wrong-password"), ("nobody", USER_PASSWORD), ("", "x")] {
        let (status, body) = gw.token_request(Some(creds), &["repository:acme/web/app:pull"]).await;
        assert_eq!(status, 401, "{creds:?}");
        assert!(body.get("token").is_none());
        assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    }
}

#[tokio::test]
async fn granted_actions_are_the_intersection_of_asked_and_allowed() {
    let gw = acme().await;
    let scope = "repository:acme/web/app:pull,push,delete";
    let grants = |t: &str| claims_of(t)["access"].clone();
    let dev = gw.token(Some(("dev", USER_PASSWORD)), &[scope]).await;
    assert_eq!(
        grants(&dev),
        json!([{"type": "repository", "name": "acme/web/app", "actions": ["pull", "push"]}])
    );
    let watcher = gw.token(Some(("watcher", USER_PASSWORD)), &[scope]).await;
    assert_eq!(grants(&watcher)[0]["actions"], json!(["pull"]));
    let admin = gw.token(Some(("acme-admin", USER_PASSWORD)), &[scope]).await;
    assert_eq!(grants(&admin)[0]["actions"], json!(["delete", "pull", "push"]));
    // Anonymous: nothing on a private product (left out, not an error); pull on a public one.
    let anon = gw.token(None, &[scope, "repository:acme/pub/tool:pull,push"]).await;
    assert_eq!(
        grants(&anon),
        json!([{"type": "repository", "name": "acme/pub/tool", "actions": ["pull"]}])
    );
    // A product-bound pusher gets nothing on another product of the org.
    let other = gw
        .token(Some(("dev", USER_PASSWORD)), &["repository:acme/other/app:pull,push"])
        .await;
    assert_eq!(grants(&other), json!([]));
}

#[tokio::test]
async fn pull_only_token_cannot_push_and_nothing_is_stored() {
    let gw = acme().await;
    let token = gw
        .token(Some(("watcher", USER_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    let (status, _) = push_image_with(&gw, &token, "acme/web/app", "1.0", 1).await;
    assert_eq!(status, 401);
    let c = http();
    let blob = common::random_bytes(64, 9);
    let r = c
        .post(gw.url(&format!(
            "/v2/acme/web/app/blobs/uploads/?digest={}",
            common::digest(&blob)
        )))
        .bearer_auth(&token)
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = www_authenticate(&r);
    assert!(
        challenge.contains(r#"scope="repository:acme/web/app:pull,push""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
    // Nothing reached the store.
    let admin = gw
        .token(Some(("admin", ADMIN_PASSWORD)), &["repository:acme/web/app:pull"])
        .await;
    let r = c
        .head(gw.url(&format!("/v2/acme/web/app/blobs/{}", common::digest(&blob))))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_token_for_one_repository_does_not_open_another() {
    let gw = acme().await;
    let admin = gw
        .token(Some(("admin", ADMIN_PASSWORD)), &["repository:acme/web/a:pull,push"])
        .await;
    let (status, _) = push_image_with(&gw, &admin, "acme/web/a", "1", 2).await;
    assert_eq!(status, 201);
    let r = http()
        .get(gw.url("/v2/acme/web/b/manifests/1"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = www_authenticate(&r);
    assert!(
        challenge.contains(r#"scope="repository:acme/web/b:pull""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"error="insufficient_scope""#));
}

#[tokio::test]
async fn forged_and_stale_tokens_are_rejected() {
    let gw = acme().await;
    let c = http();
    let now = now_secs();
    let good = Claims {
        iss: "gatehouse".into(),
        sub: "admin".into(),
        aud: "gatehouse".into(),
        exp: now + 300,
        nbf: now,
        iat: now,
        jti: new_jti(),
        access: vec![Access::new("repository", "acme/web/app", &["pull", "push"])],
        cid: Some(1),
    };
    // Sanity: the honest token built this way works.
    let honest = gw.forge(&good);
    let ok = c
        .get(gw.url("/v2/acme/web/app/tags/list"))
        .bearer_auth(&honest)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 404, "honest token reaches the store (unknown repository)");

    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let parts: Vec<&str> = honest.split('.').collect();
    let payload = serde_json::to_value(&good).unwrap();
    let alg_none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), parts[1]);
    // HS256 "signed" with the public key as the HMAC secret.
    let jwks = gw.gateway.jwks();
    let hs256 = {
        let key = serde_json::to_vec(&jwks["keys"][0]).unwrap();
        let header = b64(&json!({"alg": "HS256", "typ": "JWT", "kid": jwks["keys"][0]["kid"]}));
        let signing_input = format!("{header}.{}", parts[1]);
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
            signing_input.as_bytes(),
        );
        format!(
            "{signing_input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    };
    let tampered = {
        let mut p = payload.clone();
        p["access"][0]["name"] = json!("acme/web/other");
        format!("{}.{}.{}", parts[0], b64(&p), parts[2])
    };
    let expired = gw.forge(&Claims {
        exp: now - 120,
        iat: now - 600,
        nbf: now - 600,
        ..good.clone()
    });
    let future = gw.forge(&Claims {
        nbf: now + 600,
        ..good.clone()
    });
    let other_aud = gw.forge(&Claims {
        aud: "another-registry".into(),
        ..good.clone()
    });
    let other_iss = gw.forge(&Claims {
        iss: "someone-else".into(),
        ..good.clone()
    });
    let wrong_cid = gw.forge(&Claims {
        cid: Some(999),
        ..good.clone()
    });
    for (what, token) in [
        ("alg none", alg_none),
        ("HS256 with the public key", hs256),
        ("tampered access", tampered),
        ("expired", expired),
        ("future nbf", future),
        ("other audience", other_aud),
        ("other issuer", other_iss),
        ("credential id of nobody", wrong_cid),
        ("garbage", "not.a.jwt".to_owned()),
    ] {
        let r = c
            .get(gw.url("/v2/acme/web/app/tags/list"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{what}");
        assert!(www_authenticate(&r).contains(r#"error="invalid_token""#), "{what}");
        let r = c.get(gw.url("/v2/")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 401, "{what} on /v2/");
    }
}

#[tokio::test]
async fn malformed_scopes_and_basic_headers_are_client_errors() {
    let gw = acme().await;
    for scope in [
        "repository",
        "repository:acme/web/app",
        "repo sitory:x:pull",
        "repository::pull",
        "a:b:c d",
    ] {
        let (status, body) = gw.token_request(None, &[scope]).await;
        assert_eq!(status, 400, "{scope}: {body}");
        assert_eq!(body["errors"][0]["code"], "INVALID_REQUEST");
    }
    let c = http();
    // Credentials that cannot be read are a bad request, never an anonymous token:
    // bad base64, no colon, and bytes that are not visible ASCII (not even UTF-8).
    let headers: [&[u8]; 6] = [
        b"Basic !!!",
        b"Basic",
        b"Basic bm9jb2xvbg==",
        b"Basic \xff\xfe\xfd",
        b"Basic YWRtaW46\xc3\xa9",
        b"\x80\x81",
    ];
    for header in headers {
        let r = c
            .get(gw.url("/v2/token?service=gatehouse&scope=repository:acme/web/app:pull"))
            .header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(header).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{}", String::from_utf8_lossy(header));
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "INVALID_REQUEST", "{body}");
        assert!(body.get("token").is_none());
    }
    // At the registry and the admin API such a header is refused too, not ignored.
    let garbled = reqwest::header::HeaderValue::from_bytes(b"Bearer \xff").unwrap();
    let r = c
        .get(gw.url("/v2/acme/web/app/tags/list"))
        .header("authorization", garbled.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(gw.url("/api/v1/whoami"))
        .header("authorization", garbled)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("malformed"));
    let (status, _) = gw.token_request(None, &[]).await;
    assert_eq!(status, 200, "anonymous token without scope");
    let r = c.get(gw.url("/v2/token?service=elsewhere")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // Names that are not org/product/name or org/name.
    let admin = gw.token(Some(("admin", ADMIN_PASSWORD)), &[]).await;
    for path in [
        "/v2/acme/manifests/x",
        "/v2/a/b/c/d/manifests/x",
        "/v2/Acme/web/manifests/x",
    ] {
        let r = c.get(gw.url(path)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        assert_eq!(common::error_code(r).await, "NAME_INVALID");
    }
}

#[tokio::test]
async fn pull_secrets_pull_their_products_only_and_die_on_revocation() {
    let gw = acme().await;
    let admin = gw
        .token(Some(("admin", ADMIN_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    let (status, _) = push_image_with(&gw, &admin, "acme/web/app", "1.0", 3).await;
    assert_eq!(status, 201);

    let (user, secret, created) = gw
        .create_pull_secret(
            "acme",
            json!({"name": "ci-puller", "products": ["web"], "expires_in_days": 30}),
        )
        .await;
    assert_eq!(user, "acme-ci-puller");
    assert!(user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    // The docker config.json entry works as is.
    use base64::Engine;
    let auth = created["dockerconfigjson"]["auths"][format!("{}", gw.addr)]["auth"]
        .as_str()
        .expect("auths entry for the registry host");
    let decoded = base64::engine::general_purpose::STANDARD.decode(auth).unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), format!("{user}:{secret}"));
    // The secret is never listed again.
    let (_, list) = gw
        .api("GET", "/api/v1/orgs/acme/pull-secrets", ("admin", ADMIN_PASSWORD), None)
        .await;
    assert!(!list.to_string().contains(&secret));
    assert_eq!(list[0]["username"], user);

    let token = gw
        .token(
            Some((&user, &secret)),
            &["repository:acme/web/app:pull,push", "repository:acme/other/x:pull"],
        )
        .await;
    assert_eq!(
        claims_of(&token)["access"],
        json!([{"type": "repository", "name": "acme/web/app", "actions": ["pull"]}])
    );
    let c = http();
    let r = c
        .get(gw.url("/v2/acme/web/app/manifests/1.0"))
        .header("accept", OCI_MANIFEST)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = push_image_with(&gw, &token, "acme/web/app", "2.0", 4).await;
    assert_eq!(status, 401, "a pull secret without push cannot push");

    // Last use is recorded.
    let (_, list) = gw
        .api("GET", "/api/v1/orgs/acme/pull-secrets", ("admin", ADMIN_PASSWORD), None)
        .await;
    assert!(list[0]["last_used_at"].is_i64(), "{list}");

    // Revocation bites on the very next request, with the token still unexpired.
    let (status, _) = gw
        .api(
            "DELETE",
            "/api/v1/orgs/acme/pull-secrets/ci-puller",
            ("admin", ADMIN_PASSWORD),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let r = c
        .get(gw.url("/v2/acme/web/app/manifests/1.0"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(www_authenticate(&r).contains("invalid_token"));
    let (status, _) = gw.token_request(Some((&user, &secret)), &[]).await;
    assert_eq!(status, 401, "revoked secret cannot log in");

    // Re-created under the same name: the old token still does not work.
    let (_, secret2, _) = gw.create_pull_secret("acme", json!({"name": "ci-puller"})).await;
    assert_ne!(secret, secret2);
    let r = c
        .get(gw.url("/v2/acme/web/app/manifests/1.0"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn an_expired_pull_secret_is_refused_at_once() {
    let gw = acme().await;
    let (user, secret, _) = gw
        .create_pull_secret("acme", json!({"name": "short", "expires_in_days": 1}))
        .await;
    let token = gw
        .token(Some((&user, &secret)), &["repository:acme/web/app:pull"])
        .await;
    assert!(!claims_of(&token)["access"].as_array().unwrap().is_empty());
    // Let it expire (as if a day passed) directly in the database.
    sqlx::query("UPDATE pull_secrets SET expires_at = 1 WHERE username = $1")
        .bind(&user)
        .execute(&gw.app_db.write_pool())
        .await
        .unwrap();
    gw.gateway.changed();
    let (status, _) = gw.token_request(Some((&user, &secret)), &[]).await;
    assert_eq!(status, 401);
    let r = http()
        .get(gw.url("/v2/acme/web/app/tags/list"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn pull_secret_with_push_and_bad_pull_secret_requests() {
    let gw = acme().await;
    let (user, secret, v) = gw
        .create_pull_secret("acme", json!({"name": "builder", "actions": ["pull", "push"]}))
        .await;
    assert_eq!(v["pull_secret"]["can_push"], true);
    let token = gw
        .token(Some((&user, &secret)), &["repository:acme/web/app:pull,push"])
        .await;
    let (status, _) = push_image_with(&gw, &token, "acme/web/app", "ci", 5).await;
    assert_eq!(status, 201);

    for (body, field) in [
        (json!({"name": "Bad Name"}), "name"),
        (json!({"name": "x", "actions": ["pull", "fly"]}), "actions"),
        (json!({"name": "x", "products": ["nope"]}), "products"),
        (json!({"name": "x", "products": []}), "products"),
        (json!({"name": "x", "expires_in_days": 0}), "expires_in_days"),
    ] {
        let (status, err) = gw
            .api(
                "POST",
                "/api/v1/orgs/acme/pull-secrets",
                ("admin", ADMIN_PASSWORD),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    let (status, err) = gw
        .api(
            "POST",
            "/api/v1/orgs/acme/pull-secrets",
            ("admin", ADMIN_PASSWORD),
            Some(json!({"name": "builder"})),
        )
        .await;
    assert_eq!(status, 409, "{err}");
    let (status, err) = gw
        .api(
            "POST",
            "/api/v1/orgs/acme/pull-secrets",
            ("admin", ADMIN_PASSWORD),
            Some(json!({"nmae": "x"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"].as_str().unwrap().contains("nmae"), "{err}");
}

#[tokio::test]
async fn org_admins_manage_their_org_only() {
    let gw = acme().await;
    gw.create_org("globex").await;
    gw.create_product("globex", "secret", false).await;
    let a = ("acme-admin", USER_PASSWORD);
    let (status, _) = gw
        .api(
            "POST",
            "/api/v1/orgs/acme/pull-secrets",
            a,
            Some(json!({"name": "mine"})),
        )
        .await;
    assert_eq!(status, 201);
    for (method, path, body) in [
        ("GET", "/api/v1/orgs/globex/members", None),
        (
            "POST",
            "/api/v1/orgs/globex/members",
            Some(json!({"username": "dev", "role": "viewer"})),
        ),
        (
            "POST",
            "/api/v1/orgs/globex/pull-secrets",
            Some(json!({"name": "steal"})),
        ),
        ("GET", "/api/v1/orgs/globex/audit", None),
        ("POST", "/api/v1/orgs/globex/products", Some(json!({"label": "x"}))),
        ("POST", "/api/v1/orgs", Some(json!({"label": "new"}))),
        (
            "POST",
            "/api/v1/users",
            Some(json!({"username": "u", "password": "long-enough"})),
        ),
    ] {
        let (status, v) = gw.api(method, path, a, body).await;
        assert_eq!(status, 403, "{method} {path}: {v}");
    }
    let token = gw
        .token(Some(a), &["repository:globex/secret/app:pull,push,delete"])
        .await;
    assert_eq!(claims_of(&token)["access"], json!([]));
    // A pusher may not manage even their own org.
    let (status, _) = gw
        .api("GET", "/api/v1/orgs/acme/members", ("dev", USER_PASSWORD), None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = gw.api("GET", "/api/v1/orgs/acme/members", ("dev", "wrong"), None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn removing_a_binding_takes_effect_on_the_next_request() {
    let gw = acme().await;
    let token = gw
        .token(Some(("dev", USER_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    let (status, _) = push_image_with(&gw, &token, "acme/web/app", "1", 6).await;
    assert_eq!(status, 201);
    let (status, _) = gw
        .api(
            "DELETE",
            "/api/v1/orgs/acme/members/dev?role=pusher&product=web",
            ("admin", ADMIN_PASSWORD),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = push_image_with(&gw, &token, "acme/web/app", "2", 7).await;
    assert_eq!(
        status, 403,
        "the token still names push, the policy no longer allows it"
    );
}

#[tokio::test]
async fn catalog_lists_only_what_the_caller_may_pull() {
    let gw = acme().await;
    gw.create_org("globex").await;
    let admin = gw
        .token(
            Some(("admin", ADMIN_PASSWORD)),
            &[
                "repository:acme/web/app:pull,push",
                "repository:acme/pub/tool:pull,push",
                "repository:acme/short:pull,push",
                "repository:globex/hidden/x:pull,push",
            ],
        )
        .await;
    for repo in ["acme/web/app", "acme/pub/tool", "acme/short", "globex/hidden/x"] {
        let (status, _) = push_image_with(&gw, &admin, repo, "1", 8).await;
        assert_eq!(status, 201, "{repo}");
    }
    let c = http();
    // podman search: a token without scope gets insufficient_scope naming the catalog.
    let plain = gw.token(Some(("watcher", USER_PASSWORD)), &[]).await;
    let r = c.get(gw.url("/v2/_catalog")).bearer_auth(&plain).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let ch = www_authenticate(&r);
    assert!(
        ch.contains(r#"scope="registry:catalog:*""#) && ch.contains("insufficient_scope"),
        "{ch}"
    );

    let list = |token: String| {
        let c = c.clone();
        let url = gw.url("/v2/_catalog");
        async move {
            let v: Value = c
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["repositories"].clone()
        }
    };
    let watcher = gw
        .token(Some(("watcher", USER_PASSWORD)), &["registry:catalog:*"])
        .await;
    assert_eq!(list(watcher).await, json!(["acme/pub/tool", "acme/web/app"]));
    let anon = gw.token(None, &["registry:catalog:*"]).await;
    assert_eq!(list(anon).await, json!(["acme/pub/tool"]));
    let all = gw.token(Some(("admin", ADMIN_PASSWORD)), &["registry:catalog:*"]).await;
    assert_eq!(
        list(all.clone()).await,
        json!(["acme/short", "acme/pub/tool", "acme/web/app", "globex/hidden/x"])
    );
    // Paginated with n and Link.
    let r = c
        .get(gw.url("/v2/_catalog?n=2"))
        .bearer_auth(&all)
        .send()
        .await
        .unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.contains("last=acme%2Fpub%2Ftool") && link.contains("rel=\"next\""),
        "{link}"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["repositories"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn org_name_pushes_land_in_the_org_push_product_and_locations_are_public() {
    let gw = acme().await;
    let token = gw
        .token(Some(("acme-admin", USER_PASSWORD)), &["repository:acme/app:pull,push"])
        .await;
    let c = http();
    let r = c
        .post(gw.url("/v2/acme/app/blobs/uploads/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/v2/acme/app/blobs/uploads/"), "{location}");
    let (status, manifest) = push_image_with(&gw, &token, "acme/app", "1.0", 10).await;
    assert_eq!(status, 201);
    // The push product was created, and the same repository is reachable by its long name.
    let (_, products) = gw
        .api("GET", "/api/v1/orgs/acme/products", ("admin", ADMIN_PASSWORD), None)
        .await;
    assert!(
        products.as_array().unwrap().iter().any(|p| p["label"] == "containers"),
        "{products}"
    );
    let long = gw
        .token(
            Some(("acme-admin", USER_PASSWORD)),
            &["repository:acme/containers/app:pull"],
        )
        .await;
    let body = c
        .get(gw.url("/v2/acme/containers/app/manifests/1.0"))
        .header("accept", OCI_MANIFEST)
        .bearer_auth(&long)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.as_ref(), manifest.as_slice());
    let tags: Value = c
        .get(gw.url("/v2/acme/app/tags/list"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags, json!({"name": "acme/app", "tags": ["1.0"]}));
}

#[tokio::test]
async fn an_upload_continues_after_its_token_expires() {
    let gw = acme().await;
    let token = gw
        .token(Some(("dev", USER_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    let c = http();
    let r = c
        .post(gw.url("/v2/acme/web/app/blobs/uploads/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("_gatehouse_grant="), "{location}");

    // The same token, now expired (re-signed with the real key, exp in the past).
    let mut claims: Claims = serde_json::from_value(claims_of(&token)).unwrap();
    claims.exp = now_secs() - 120;
    let expired = gw.forge(&claims);

    let blob = common::random_bytes(100_000, 11);
    let r = c
        .patch(gw.url(&location))
        .bearer_auth(&expired)
        .header("content-type", "application/octet-stream")
        .body(blob[..50_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let next = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(next.contains("_gatehouse_grant="), "grant carried forward: {next}");
    let sep = if next.contains('?') { '&' } else { '?' };
    let r = c
        .put(gw.url(&format!("{next}{sep}digest={}", common::digest(&blob))))
        .bearer_auth(&expired)
        .body(blob[50_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // Without the session's grant, or to start a new session, the expired token is refused.
    let bare = location.split('?').next().unwrap();
    let r = c.get(gw.url(bare)).bearer_auth(&expired).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(gw.url("/v2/acme/web/app/blobs/uploads/"))
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Another user's expired token cannot use this session's grant either.
    let mut other = claims.clone();
    other.sub = "watcher".into();
    let r = c
        .get(gw.url(&location))
        .bearer_auth(gw.forge(&other))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn docker_refresh_token_flow() {
    let gw = acme().await;
    let c = http();
    // docker login: GET with offline_token=true returns a refresh token.
    let r = c
        .get(gw.url("/v2/token?service=gatehouse&offline_token=true&client_id=docker"))
        .basic_auth("dev", Some(USER_PASSWORD))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let refresh = v["refresh_token"].as_str().expect("refresh token").to_owned();
    // Later pulls: POST grant_type=refresh_token with a space-joined scope.
    let r = c
        .post(gw.url("/v2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("service", "gatehouse"),
            ("client_id", "docker"),
            ("refresh_token", &refresh),
            ("scope", "repository:acme/web/app:pull,push repository:acme/pub/x:pull"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["scope"],
        "repository:acme/web/app:pull,push repository:acme/pub/x:pull"
    );
    assert_eq!(v["refresh_token"], refresh.as_str());
    let access = v["access_token"].as_str().unwrap();
    let (status, _) = push_image_with(&gw, access, "acme/web/app", "1", 12).await;
    assert_eq!(status, 201);

    // Password grant with access_type=offline (containerd) also returns one.
    let r = c
        .post(gw.url("/v2/token"))
        .form(&[
            ("grant_type", "password"),
            ("service", "gatehouse"),
            ("client_id", "containerd-client"),
            ("username", "watcher"),
            ("password", USER_PASSWORD),
            ("access_type", "offline"),
            ("scope", "repository:acme/web/app:pull"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["refresh_token"].is_string());
    // A refresh token is not an access token.
    let r = c.get(gw.url("/v2/")).bearer_auth(&refresh).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Wrong password, bogus refresh token, unknown grant type.
    for form in [
        vec![("grant_type", "password"), ("username", "dev"), ("password", "nope")],
        vec![("grant_type", "refresh_token"), ("refresh_token", "garbage")],
    ] {
        let r = c.post(gw.url("/v2/token")).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = c
        .post(gw.url("/v2/token"))
        .form(&[("grant_type", "authorization_code")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn pushes_deletes_and_denials_are_audited_per_org() {
    let gw = acme().await;
    let token = gw
        .token(Some(("dev", USER_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    let (status, _) = push_image_with(&gw, &token, "acme/web/app", "1.0", 13).await;
    assert_eq!(status, 201);
    let viewer = gw
        .token(Some(("watcher", USER_PASSWORD)), &["repository:acme/web/app:pull,push"])
        .await;
    let (status, _) = push_image_with(&gw, &viewer, "acme/web/app", "2.0", 14).await;
    assert_eq!(status, 401);
    let (_, _) = gw.token_request(Some(("dev", "bad-password")), &[]).await;

    let (status, page) = gw
        .api("GET", "/api/v1/orgs/acme/audit", ("acme-admin", USER_PASSWORD), None)
        .await;
    assert_eq!(status, 200);
    let events = page["events"].as_array().unwrap();
    let has = |action: &str, actor: &str, outcome: &str| {
        events
            .iter()
            .any(|e| e["action"] == action && e["actor"] == actor && e["outcome"] == outcome)
    };
    assert!(has("push", "dev", "success"), "{page}");
    assert!(has("push", "watcher", "denied"), "{page}");
    assert!(has("add_member", "admin", "success"), "{page}");
    assert!(events.iter().all(|e| e["org"] == "acme"));
    assert!(
        events
            .iter()
            .any(|e| e["target"] == "acme/web/app:1.0" && e["remote"] == "127.0.0.1")
    );
    // Failed logins are in the global log (they belong to no org).
    let (_, all) = gw.api("GET", "/api/v1/audit", ("admin", ADMIN_PASSWORD), None).await;
    assert!(
        all["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "login" && e["outcome"] == "failed" && e["actor"] == "dev"),
        "{all}"
    );
    // Paging.
    let (_, first) = gw
        .api(
            "GET",
            "/api/v1/orgs/acme/audit?limit=2",
            ("acme-admin", USER_PASSWORD),
            None,
        )
        .await;
    let before = first["next_before"].as_i64().unwrap();
    let (_, second) = gw
        .api(
            "GET",
            &format!("/api/v1/orgs/acme/audit?limit=2&before={before}"),
            ("acme-admin", USER_PASSWORD),
            None,
        )
        .await;
    assert!(second["events"][0]["id"].as_i64().unwrap() < before);
}

#[tokio::test]
async fn audit_retention_bounds_the_table() {
    let gw = TestGateway::start().await;
    for i in 0..30 {
        gw.gateway
            .audit()
            .record(gatehouse::audit::Event::new("x", "user", "test", format!("t{i}")));
    }
    gw.gateway.audit().flush().await;
    let removed = gatehouse::audit::purge(
        &gw.app_db,
        gatehouse::audit::Retention {
            max_age: std::time::Duration::from_secs(3600),
            max_events: 10,
        },
    )
    .await
    .unwrap();
    assert!(removed >= 20);
    let page = gw
        .gateway
        .audit()
        .page(&gatehouse::audit::Filter::default(), None, 1000)
        .await
        .unwrap();
    assert_eq!(page.len(), 10);
    assert_eq!(page[0].target, "t29", "the newest are kept");
}

#[tokio::test]
async fn policy_reload_applies_a_good_set_and_refuses_a_broken_file() {
    let policies = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/gatehouse.cedar")).unwrap();
    std::fs::write(policies.path().join("gatehouse.cedar"), &shipped).unwrap();
    let dir = policies.path().to_owned();
    let gw = TestGateway::start_with(false, |cfg| cfg.policy_dir = Some(dir)).await;
    gw.create_org("acme").await;
    gw.create_product("acme", "web", false).await;
    gw.create_member("watcher", "acme", "viewer", Some("web")).await;
    let pulls = |t: String| !claims_of(&t)["access"].as_array().unwrap().is_empty();
    let scope = ["repository:acme/web/app:pull"];
    assert!(pulls(gw.token(Some(("watcher", USER_PASSWORD)), &scope).await));

    // A file that does not parse: refused, and the policies in force stay.
    std::fs::write(
        policies.path().join("broken.cedar"),
        "permit (principal, action, resource) when {",
    )
    .unwrap();
    let err = gw.gateway.reload().unwrap_err();
    assert!(err.contains("broken.cedar"), "{err}");
    assert!(pulls(gw.token(Some(("watcher", USER_PASSWORD)), &scope).await));

    // A valid set without the viewer rule: applied, viewers lose pull at once.
    std::fs::remove_file(policies.path().join("broken.cedar")).unwrap();
    let start = shipped.find("@id(\"viewer\")").unwrap();
    let end = start + shipped[start..].find(";\n").unwrap() + 2;
    std::fs::write(
        policies.path().join("gatehouse.cedar"),
        format!("{}{}", &shipped[..start], &shipped[end..]),
    )
    .unwrap();
    gw.gateway.reload().unwrap();
    assert!(!pulls(gw.token(Some(("watcher", USER_PASSWORD)), &scope).await));
}

#[tokio::test]
async fn key_rotation_keeps_live_tokens_valid() {
    let gw = acme().await;
    let old = gw
        .token(Some(("watcher", USER_PASSWORD)), &["repository:acme/web/app:pull"])
        .await;
    let kid = |t: &str| -> String {
        use base64::Engine;
        let h = t.split('.').next().unwrap();
        let v: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
        v["kid"].as_str().unwrap().to_owned()
    };
    // `gatehouse keys rotate` writes a new key; SIGHUP makes the server reload.
    let new_kid = gw.keyring().rotate().unwrap();
    gw.gateway.reload().unwrap();
    let new = gw
        .token(Some(("watcher", USER_PASSWORD)), &["repository:acme/web/app:pull"])
        .await;
    assert_eq!(kid(&new), new_kid);
    assert_ne!(kid(&old), new_kid);
    let c = http();
    for t in [&old, &new] {
        let r = c
            .get(gw.url("/v2/acme/web/app/tags/list"))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "both keys verify (unknown repository, not 401)");
    }
    let jwks: Value = c
        .get(gw.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_changed_password_replaces_the_old_one_at_once() {
    let gw = acme().await;
    assert_eq!(gw.token_request(Some(("dev", USER_PASSWORD)), &[]).await.0, 200);
    let (status, _) = gw
        .api(
            "PUT",
            "/api/v1/users/dev/password",
            ("dev", USER_PASSWORD),
            Some(json!({"password": "a-new-password"})),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(gw.token_request(Some(("dev", USER_PASSWORD)), &[]).await.0, 401);
    assert_eq!(gw.token_request(Some(("dev", "a-new-password")), &[]).await.0, 200);
    // Not someone else's, and not too short.
    let (status, _) = gw
        .api(
            "PUT",
            "/api/v1/users/watcher/password",
            ("dev", "a-new-password"),
            Some(json!({"password": "hijacked-password"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, err) = gw
        .api(
            "PUT",
            "/api/v1/users/dev/password",
            ("dev", "a-new-password"),
            Some(json!({"password": "short"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["field"], "password");
}

#[tokio::test]
async fn a_push_to_an_organisation_that_does_not_exist_is_name_unknown() {
    let gw = TestGateway::start().await;
    // Even a global administrator cannot create an organisation by pushing.
    let token = gw
        .token(
            Some(("admin", ADMIN_PASSWORD)),
            &["repository:nowhere/web/app:pull,push"],
        )
        .await;
    let (status, _) = push_image_with(&gw, &token, "nowhere/web/app", "1", 30).await;
    assert_eq!(status, 404);
    let r = http()
        .post(gw.url("/v2/nowhere/web/app/blobs/uploads/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(common::error_code(r).await, "NAME_UNKNOWN");
}
