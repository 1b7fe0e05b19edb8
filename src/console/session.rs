//! Console sessions: a random token in an `HttpOnly; Secure; SameSite=Strict` cookie,
//! its SHA-256 in the database (shared by replicas), a CSRF token per session, an
//! absolute lifetime, and the password it was opened with: a password change or the
//! user's deletion ends it.

use crate::db::{Database, now_ms};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest as _;
use sqlx::Row;

pub const COOKIE: &str = "__Host-gatehouse-session";
/// How long a session lasts, whatever it does.
pub const LIFETIME_MS: i64 = 8 * 3600 * 1000;

#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
    pub user_id: i64,
    pub csrf: String,
    token_hash: String,
}

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    // The system's randomness failing is not something to serve a session through.
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).unwrap_or_else(|_| std::process::abort());
    URL_SAFE_NO_PAD.encode(b)
}

fn hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Compare two tokens in constant time.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[derive(Clone)]
pub struct Sessions {
    db: Database,
}

impl Sessions {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Open a session for user `username` (id `user_id`, password tag `tag`); returns the
    /// cookie token.
    pub async fn open(&self, username: &str, user_id: i64, tag: &str) -> Result<String, sqlx::Error> {
        let token = random_token();
        let now = now_ms();
        let mut tx = self.db.begin_write().await?;
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (token_hash, username, user_id, password_tag, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(hash(&token))
        .bind(username)
        .bind(user_id)
        .bind(tag)
        .bind(random_token())
        .bind(now)
        .bind(now + LIFETIME_MS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The live session of `token`, given the user's current (id, password tag).
    pub async fn find(
        &self,
        token: &str,
        current: impl AsyncFnOnce(&str) -> Option<(i64, String)>,
    ) -> Result<Option<Session>, sqlx::Error> {
        let token_hash = hash(token);
        let row = sqlx::query(
            "SELECT username, user_id, password_tag, csrf FROM console_sessions \
             WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(&token_hash)
        .bind(now_ms())
        .fetch_optional(&self.db.read)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let (username, user_id, tag): (String, i64, String) = (r.get(0), r.get(1), r.get(2));
        match current(&username).await {
            Some((id, now_tag)) if id == user_id && same_token(&now_tag, &tag) => Ok(Some(Session {
                username,
                user_id,
                csrf: r.get(3),
                token_hash,
            })),
            // The password changed or the user is gone: the session ends here.
            _ => {
                self.close(&Session {
                    username,
                    user_id,
                    csrf: String::new(),
                    token_hash,
                })
                .await?;
                Ok(None)
            }
        }
    }

    pub async fn close(&self, session: &Session) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
            .bind(&session.token_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let h = "a=1; __Host-gatehouse-session=tok; b=2";
        assert_eq!(cookie(h, COOKIE), Some("tok"));
        assert_eq!(cookie(h, "session"), None);
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert_ne!(random_token(), random_token());
    }
}
