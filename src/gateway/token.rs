//! Token signing keys and JWTs.
//!
//! Tokens are ES256 JWTs whose header names the signing key (`kid`, the RFC 7638 JWK
//! thumbprint). Claims: `iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti` and `access`
//! (what was granted). Verification accepts only ES256 with a known `kid` (so `alg:
//! none` and HS256-signed-with-the-public-key tokens fail), checks issuer and audience,
//! and allows 60 s of clock skew on `exp` and `nbf`.
//!
//! Keys live in `<data>/keys/` as `<created-ms>.<kid>.pem` (PKCS#8, mode 0600). The
//! newest signs; older ones keep verifying until `prune` drops those retired for longer
//! than the longest token lifetime, so a rotation never invalidates live tokens. The
//! public keys are published as a JWKS (edge sites verify tokens offline with it).

use crate::gateway::scope::Access;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Clock skew tolerated between the token service and whoever verifies (Distribution's
/// fixed 60 s).
pub const LEEWAY_SECS: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The principal: a user or pull-secret name; empty for anonymous.
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<Access>,
    /// The credential's id (user or pull secret): a credential deleted and re-created
    /// under the same name does not inherit the old one's tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token key file {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("token key {0}: not a P-256 PKCS#8 key")]
    BadKey(PathBuf),
    #[error("generating a token key failed")]
    KeyGeneration,
    #[error("signing a token: {0}")]
    Sign(jsonwebtoken::errors::Error),
    #[error("token signed by an unknown or missing key")]
    UnknownKey,
    #[error("token rejected: {0}")]
    Invalid(jsonwebtoken::errors::Error),
}

/// Whether an expired token is acceptable: only for requests that continue an upload
/// session opened while the token was valid (a push never fails half-way on expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Enforce,
    Ignore,
}

struct SigningKey {
    kid: String,
    created_ms: u64,
    encoding: EncodingKey,
    decoding: DecodingKey,
    x: String,
    y: String,
}

impl SigningKey {
    fn from_pkcs8(der: &[u8], created_ms: u64, origin: &Path) -> Result<Self, TokenError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|_| TokenError::BadKey(origin.to_owned()))?;
        // Uncompressed point: 0x04 || X (32 bytes) || Y (32 bytes).
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err(TokenError::BadKey(origin.to_owned()));
        }
        let (x, y) = (B64URL.encode(&point[1..33]), B64URL.encode(&point[33..65]));
        let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = B64URL.encode(Sha256::digest(thumbprint_input.as_bytes()));
        let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|_| TokenError::BadKey(origin.to_owned()))?;
        Ok(Self {
            kid,
            created_ms,
            encoding: EncodingKey::from_ec_der(der),
            decoding,
            x,
            y,
        })
    }
}

/// The token service's keys: the newest signs, all verify.
pub struct Keyring {
    dir: PathBuf,
    /// Oldest first; the last one is the active signing key.
    keys: Vec<SigningKey>,
    /// Public keys of another token service whose tokens are accepted too (an edge
    /// trusts its main server's): kid -> key.
    trusted: Vec<(String, DecodingKey)>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn now_secs() -> u64 {
    now_ms() / 1000
}

impl Keyring {
    /// Load the keys in `dir`, creating the directory and a first key when there is none.
    pub fn load_or_create(dir: &Path) -> Result<Self, TokenError> {
        let io = |e| TokenError::Io(dir.to_owned(), e);
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let Some((created, _)) = name.strip_suffix(".pem").and_then(|n| n.split_once('.')) else {
                continue;
            };
            let Ok(created_ms) = created.parse::<u64>() else {
                continue;
            };
            let pem = std::fs::read_to_string(&path).map_err(|e| TokenError::Io(path.clone(), e))?;
            let der = pem_body(&pem).ok_or_else(|| TokenError::BadKey(path.clone()))?;
            keys.push(SigningKey::from_pkcs8(&der, created_ms, &path)?);
        }
        keys.sort_by_key(|k| k.created_ms);
        let mut ring = Self {
            dir: dir.to_owned(),
            keys,
            trusted: Vec::new(),
        };
        if ring.keys.is_empty() {
            ring.rotate()?;
        }
        Ok(ring)
    }

    /// Create a new signing key; it signs from now on, older keys keep verifying.
    /// Returns its `kid`.
    pub fn rotate(&mut self) -> Result<String, TokenError> {
        let rng = SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| TokenError::KeyGeneration)?;
        // Strictly increasing creation times keep the order of keys made in one millisecond.
        let created_ms = now_ms().max(self.keys.last().map_or(0, |k| k.created_ms + 1));
        let key = SigningKey::from_pkcs8(der.as_ref(), created_ms, &self.dir)?;
        let path = self.dir.join(format!("{created_ms}.{}.pem", key.kid));
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
        );
        write_private(&path, pem.as_bytes()).map_err(|e| TokenError::Io(path.clone(), e))?;
        let kid = key.kid.clone();
        self.keys.push(key);
        Ok(kid)
    }

    /// Forget (and delete) keys retired for longer than `max_token_age`: no token they
    /// signed can still be valid. A key is retired when the next one is created.
    pub fn prune(&mut self, max_token_age: Duration) -> Result<usize, TokenError> {
        let horizon = now_ms().saturating_sub(max_token_age.as_millis() as u64 + LEEWAY_SECS * 1000);
        let mut removed = 0;
        while self.keys.len() > 1 && self.keys[1].created_ms < horizon {
            let old = self.keys.remove(0);
            let path = self.dir.join(format!("{}.{}.pem", old.created_ms, old.kid));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(TokenError::Io(path, e)),
            }
            removed += 1;
        }
        Ok(removed)
    }

    pub fn active_kid(&self) -> &str {
        self.keys.last().map(|k| k.kid.as_str()).unwrap_or_default()
    }

    /// The public keys as a JSON Web Key Set.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|k| json!({ "kty": "EC", "crv": "P-256", "x": k.x, "y": k.y, "kid": k.kid, "use": "sig", "alg": "ES256" }))
            .collect();
        json!({ "keys": keys })
    }

    /// Accept tokens signed by the keys of `jwks` (another token service's JWK set;
    /// only P-256 keys), replacing those trusted before. Returns how many there are.
    pub fn trust(&mut self, jwks: &Value) -> usize {
        self.trusted = jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| k["kty"] == "EC" && k["crv"] == "P-256")
            .filter_map(|k| {
                let kid = k["kid"].as_str()?.to_owned();
                let key = DecodingKey::from_ec_components(k["x"].as_str()?, k["y"].as_str()?).ok()?;
                Some((kid, key))
            })
            .collect();
        self.trusted.len()
    }

    /// Carry the trusted keys over to a reloaded keyring.
    pub fn keep_trusted_from(&mut self, old: &Keyring) {
        self.trusted = old.trusted.clone();
    }

    /// Sign `claims` with the active key.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let key = self.keys.last().ok_or(TokenError::UnknownKey)?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(TokenError::Sign)
    }

    /// Verify a token for `issuer` and `audience`.
    pub fn verify(&self, token: &str, issuer: &str, audience: &str, expiry: Expiry) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(TokenError::Invalid)?;
        // Only our algorithm and only our keys: this is what defeats `alg: none` and
        // HMAC-with-the-public-key forgeries, before any signature is looked at.
        if header.alg != Algorithm::ES256 {
            return Err(TokenError::Invalid(
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm.into(),
            ));
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| &k.decoding)
            .or_else(|| self.trusted.iter().find(|t| t.0 == kid).map(|t| &t.1))
            .ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.validate_exp = expiry == Expiry::Enforce;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|d| d.claims)
            .map_err(TokenError::Invalid)
    }
}

/// A random token id (128 bits, hex).
pub fn new_jti() -> String {
    let mut bytes = [0u8; 16];
    // SystemRandom fails only without an OS entropy source; a zero id is still unique
    // enough to log, and nothing relies on its secrecy.
    let _ = SystemRandom::new().fill(&mut bytes);
    hex::encode(bytes)
}

fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body.trim()).ok()
}

/// Write a private file atomically (temporary name, then rename), readable by the owner only.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// How the registry path reports it (the OCI error format).
impl From<TokenError> for crate::error::Error {
    fn from(e: TokenError) -> Self {
        Self::internal(&e)
    }
}

#[cfg(test)]
mod tests;
