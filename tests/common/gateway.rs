//! A real gatehouse gateway (token service, policies, admin API, in-process store or a
//! given backend) on an ephemeral loopback port, and helpers to drive it.

use gatehouse::config::Config;
use gatehouse::gateway::token::{Claims, Keyring};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use tempfile::TempDir;

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
/// Every test user gets this password.
pub const USER_PASSWORD: &str = "user-password-1";

pub struct TestGateway {
    pub addr: SocketAddr,
    pub dir: TempDir,
    pub app_db: gatehouse::db::Database,
    pub gateway: gatehouse::gateway::Gateway,
    /// The in-process store (none with a remote backend).
    pub registry: Option<gatehouse::store::Registry>,
    pub tls: bool,
    router: axum::Router,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestGateway {
    /// Plain HTTP, in-process store.
    pub async fn start() -> Self {
        Self::start_with(false, |_| {}).await
    }

    /// TLS with a development CA for `localhost`/`127.0.0.1` in `<dir>/certs`.
    pub async fn start_tls() -> Self {
        Self::start_with(true, |_| {}).await
    }

    pub async fn start_with(tls: bool, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = Config {
            data_dir: dir.path().join("data"),
            // The repository's policies, as `gatehouse serve` in a checkout uses them.
            policy_dir: Some(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")),
            ..Config::default()
        };
        super::use_test_backends(&mut cfg);
        adjust(&mut cfg);
        let app = gatehouse::app::build(
            &cfg,
            Some(gatehouse::identity::credentials::Secret::new(ADMIN_PASSWORD)),
            tls,
        )
        .await
        .expect("build gateway");
        let tls_config = tls.then(|| {
            let hosts = ["localhost".to_owned(), "127.0.0.1".to_owned()];
            let files = gatehouse::tls::init_dev_certs(&dir.path().join("certs"), &hosts).expect("dev certs");
            gatehouse::tls::server_config(&files.server_cert, &files.server_key).expect("tls config")
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = app.router.clone();
        let router_for_server = router.clone();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            let _ = gatehouse::server::serve(
                listener,
                router_for_server,
                tls_config,
                gatehouse::server::ConnLimits::default(),
                shutdown,
            )
            .await;
        });
        Self {
            addr,
            dir,
            app_db: app.db,
            gateway: app.gateway,
            registry: app.registry,
            tls,
            router: app.router.clone(),
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    /// `localhost:<port>`, the name clients use over TLS.
    pub fn host(&self) -> String {
        format!("localhost:{}", self.addr.port())
    }

    pub fn ca_cert(&self) -> std::path::PathBuf {
        self.dir.path().join("certs/ca.crt")
    }

    /// An HTTP client for `url(…)`: over TLS it trusts the gateway's development CA.
    pub fn client(&self) -> reqwest::Client {
        if !self.tls {
            return super::http();
        }
        let ca = reqwest::Certificate::from_pem(&std::fs::read(self.ca_cert()).expect("CA")).expect("CA pem");
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .tls_certs_merge([ca])
            .build()
            .expect("client")
    }

    /// The token keys, to forge tokens with the real key in attack tests.
    pub fn keyring(&self) -> Keyring {
        Keyring::load_or_create(&self.dir.path().join("data/keys")).expect("keys")
    }

    /// An admin API call with Basic credentials; returns status and JSON body (Null if none).
    pub async fn api(&self, method: &str, path: &str, creds: (&str, &str), body: Option<Value>) -> (StatusCode, Value) {
        if self.tls {
            return self.api_in_process(method, path, creds, body).await;
        }
        let c = super::http();
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = c.request(method, self.url(path)).basic_auth(creds.0, Some(creds.1));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("api request");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The same call through the router without the network (the test HTTP client has no
    /// TLS; real clients cover TLS).
    async fn api_in_process(
        &self,
        method: &str,
        path: &str,
        creds: (&str, &str),
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        use base64::Engine;
        use tower::ServiceExt;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", creds.0, creds.1));
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Basic {auth}"))
            .header("host", self.host());
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                axum::body::Body::from(serde_json::to_vec(&b).expect("json"))
            }
            None => axum::body::Body::empty(),
        };
        let resp = self
            .router
            .clone()
            .oneshot(req.body(body).expect("request"))
            .await
            .expect("router");
        let status = StatusCode::from_u16(resp.status().as_u16()).expect("status");
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, v) = self.api(method, path, ("admin", ADMIN_PASSWORD), Some(body)).await;
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    /// Start a sync of remote `name` of product `org/product` (as the global admin) and
    /// wait for its job to end; returns the job.
    pub async fn sync_remote(&self, product: &str, name: &str) -> Value {
        let (org, product) = product.split_once('/').expect("org/product");
        let (status, v) = self
            .api(
                "POST",
                &format!("/api/v1/orgs/{org}/products/{product}/remotes/{name}/sync"),
                ("admin", ADMIN_PASSWORD),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{v}");
        self.wait_job(v["job"].as_i64().expect("job id")).await
    }

    /// Wait for job `id` to end; returns it.
    pub async fn wait_job(&self, id: i64) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let (status, job) = self
                .api("GET", &format!("/api/v1/jobs/{id}"), ("admin", ADMIN_PASSWORD), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{job}");
            if job["state"] == "done" || job["state"] == "failed" {
                return job;
            }
            assert!(std::time::Instant::now() < deadline, "job {id} did not end: {job}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn create_org(&self, org: &str) {
        self.admin("POST", "/api/v1/orgs", json!({ "label": org })).await;
    }

    pub async fn create_product(&self, org: &str, product: &str, public: bool) {
        self.admin(
            "POST",
            &format!("/api/v1/orgs/{org}/products"),
            json!({ "label": product, "public": public }),
        )
        .await;
    }

    /// A user with `role` on `org` (or on `org/product`).
    pub async fn create_member(&self, username: &str, org: &str, role: &str, product: Option<&str>) {
        let (status, v) = self
            .api(
                "POST",
                "/api/v1/users",
                ("admin", ADMIN_PASSWORD),
                Some(json!({ "username": username, "password": USER_PASSWORD })),
            )
            .await;
        assert!(status.is_success() || status == StatusCode::CONFLICT, "{v}");
        let mut body = json!({ "username": username, "role": role });
        if let Some(p) = product {
            body["product"] = json!(p);
        }
        self.admin("POST", &format!("/api/v1/orgs/{org}/members"), body).await;
    }

    /// A pull secret; returns (username, secret, full response).
    pub async fn create_pull_secret(&self, org: &str, body: Value) -> (String, String, Value) {
        let v = self
            .admin("POST", &format!("/api/v1/orgs/{org}/pull-secrets"), body)
            .await;
        (
            v["username"].as_str().expect("username").to_owned(),
            v["secret"].as_str().expect("secret").to_owned(),
            v,
        )
    }

    /// GET /v2/token with optional Basic credentials and scopes: (status, body).
    pub async fn token_request(&self, creds: Option<(&str, &str)>, scopes: &[&str]) -> (StatusCode, Value) {
        let mut url = reqwest::Url::parse(&self.url("/v2/token")).expect("url");
        url.query_pairs_mut().append_pair("service", "gatehouse");
        for s in scopes {
            url.query_pairs_mut().append_pair("scope", s);
        }
        let mut req = self.client().get(url);
        if let Some((u, p)) = creds {
            req = req.basic_auth(u, Some(p));
        }
        let r = req.send().await.expect("token request");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A token for the scopes; panics unless the endpoint answers 200.
    pub async fn token(&self, creds: Option<(&str, &str)>, scopes: &[&str]) -> String {
        let (status, v) = self.token_request(creds, scopes).await;
        assert_eq!(status, StatusCode::OK, "token: {v}");
        v["token"].as_str().expect("token").to_owned()
    }

    /// Sign arbitrary claims with the gateway's real key.
    pub fn forge(&self, claims: &Claims) -> String {
        self.keyring().sign(claims).expect("sign")
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The claims of a JWT, decoded without verification (to inspect what was granted).
pub fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("jwt payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("claims json")
}

/// Push one blob with a bearer token (a monolithic POST, or POST and PUT where the
/// registry opens a session instead); returns the final status.
pub async fn push_blob(gw: &TestGateway, token: &str, repo: &str, blob: &[u8]) -> StatusCode {
    let c = gw.client();
    let d = super::digest(blob);
    let r = c
        .post(gw.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
        .bearer_auth(token)
        .body(blob.to_vec())
        .send()
        .await
        .expect("blob push");
    // Registries without monolithic POST (Distribution 2.8) open a session instead.
    let r = if r.status() == StatusCode::ACCEPTED {
        let loc = r.headers()["location"].to_str().expect("location").to_owned();
        let sep = if loc.contains('?') { '&' } else { '?' };
        c.put(gw.url(&format!("{loc}{sep}digest={d}")))
            .bearer_auth(token)
            .body(blob.to_vec())
            .send()
            .await
            .expect("blob put")
    } else {
        r
    };
    r.status()
}

/// Push a small image (config + one layer + manifest) with a bearer token; returns the
/// manifest PUT's status, and the manifest bytes.
pub async fn push_image_with(gw: &TestGateway, token: &str, repo: &str, tag: &str, seed: u64) -> (StatusCode, Vec<u8>) {
    let c = gw.client();
    let config = super::config_blob("amd64");
    let layer = super::random_bytes(2048, seed);
    for blob in [&config, &layer] {
        let status = push_blob(gw, token, repo, blob).await;
        if status != StatusCode::CREATED {
            return (status, Vec::new());
        }
    }
    let manifest = super::image_manifest(&config, &[&layer], json!({}));
    let r = c
        .put(gw.url(&format!("/v2/{repo}/manifests/{tag}")))
        .bearer_auth(token)
        .header("content-type", super::OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .expect("manifest put");
    (r.status(), manifest)
}
