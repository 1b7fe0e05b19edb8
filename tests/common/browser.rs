//! Debian's headless Chromium driven through chromedriver with the W3C WebDriver
//! protocol (plain JSON over HTTP): each `Browser` is its own chromedriver and profile.

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser at a time in a test binary: Chromium is heavy, and on a small machine
/// several at once make page loads slow enough to look like failures.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Browser {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    /// Ends the WebDriver session (chromedriver then quits Chromium), then stops
    /// chromedriver's whole process group: killing chromedriver alone left its Chromium
    /// running after the test.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://").to_owned();
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let req = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
                self.session
            );
            if s.write_all(req.as_bytes()).is_ok() {
                let _ = s.read_to_end(&mut Vec::new());
            }
        }
        // SAFETY: kill only sends a signal; the group is chromedriver's own (see `start`).
        unsafe { libc::kill(-(self.driver.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}

/// A found element.
#[derive(Clone)]
pub struct Element(String);

impl Browser {
    pub async fn start() -> Self {
        let turn = ONE_AT_A_TIME.lock().await;
        let found = Command::new("chromedriver")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found && std::path::Path::new("/usr/bin/chromium").exists(),
            "chromium and chromedriver are required for this test; install them with \
             `apt-get install -y chromium chromium-driver` (scripts/test does this)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Its own process group, so that Drop can stop it with every browser it started.
        let driver = std::os::unix::process::CommandExt::process_group(&mut Command::new("chromedriver"), 0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(std::time::Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // The test CA is the gateway's own, not the system's.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_owned();
        let b = Self {
            _turn: turn,
            driver,
            base,
            session,
            http,
            _profile: profile,
        };
        // Finding an element waits for it (a page still loading after a click).
        b.cmd(reqwest::Method::POST, "/timeouts", Some(json!({"implicit": 10_000})))
            .await;
        b
    }

    /// Wait until the current URL satisfies `ok` (navigation after a click is not
    /// waited for by WebDriver); returns it.
    pub async fn wait_url(&self, ok: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let url = self.url().await;
            if ok(&url) {
                return url;
            }
            assert!(std::time::Instant::now() < deadline, "still at {url}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        if let Some(err) = v["value"]["error"].as_str() {
            panic!("WebDriver {path}: {err}: {}", v["value"]["message"]);
        }
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn find(&self, css: &str) -> Element {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        Element(v[ELEMENT].as_str().unwrap().to_owned())
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| Element(e[ELEMENT].as_str().unwrap().to_owned()))
            .collect()
    }

    /// Elements matching `css` whose text contains `text`.
    pub async fn find_with_text(&self, css: &str, text: &str) -> Option<Element> {
        for e in self.find_all(css).await {
            if self.text(&e).await.contains(text) {
                return Some(e);
            }
        }
        None
    }

    pub async fn text(&self, e: &Element) -> String {
        self.cmd(reqwest::Method::GET, &format!("/element/{}/text", e.0), None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn attr(&self, e: &Element, name: &str) -> Option<String> {
        self.cmd(
            reqwest::Method::GET,
            &format!("/element/{}/attribute/{name}", e.0),
            None,
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Empty a text field.
    pub async fn clear(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/clear", e.0),
            Some(json!({})),
        )
        .await;
    }

    pub async fn click(&self, e: &Element) {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/click", e.0),
            Some(json!({})),
        )
        .await;
    }

    /// Click something that loads a new page (a link, a form's button), and wait until
    /// the new page has loaded: elements found before then could belong to the old one.
    pub async fn click_to_load(&self, e: &Element) {
        self.mark_page().await;
        self.click(e).await;
        self.wait_new_page().await;
    }

    /// `click_to_load` for a button that asks `confirm()` first: accepted.
    pub async fn click_confirmed(&self, e: &Element) {
        self.mark_page().await;
        self.click(e).await;
        self.accept_dialog().await;
        self.wait_new_page().await;
    }

    async fn mark_page(&self) {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": "window.__gatehouseOldPage = true;", "args": []})),
        )
        .await;
    }

    async fn wait_new_page(&self) {
        let url = format!("{}/session/{}/execute/sync", self.base, self.session);
        let script = "return window.__gatehouseOldPage === undefined && document.readyState === 'complete';";
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            // While the page changes the script may fail: that is waiting too.
            let done = match self
                .http
                .post(&url)
                .json(&json!({ "script": script, "args": [] }))
                .send()
                .await
            {
                Ok(r) => r.json::<Value>().await.is_ok_and(|v| v["value"] == true),
                Err(_) => false,
            };
            if done {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the next page did not load");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// Accept the open `confirm()` dialog.
    pub async fn accept_dialog(&self) {
        self.cmd(reqwest::Method::POST, "/alert/accept", Some(json!({}))).await;
    }

    /// Run `script` (an async function body calling `arguments[0]` with its result).
    pub async fn run_async(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Resize the window (a phone's screen, say).
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.cmd(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// Run `script` (a function body that returns a value) in the page.
    pub async fn run(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }

    /// Log in through the form as `user`.
    pub async fn log_in(&self, base_url: &str, user: &str, password: &str) {
        self.goto(&format!("{base_url}/ui/login")).await;
        self.type_into("#username", user).await;
        self.type_into("#password", password).await;
        let submit = self.find("form button[type=submit]").await;
        self.click_to_load(&submit).await;
        self.wait_url(|u| !u.contains("/ui/login")).await;
    }
}
