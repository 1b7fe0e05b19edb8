-- Organisations' signing keys. kind: 'gpg' (an OpenPGP key: public_key is the armored
-- certificate, fingerprint its v4 fingerprint in upper-case hex). The private key, when
-- gatehouse holds it, is sealed with the secrets key (never stored in clear, never
-- returned); a key imported public-only can verify but not sign.
CREATE TABLE signing_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org            TEXT   NOT NULL,
    name           TEXT   NOT NULL,
    kind           TEXT   NOT NULL,
    fingerprint    TEXT   NOT NULL,
    public_key     TEXT   NOT NULL,
    private_sealed TEXT,
    created_at     BIGINT NOT NULL,
    UNIQUE (org, name)
);

-- A product's signing requirement: a JSON array of the organisation's key names, one of
-- which must have signed a manifest for it to be pulled; NULL: none.
ALTER TABLE products ADD COLUMN require_signed_by TEXT;

-- The signing key the post-push copy signs pushed tags with; NULL: none.
ALTER TABLE products ADD COLUMN sign_on_push TEXT;

-- A remote that takes only what its upstream signed (tags whose manifest has at least
-- one signature through the upstream's signature extension): 1, or 0 for everything.
ALTER TABLE remotes ADD COLUMN signed_only BIGINT NOT NULL DEFAULT 0;
