//! The OpenAPI document at /api/v1/openapi.json against the real server: every
//! operation it lists is called, every answer (successes and errors) validates against
//! the schema the document gives for its status, every call lands on an operation the
//! document has (an endpoint missing from it fails), and every operation was called.

mod common;

use common::gateway::{ADMIN_PASSWORD, TestGateway, USER_PASSWORD};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The document, and which of its operations the session called with success.
struct Checked {
    doc: Value,
    called: BTreeSet<(String, String)>,
    base: String,
    client: reqwest::Client,
}

/// A JSON body, raw bytes with a content type, or nothing.
enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

impl Checked {
    async fn new(gw: &TestGateway) -> Self {
        let client = common::http();
        // The document is public, like the API's shape in the README.
        let r = client.get(gw.url("/api/v1/openapi.json")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let doc: Value = r.json().await.unwrap();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1."),
            "{}",
            doc["openapi"]
        );
        Self {
            doc,
            called: BTreeSet::new(),
            base: gw.url(""),
            client,
        }
    }

    /// The document's path template that `path` is an instance of, for `method`.
    /// `{repository}` and a distribution's `{name}` span 2 or 3 segments.
    fn operation(&self, method: &str, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut found: Vec<String> = Vec::new();
        for (template, item) in self.doc["paths"].as_object().unwrap() {
            if item.get(method.to_lowercase()).is_none() {
                continue;
            }
            let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
            if matches(&parts, &segments, template.starts_with("/api/v1/distributions/")) {
                found.push(template.clone());
            }
        }
        // The most literal template wins (`…/versions/{number}` over `{repository}`).
        found
            .into_iter()
            .max_by_key(|t| t.split('/').filter(|p| !p.starts_with('{')).count())
    }

    /// Call the API and check the answer against the document; returns status and body.
    async fn call(&mut self, creds: (&str, &str), method: &str, path: &str, body: Body) -> (u16, Value) {
        let (status, content_type, bytes) = self.raw(creds, method, path, body).await;
        let body = self.check(method, path, status, &content_type, &bytes);
        (status, body)
    }

    async fn raw(&self, creds: (&str, &str), method: &str, path: &str, body: Body) -> (u16, String, Vec<u8>) {
        let mut req = self
            .client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            )
            .basic_auth(creds.0, Some(creds.1));
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Raw(ct, bytes) => req.header("content-type", ct).body(bytes),
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, ct, r.bytes().await.unwrap().to_vec())
    }

    fn check(&mut self, method: &str, path: &str, status: u16, content_type: &str, bytes: &[u8]) -> Value {
        let bare = path.split('?').next().unwrap();
        let template = self
            .operation(method, bare)
            .unwrap_or_else(|| panic!("{method} {bare} answered {status} but is not in the OpenAPI document"));
        let op = &self.doc["paths"][&template][method.to_lowercase()];
        let responses = &op["responses"];
        let response = responses
            .get(status.to_string())
            .or_else(|| (status >= 400).then(|| responses.get("default")).flatten())
            .unwrap_or_else(|| panic!("{method} {template}: status {status} is not documented"));
        let response = self.resolve(response);
        let text = String::from_utf8_lossy(bytes);
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            assert!(
                bytes.is_empty(),
                "{method} {template} {status}: undocumented body {text}"
            );
            if status < 300 {
                self.called.insert((method.to_owned(), template));
            }
            return Value::Null;
        };
        let media = content_type.split(';').next().unwrap().trim();
        let schema = &content
            .get(media)
            .unwrap_or_else(|| panic!("{method} {template} {status}: content type {media} is not documented"))["schema"];
        let instance: Value = if media == "application/json" {
            serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{method} {template}: not JSON ({e}): {text}"))
        } else {
            Value::String(text.to_string())
        };
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.doc["components"],
            "allOf": [schema],
        });
        let validator = jsonschema::validator_for(&root).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status} does not match the document:\n{}\n{instance:#}",
            errors.join("\n")
        );
        let mut undocumented = Vec::new();
        self.undocumented_fields(&instance, schema, "", &mut undocumented);
        assert!(
            undocumented.is_empty(),
            "{method} {path} {status}: fields the document does not describe: {undocumented:?}"
        );
        if status < 300 {
            self.called.insert((method.to_owned(), template));
        }
        instance
    }

    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.trim_start_matches('#');
                self.resolve(self.doc.pointer(pointer).unwrap_or_else(|| panic!("dangling {r}")))
            }
            None => v,
        }
    }

    /// The property names a schema describes for an object (through `$ref`, `allOf`,
    /// `oneOf`/`anyOf`), and the item schemas for an array.
    fn described(&self, schema: &Value, names: &mut BTreeSet<String>, items: &mut Vec<Value>, open: &mut bool) {
        let schema = self.resolve(schema);
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            names.extend(props.keys().cloned());
        }
        if schema
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false))
        {
            *open = true;
        }
        if let Some(i) = schema.get("items") {
            items.push(i.clone());
        }
        let is_object_without_shape = schema.get("type") == Some(&json!("object"))
            && schema.get("properties").is_none()
            || schema.get("type") == Some(&json!(["object", "null"])) && schema.get("properties").is_none();
        if is_object_without_shape {
            // Documented as any object (a stored manifest, a job's payload).
            *open = true;
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            for sub in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
                self.described(sub, names, items, open);
            }
        }
    }

    fn undocumented_fields(&self, instance: &Value, schema: &Value, at: &str, out: &mut Vec<String>) {
        let (mut names, mut items, mut open) = (BTreeSet::new(), Vec::new(), false);
        self.described(schema, &mut names, &mut items, &mut open);
        match instance {
            Value::Object(map) if !open => {
                for (k, v) in map {
                    if !names.contains(k) {
                        out.push(format!("{at}/{k}"));
                        continue;
                    }
                    // The property's schema in whichever part describes it.
                    for sub in self.property_schemas(schema, k) {
                        self.undocumented_fields(v, &sub, &format!("{at}/{k}"), out);
                    }
                }
            }
            Value::Array(list) => {
                for item_schema in &items {
                    for (i, v) in list.iter().enumerate() {
                        self.undocumented_fields(v, item_schema, &format!("{at}/{i}"), out);
                    }
                }
            }
            _ => {}
        }
    }

    fn property_schemas(&self, schema: &Value, name: &str) -> Vec<Value> {
        let schema = self.resolve(schema);
        let mut out = Vec::new();
        if let Some(p) = schema.get("properties").and_then(|p| p.get(name)) {
            out.push(p.clone());
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            for sub in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
                out.extend(self.property_schemas(sub, name));
            }
        }
        out
    }

    /// Operations of the document no call reached with success.
    fn uncalled(&self) -> Vec<String> {
        let mut missing = Vec::new();
        for (template, item) in self.doc["paths"].as_object().unwrap() {
            for method in ["get", "put", "post", "delete", "patch"] {
                if item.get(method).is_some() && !self.called.contains(&(method.to_uppercase(), template.clone())) {
                    missing.push(format!("{} {template}", method.to_uppercase()));
                }
            }
        }
        missing
    }
}

fn matches(template: &[&str], path: &[&str], distribution: bool) -> bool {
    match (template.first(), path.first()) {
        (None, None) => true,
        (Some(t), Some(_)) if *t == "{repository}" || (distribution && *t == "{name}") => (2..=3)
            .filter(|n| *n <= path.len())
            .any(|n| matches(&template[1..], &path[n..], distribution)),
        (Some(t), Some(p)) if t.starts_with('{') || t == p => matches(&template[1..], &path[1..], distribution),
        _ => false,
    }
}

const ADMIN: (&str, &str) = ("admin", ADMIN_PASSWORD);

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_answers_as_the_openapi_document_says() {
    let gw = TestGateway::start().await;
    let mut api = Checked::new(&gw).await;
    use Body::{Json as J, None as N};

    // Users.
    let (s, me) = api.call(ADMIN, "GET", "/api/v1/whoami", N).await;
    assert_eq!((s, me["global_admin"].clone()), (200, json!(true)));
    let (s, _) = api
        .call(
            ADMIN,
            "POST",
            "/api/v1/users",
            J(json!({"username": "dev", "password": USER_PASSWORD})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = api
        .call(
            ADMIN,
            "POST",
            "/api/v1/users",
            J(json!({"username": "gone", "password": USER_PASSWORD})),
        )
        .await;
    assert_eq!(s, 201);
    // Errors are documented too, and say which field is wrong.
    let (s, e) = api
        .call(
            ADMIN,
            "POST",
            "/api/v1/users",
            J(json!({"username": "Bad Name!", "password": USER_PASSWORD})),
        )
        .await;
    assert_eq!((s, e["error"]["field"].as_str()), (400, Some("username")), "{e}");
    let (s, e) = api.call(("dev", USER_PASSWORD), "GET", "/api/v1/users", N).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("forbidden")));
    let (s, e) = api.call(("dev", "wrong"), "GET", "/api/v1/whoami", N).await;
    assert_eq!((s, e["error"]["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(api.call(ADMIN, "GET", "/api/v1/users", N).await.0, 200);
    let (s, _) = api
        .call(
            ("dev", USER_PASSWORD),
            "PUT",
            "/api/v1/users/dev/password",
            J(json!({"password": "user-password-2"})),
        )
        .await;
    assert_eq!(s, 204);
    let dev = ("dev", "user-password-2");
    assert_eq!(api.call(ADMIN, "DELETE", "/api/v1/users/gone", N).await.0, 204);

    // Organisations and products.
    let (s, org) = api
        .call(
            ADMIN,
            "POST",
            "/api/v1/orgs",
            J(json!({"label": "acme", "name": "ACME Corp"})),
        )
        .await;
    assert_eq!(s, 201, "{org}");
    assert_eq!(api.call(ADMIN, "GET", "/api/v1/orgs", N).await.0, 200);
    assert_eq!(api.call(ADMIN, "GET", "/api/v1/orgs/acme", N).await.0, 200);
    let (s, e) = api.call(ADMIN, "GET", "/api/v1/orgs/nope", N).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("not_found")));
    let pattern = org["naming_pattern"].as_str().unwrap();
    let (s, _) = api
        .call(
            ADMIN,
            "PATCH",
            "/api/v1/orgs/acme",
            J(json!({"naming_pattern": pattern})),
        )
        .await;
    assert_eq!(s, 200);
    for product in ["web", "base"] {
        let (s, _) = api
            .call(
                ADMIN,
                "POST",
                "/api/v1/orgs/acme/products",
                J(json!({"label": product})),
            )
            .await;
        assert_eq!(s, 201);
    }
    assert_eq!(api.call(ADMIN, "GET", "/api/v1/orgs/acme/products", N).await.0, 200);
    let (s, _) = api
        .call(
            ADMIN,
            "PATCH",
            "/api/v1/orgs/acme/products/base",
            J(json!({"public": true})),
        )
        .await;
    assert_eq!(s, 200);

    // Members.
    let member = json!({"username": "dev", "role": "pusher", "product": "web"});
    assert_eq!(
        api.call(ADMIN, "POST", "/api/v1/orgs/acme/members", J(member.clone()))
            .await
            .0,
        201
    );
    assert_eq!(api.call(ADMIN, "GET", "/api/v1/orgs/acme/members", N).await.0, 200);
    assert_eq!(
        api.call(ADMIN, "DELETE", "/api/v1/orgs/acme/members", J(member.clone()))
            .await
            .0,
        204
    );
    assert_eq!(
        api.call(ADMIN, "POST", "/api/v1/orgs/acme/members", J(member.clone()))
            .await
            .0,
        201
    );
    assert_eq!(
        api.call(
            ADMIN,
            "DELETE",
            "/api/v1/orgs/acme/members/dev?role=pusher&product=web",
            N
        )
        .await
        .0,
        204
    );
    assert_eq!(
        api.call(ADMIN, "POST", "/api/v1/orgs/acme/members", J(member)).await.0,
        201
    );
    assert_eq!(
        api.call(dev, "GET", "/api/v1/whoami", N).await.1["bindings"][0]["org"],
        "acme"
    );

    // Pull secrets: the secret once, never in the listing.
    let (s, ps) = api
        .call(
            ADMIN,
            "POST",
            "/api/v1/orgs/acme/pull-secrets",
            J(json!({"name": "ci", "products": ["web"]})),
        )
        .await;
    assert_eq!(s, 201);
    let secret = ps["secret"].as_str().unwrap().to_owned();
    let (s, list) = api.call(ADMIN, "GET", "/api/v1/orgs/acme/pull-secrets", N).await;
    assert_eq!(s, 200);
    assert!(!list.to_string().contains(&secret));
    assert_eq!(
        api.call(ADMIN, "DELETE", "/api/v1/orgs/acme/pull-secrets/ci", N)
            .await
            .0,
        204
    );

    // Signing keys (sigstore: generated at once).
    for name in ["release", "spare"] {
        let (s, k) = api
            .call(
                ADMIN,
                "POST",
                "/api/v1/orgs/acme/signing-keys",
                J(json!({"name": name, "type": "sigstore"})),
            )
            .await;
        assert_eq!(s, 201, "{k}");
    }
    assert_eq!(api.call(dev, "GET", "/api/v1/orgs/acme/signing-keys", N).await.0, 200);
    assert_eq!(
        api.call(dev, "GET", "/api/v1/orgs/acme/signing-keys/release", N)
            .await
            .0,
        200
    );
    let (s, pem) = api
        .call(dev, "GET", "/api/v1/orgs/acme/signing-keys/release?format=pem", N)
        .await;
    assert_eq!(s, 200);
    assert!(pem.as_str().unwrap().starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(
        api.call(ADMIN, "DELETE", "/api/v1/orgs/acme/signing-keys/spare", N)
            .await
            .0,
        204
    );

    // Content: an import makes version 1 of acme/web/app.
    let archive = common::oci_archive(br#"{"architecture":"amd64","os":"linux"}"#, &[b"layer one"], "1.0");
    let (s, imported) = api
        .call(
            dev,
            "POST",
            "/api/v1/repositories/acme/web/app/import",
            Body::Raw("application/x-tar", archive),
        )
        .await;
    assert_eq!(s, 201, "{imported}");
    let (s, detail) = api
        .call(dev, "GET", "/api/v1/repositories/acme/web/app/versions/1", N)
        .await;
    assert_eq!(s, 200);
    let digest = detail["tags"]["1.0"].as_str().unwrap().to_owned();
    assert_eq!(
        api.call(dev, "GET", "/api/v1/repositories/acme/web/app/versions", N)
            .await
            .0,
        200
    );
    let (s, e) = api
        .call(dev, "GET", "/api/v1/repositories/acme/web/app/versions/x", N)
        .await;
    assert_eq!((s, e["error"]["field"].as_str()), (400, Some("version")));
    let (s, m) = api
        .call(
            dev,
            "GET",
            &format!("/api/v1/repositories/acme/web/app/manifests/{digest}"),
            N,
        )
        .await;
    assert_eq!((s, m["config"]["os"].as_str()), (200, Some("linux")));
    let (s, _) = api
        .call(
            dev,
            "POST",
            "/api/v1/repositories/acme/web/app/readme",
            J(json!({"content": "# App"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, r) = api
        .call(dev, "GET", "/api/v1/repositories/acme/web/app/readme", N)
        .await;
    assert_eq!((s, r["readme"]["content"].as_str()), (200, Some("# App")));
    let (s, _) = api
        .call(
            dev,
            "POST",
            "/api/v1/repositories/acme/web/app/tag",
            J(json!({"digest": digest, "tag": "stable"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = api
        .call(
            dev,
            "POST",
            "/api/v1/repositories/acme/web/app/untag",
            J(json!({"tag": "stable"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = api
        .call(
            dev,
            "POST",
            "/api/v1/repositories/acme/web/app/sign",
            J(json!({"tags": ["1.0"], "key": "release", "registry": "registry.example:5000"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, sigs) = api
        .call(dev, "GET", "/api/v1/repositories/acme/web/app/signatures", N)
        .await;
    assert_eq!(s, 200);
    assert_eq!(sigs["tags"][0]["signatures"][0]["valid"], true, "{sigs}");
    let (s, _) = api
        .call(
            dev,
            "POST",
            "/api/v1/repositories/acme/web/copy/copy",
            J(json!({"from": "acme/web/app", "tags": ["1.0"]})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = api
        .call(
            dev,
            "POST",
            "/api/v1/repositories/acme/web/copy/remove",
            J(json!({"tags": ["1.0"]})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = api
        .call(
            dev,
            "POST",
            "/api/v1/repositories/acme/web/copy/rollback",
            J(json!({"version": 1})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, page) = api.call(dev, "GET", "/api/v1/orgs/acme/repositories?limit=10", N).await;
    assert_eq!((s, page["repositories"].as_array().unwrap().len()), (200, 2));
    let (s, _) = api
        .call(
            dev,
            "PUT",
            "/api/v1/distributions/acme/web/app-latest",
            J(json!({"repository": "acme/web/app"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        api.call(dev, "GET", "/api/v1/distributions/acme/web/app-latest", N)
            .await
            .0,
        200
    );
    assert_eq!(
        api.call(dev, "DELETE", "/api/v1/distributions/acme/web/app-latest", N)
            .await
            .0,
        204
    );
    let (s, _) = api.call(ADMIN, "DELETE", "/api/v1/repositories/acme/web/copy", N).await;
    assert_eq!(s, 200);

    // Remotes: this very server is the upstream of acme/base/mirror.
    let remote = json!({"name": "mirror", "url": gw.url(""), "upstream_name": "acme/web/app",
                        "username": "admin", "password": ADMIN_PASSWORD});
    let (s, r) = api
        .call(ADMIN, "POST", "/api/v1/orgs/acme/products/base/remotes", J(remote))
        .await;
    assert_eq!(s, 201, "{r}");
    assert!(!r.to_string().contains(ADMIN_PASSWORD));
    assert_eq!(
        api.call(ADMIN, "GET", "/api/v1/orgs/acme/products/base/remotes", N)
            .await
            .0,
        200
    );
    let (s, _) = api
        .call(
            ADMIN,
            "PATCH",
            "/api/v1/orgs/acme/products/base/remotes/mirror",
            J(json!({"include_tags": ["1.*"]})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, queued) = api
        .call(ADMIN, "POST", "/api/v1/orgs/acme/products/base/remotes/mirror/sync", N)
        .await;
    assert_eq!(s, 202);
    let job = gw.wait_job(queued["job"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "done", "{job}");
    let (s, j) = api
        .call(ADMIN, "GET", &format!("/api/v1/jobs/{}", queued["job"]), N)
        .await;
    assert_eq!((s, j["state"].as_str()), (200, Some("done")));
    let (s, shown) = api
        .call(ADMIN, "GET", "/api/v1/orgs/acme/products/base/remotes/mirror", N)
        .await;
    assert_eq!((s, shown["last_sync"]["state"].as_str()), (200, Some("done")));
    assert_eq!(
        api.call(ADMIN, "DELETE", "/api/v1/orgs/acme/products/base/remotes/mirror", N)
            .await
            .0,
        204
    );
    assert_eq!(api.call(ADMIN, "GET", "/api/v1/jobs?limit=5", N).await.0, 200);
    assert_eq!(api.call(ADMIN, "GET", "/api/v1/events?after=0", N).await.0, 200);

    // Edge sites, and what an edge itself reads and reports with its credential.
    let (s, edge) = api
        .call(
            ADMIN,
            "POST",
            "/api/v1/smart-proxies",
            J(json!({"name": "edge1", "url": "https://edge1.example:5000", "orgs": ["acme"], "sync_after_push": false})),
        )
        .await;
    assert_eq!(s, 201, "{edge}");
    let edge_user = edge["credential"]["username"].as_str().unwrap().to_owned();
    let edge_secret = edge["credential"]["secret"].as_str().unwrap().to_owned();
    let edge_creds = (edge_user.as_str(), edge_secret.as_str());
    assert_eq!(api.call(ADMIN, "GET", "/api/v1/smart-proxies", N).await.0, 200);
    assert_eq!(api.call(ADMIN, "GET", "/api/v1/smart-proxies/edge1", N).await.0, 200);
    let (s, _) = api
        .call(
            ADMIN,
            "PATCH",
            "/api/v1/smart-proxies/edge1",
            J(json!({"orgs": ["acme/web"]})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        api.call(ADMIN, "POST", "/api/v1/smart-proxies/edge1/sync", N).await.0,
        202
    );
    assert_eq!(
        api.call(edge_creds, "GET", "/api/v1/smart-proxies/edge1/authz", N)
            .await
            .0,
        200
    );
    let (s, _) = api
        .call(
            edge_creds,
            "POST",
            "/api/v1/smart-proxies/edge1/status",
            J(json!({"synced_event": 1})),
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(api.call(ADMIN, "DELETE", "/api/v1/smart-proxies/edge1", N).await.0, 204);

    // Audit, last: it has seen everything above.
    let (s, page) = api.call(ADMIN, "GET", "/api/v1/orgs/acme/audit?limit=5", N).await;
    assert_eq!((s, page["events"].as_array().unwrap().len()), (200, 5));
    assert_eq!(
        api.call(ADMIN, "GET", "/api/v1/audit?action=create_user", N).await.0,
        200
    );

    // An endpoint the server does not have is a documented 404 of no operation.
    let (s, _, body) = api.raw(ADMIN, "GET", "/api/v1/no-such-thing", Body::None).await;
    assert_eq!(s, 404);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"],
        "not_found"
    );

    let uncalled = api.uncalled();
    assert!(
        uncalled.is_empty(),
        "operations of the document never called: {uncalled:#?}"
    );
}

#[test]
fn path_templates_match_repository_names_of_two_and_three_segments() {
    let t = |s: &str| {
        s.trim_start_matches('/')
            .split('/')
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let m = |template: &str, path: &str| {
        let (a, b) = (t(template), t(path));
        matches(
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
            &b.iter().map(String::as_str).collect::<Vec<_>>(),
            false,
        )
    };
    assert!(m(
        "/api/v1/repositories/{repository}/versions",
        "/api/v1/repositories/acme/web/app/versions"
    ));
    assert!(m(
        "/api/v1/repositories/{repository}/versions",
        "/api/v1/repositories/acme/app/versions"
    ));
    assert!(!m(
        "/api/v1/repositories/{repository}/versions",
        "/api/v1/repositories/acme/versions"
    ));
    assert!(m("/api/v1/orgs/{org}", "/api/v1/orgs/acme"));
    assert!(!m("/api/v1/orgs/{org}", "/api/v1/orgs/acme/products"));
}

/// The checks above would catch drift: an undocumented field, a wrong type, an
/// undocumented status or endpoint.
#[tokio::test(flavor = "multi_thread")]
async fn the_checker_refuses_answers_that_drift_from_the_document() {
    let gw = TestGateway::start().await;
    let mut api = Checked::new(&gw).await;
    let good = json!({"username": "x", "kind": "user", "global_admin": true, "bindings": []});
    let mut check = |method: &str, path: &str, status: u16, body: &Value| {
        let bytes = serde_json::to_vec(body).unwrap();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            api.check(method, path, status, "application/json", &bytes);
        }))
        .is_ok()
    };
    assert!(check("GET", "/api/v1/whoami", 200, &good));
    let mut extra = good.clone();
    extra["bindings"] = json!([{"org": "acme", "product": null, "role": "Viewer", "secret": "x"}]);
    assert!(
        !check("GET", "/api/v1/whoami", 200, &extra),
        "an undocumented nested field"
    );
    let mut wrong = good.clone();
    wrong["global_admin"] = json!("yes");
    assert!(!check("GET", "/api/v1/whoami", 200, &wrong), "a wrong type");
    assert!(!check("GET", "/api/v1/whoami", 201, &good), "an undocumented status");
    assert!(
        !check("GET", "/api/v1/whoami/more", 200, &good),
        "an undocumented endpoint"
    );
    assert!(check(
        "GET",
        "/api/v1/whoami",
        401,
        &json!({"error": {"code": "unauthorized", "message": "m"}})
    ));
}
