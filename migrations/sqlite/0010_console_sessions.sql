-- Web console sessions. The cookie holds a random token; only its SHA-256 is stored.
-- password_tag ties the session to the password it was opened with: a password change
-- (or the user's deletion) ends it. csrf is the session's form token.
CREATE TABLE console_sessions (
    token_hash   TEXT   PRIMARY KEY,
    username     TEXT   NOT NULL,
    user_id      BIGINT NOT NULL,
    password_tag TEXT   NOT NULL,
    csrf         TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions(username);
