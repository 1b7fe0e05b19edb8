//! Credentials as clients send them, and how they are kept.
//!
//! - `Authorization: Basic` parsing; the empty pair (`Og==`, just `:`) that some clients
//!   send is anonymous, as in Pulp.
//! - Passwords and pull-secret secrets are stored as Argon2id PHC strings (salted, with
//!   the parameters inside), verified in constant time by the argon2 crate.
//! - Account names (users and pull secrets) use no shell- or YAML-special characters, so
//!   `podman login -u NAME` and Kubernetes secrets work unquoted (Harbor's `robot$x` and
//!   Quay's `org+bot` do not).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use std::fmt;

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for hashing or comparing; never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("malformed Authorization header: expected Basic base64(user:password)")]
    MalformedBasic,
    #[error("malformed Authorization header: only visible ASCII is allowed")]
    MalformedHeader,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// The `Authorization` header as text. Bytes outside visible ASCII make it malformed,
/// never absent: a garbled credential must not pass for no credential.
pub fn authorization(headers: &axum::http::HeaderMap) -> Result<Option<&str>, CredentialError> {
    match headers.get(axum::http::header::AUTHORIZATION) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| CredentialError::MalformedHeader),
    }
}

/// The `Authorization` value `parse_basic` reads back as `username`, `password`.
pub fn basic_header(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

/// Parse an `Authorization` header value. `Ok(None)`: not Basic at all, or the empty
/// pair `:` (anonymous).
pub fn parse_basic(header: &str) -> Result<Option<BasicCredentials>, CredentialError> {
    let Some((scheme, value)) = header.trim().split_once(' ') else {
        // `Basic` alone announces credentials and carries none.
        if header.trim().eq_ignore_ascii_case("basic") {
            return Err(CredentialError::MalformedBasic);
        }
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| CredentialError::MalformedBasic)?;
    let text = String::from_utf8(raw).map_err(|_| CredentialError::MalformedBasic)?;
    let (user, pass) = text.split_once(':').ok_or(CredentialError::MalformedBasic)?;
    if user.is_empty() && pass.is_empty() {
        return Ok(None);
    }
    Ok(Some(BasicCredentials {
        username: user.to_owned(),
        password: Secret::new(pass),
    }))
}

/// Argon2id with the OWASP-recommended minimum (19 MiB, 2 passes, 1 lane): ~10 ms here,
/// which is why a verified credential may be cached briefly by the caller.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hash a password (or pull-secret secret) into a PHC string for storage.
pub fn hash_password(password: &Secret) -> Result<String, CredentialError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CredentialError::Hash(e.to_string()))
}

/// Whether `password` matches a stored PHC string (a malformed one never matches).
pub fn verify_password(password: &Secret, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => argon2().verify_password(password.expose().as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid account name {0:?}: use 1 to 64 characters of lowercase letters, digits, '.', '_' and '-', \
     starting with a letter or digit"
)]
pub struct AccountNameError(pub String);

/// Account names: `[a-z0-9][a-z0-9._-]{0,63}`; nothing a shell or YAML would interpret.
pub fn validate_account_name(name: &str) -> Result<(), AccountNameError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AccountNameError(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s))
    }

    #[test]
    fn parses_basic_and_treats_empty_pair_as_anonymous() {
        let c = parse_basic(&basic("alice:s3:cret")).unwrap().unwrap();
        assert_eq!(c.username, "alice");
        assert_eq!(c.password.expose(), "s3:cret");
        assert_eq!(parse_basic("Basic Og==").unwrap(), None);
        assert_eq!(parse_basic("Bearer abc").unwrap(), None);
        assert_eq!(parse_basic("Basic !!!"), Err(CredentialError::MalformedBasic));
        assert_eq!(parse_basic(&basic("no-colon")), Err(CredentialError::MalformedBasic));
    }

    #[test]
    fn secrets_never_print() {
        let c = parse_basic(&basic("alice:hunter2")).unwrap().unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.password.to_string().contains("hunter2"));
    }

    #[test]
    fn argon2id_hash_verifies_only_the_right_password() {
        let phc = hash_password(&Secret::new("correct horse")).unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password(&Secret::new("correct horse"), &phc));
        assert!(!verify_password(&Secret::new("wrong"), &phc));
        assert!(!verify_password(&Secret::new("correct horse"), "not a hash"));
        // Salted: the same password hashes differently each time.
        assert_ne!(phc, hash_password(&Secret::new("correct horse")).unwrap());
    }

    #[test]
    fn account_names_have_no_special_characters() {
        for ok in ["admin", "ci-puller", "edge1.site_a", "0day"] {
            assert!(validate_account_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "robot$ci",
            "org+bot",
            "Alice",
            "-x",
            "a b",
            "a/b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(validate_account_name(bad).is_err(), "{bad}");
        }
    }
}
