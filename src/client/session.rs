//! Talking to a gatehouse server as a logged-in user: the stored login (a refresh
//! token, 0600, under the user's config directory), exchanging it for short-lived access
//! tokens, and API calls whose failures become exit codes.

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;

/// Exit codes scripts can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The server refused the request (a bad field, a conflict), or a job failed.
    Refused = 1,
    /// Not logged in, or the credentials were refused.
    Auth = 3,
    /// No such thing (or not one the caller may see).
    NotFound = 4,
    /// The server could not be reached or failed.
    Unavailable = 5,
}

/// A failure, said in one line, with its exit code.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

pub type Outcome<T = Value> = Result<T, Failure>;

/// What `gatehouse admin login` keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredLogin {
    pub url: String,
    pub username: String,
    /// The token service's name (`service=`), learnt from the server's challenge.
    pub service: String,
    pub refresh_token: String,
    /// A CA certificate (PEM path) to trust for this server, besides the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// `$GATEHOUSE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/gatehouse`, else `~/.config/gatehouse`.
pub fn config_dir() -> Outcome<PathBuf> {
    if let Some(d) = std::env::var_os("GATEHOUSE_CONFIG_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(d).join("gatehouse"));
    }
    match std::env::var_os("HOME") {
        Some(h) => Ok(PathBuf::from(h).join(".config/gatehouse")),
        None => Err(Failure::new(Exit::Auth, "no HOME: set GATEHOUSE_CONFIG_DIR")),
    }
}

fn login_file() -> Outcome<PathBuf> {
    Ok(config_dir()?.join("login.json"))
}

pub fn save_login(login: &StoredLogin) -> Outcome<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = login_file()?;
    let fail = |e: std::io::Error| Failure::new(Exit::Refused, format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    // Written whole to a private file, then moved over the old one.
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    let text = serde_json::to_string_pretty(login).unwrap_or_default();
    f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(fail)?;
    std::fs::rename(&tmp, &path).map_err(fail)?;
    Ok(path)
}

pub fn forget_login() -> Outcome<bool> {
    let path = login_file()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Failure::new(Exit::Refused, format!("{}: {e}", path.display()))),
    }
}

fn load_login() -> Outcome<Option<StoredLogin>> {
    let path = login_file()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Failure::new(Exit::Auth, format!("{}: {e}; log in again", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::new(Exit::Auth, format!("{}: {e}", path.display()))),
    }
}

/// An HTTP client trusting the system's CAs and `ca_file`.
pub fn http_client(ca_file: Option<&std::path::Path>) -> Outcome<reqwest::Client> {
    let ca = match ca_file {
        Some(f) => {
            Some(std::fs::read(f).map_err(|e| Failure::new(Exit::Unavailable, format!("{}: {e}", f.display())))?)
        }
        None => None,
    };
    crate::sync::upstream::http_client(ca.as_deref()).map_err(|e| Failure::new(Exit::Unavailable, e))
}

/// A session with a server: its URL and the bearer token requests carry.
pub struct Session {
    pub url: String,
    http: reqwest::Client,
    token: String,
}

fn unreachable(url: &str, e: &reqwest::Error) -> Failure {
    Failure::new(
        Exit::Unavailable,
        format!("cannot reach {url}: {}", crate::error::chain(e)),
    )
}

/// Where a server's token service is: `service=` of its `/v2/` challenge.
pub async fn token_service(http: &reqwest::Client, url: &str) -> Outcome<String> {
    let r = http
        .get(format!("{url}/v2/"))
        .send()
        .await
        .map_err(|e| unreachable(url, &e))?;
    let challenge = r
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (_, params) = crate::sync::upstream::parse_challenge(&challenge);
    params.get("service").cloned().ok_or_else(|| {
        Failure::new(
            Exit::Unavailable,
            format!("{url} does not look like a gatehouse server"),
        )
    })
}

/// The token endpoint's answer, or why not.
async fn token_request(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Outcome<Value> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let r = http
        .post(format!("{url}/v2/token"))
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| unreachable(url, &e))?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let why = body["errors"][0]["message"].as_str().unwrap_or("refused").to_owned();
    Err(Failure::new(
        if status == StatusCode::UNAUTHORIZED {
            Exit::Auth
        } else {
            Exit::Refused
        },
        why,
    ))
}

/// Log in with a password: a refresh token to keep.
pub async fn login(http: &reqwest::Client, url: &str, username: &str, password: &str) -> Outcome<(String, String)> {
    let service = token_service(http, url).await?;
    let body = token_request(
        http,
        url,
        &[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("service", &service),
            ("access_type", "offline"),
            ("client_id", "gatehouse-admin"),
        ],
    )
    .await?;
    let refresh = body["refresh_token"]
        .as_str()
        .ok_or_else(|| Failure::new(Exit::Auth, "the server gave no refresh token"))?;
    Ok((service, refresh.to_owned()))
}

impl Session {
    /// From `GATEHOUSE_URL` and `GATEHOUSE_TOKEN` (an access token, used as is), else
    /// from the stored login (its refresh token exchanged for a fresh access token).
    pub async fn open(url_flag: Option<&str>, ca_file: Option<&std::path::Path>) -> Outcome<Self> {
        let env_url = std::env::var("GATEHOUSE_URL").ok();
        if let Ok(token) = std::env::var("GATEHOUSE_TOKEN") {
            let url = url_flag
                .map(str::to_owned)
                .or(env_url)
                .ok_or_else(|| Failure::new(Exit::Auth, "GATEHOUSE_TOKEN needs GATEHOUSE_URL (or --url)"))?;
            return Ok(Self {
                url: url.trim_end_matches('/').to_owned(),
                http: http_client(ca_file)?,
                token,
            });
        }
        let login = load_login()?.ok_or_else(|| {
            Failure::new(
                Exit::Auth,
                "not logged in: run `gatehouse admin login URL --username NAME`",
            )
        })?;
        if let Some(u) = url_flag.map(str::to_owned).or(env_url)
            && u.trim_end_matches('/') != login.url
        {
            return Err(Failure::new(
                Exit::Auth,
                format!("logged in to {}, not {u}: log in there first", login.url),
            ));
        }
        let http = http_client(ca_file.or(login.ca_file.as_deref()))?;
        let body = token_request(
            &http,
            &login.url,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &login.refresh_token),
                ("service", &login.service),
                ("client_id", "gatehouse-admin"),
            ],
        )
        .await
        .map_err(|f| match f.exit {
            Exit::Auth => Failure::new(
                Exit::Auth,
                format!("{}: log in again (`gatehouse admin login {}`)", f.message, login.url),
            ),
            _ => f,
        })?;
        let token = body["access_token"]
            .as_str()
            .or(body["token"].as_str())
            .ok_or_else(|| Failure::new(Exit::Auth, "the server gave no access token"))?
            .to_owned();
        Ok(Self {
            url: login.url,
            http,
            token,
        })
    }

    /// An API call; a JSON answer (`null` for none), or a failure that says what the
    /// server said (and which field was wrong).
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Outcome {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.map_err(|e| unreachable(&self.url, &e))?;
        answer(r).await
    }

    /// GET a text document (an armored key, a PEM).
    pub async fn text(&self, path: &str) -> Outcome<String> {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| unreachable(&self.url, &e))?;
        if r.status().is_success() {
            return r.text().await.map_err(|e| unreachable(&self.url, &e));
        }
        answer(r).await.map(|_| String::new())
    }

    /// POST a body streamed from `body` (an archive), `len` bytes.
    pub async fn upload(&self, path: &str, body: reqwest::Body, len: u64) -> Outcome {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(&self.url, &e))?;
        answer(r).await
    }

    pub async fn get(&self, path: &str) -> Outcome {
        self.call(Method::GET, path, None).await
    }
}

async fn answer(r: reqwest::Response) -> Outcome {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    let body: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    if status.is_success() {
        return Ok(body);
    }
    let message = body["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("the server answered {status}"));
    let exit = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Exit::Auth,
        StatusCode::NOT_FOUND => Exit::NotFound,
        s if s.is_server_error() => Exit::Unavailable,
        _ => Exit::Refused,
    };
    Err(Failure::new(exit, message))
}
