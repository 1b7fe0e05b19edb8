-- Long jobs (syncs) run outside any transaction: a runner claims one by setting
-- state 'running' and a lease it renews while it works; a lease that runs out (the
-- runner died) makes the job claimable again. progress: JSON the job reports.
ALTER TABLE jobs ADD COLUMN lease_until BIGINT;
ALTER TABLE jobs ADD COLUMN progress TEXT;

-- Remotes: another registry's repository mirrored into a product's repository.
-- password_sealed: the password encrypted with the data directory's secret key
-- (ChaCha20-Poly1305), never returned by the API.
CREATE TABLE remotes (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    org              TEXT   NOT NULL,
    product          TEXT   NOT NULL,
    name             TEXT   NOT NULL,
    url              TEXT   NOT NULL,
    upstream_name    TEXT   NOT NULL,
    -- The local normal repository the remote syncs into.
    repository       TEXT   NOT NULL,
    include_tags     TEXT   NOT NULL,
    exclude_tags     TEXT   NOT NULL,
    mirror           BIGINT NOT NULL,
    policy           TEXT   NOT NULL,
    username         TEXT,
    password_sealed  TEXT,
    ca_certificate   TEXT,
    last_job         BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (org, product, name)
);

-- Blobs an on_demand sync knows of but has not fetched: the remote that serves them.
CREATE TABLE remote_blobs (
    digest     TEXT   NOT NULL,
    remote_id  BIGINT NOT NULL REFERENCES remotes(id) ON DELETE CASCADE,
    size       BIGINT NOT NULL,
    PRIMARY KEY (digest, remote_id)
);

-- Smart proxies (edge sites) that mirror some organisations of this server.
-- credential_hash: Argon2id of the edge's secret, shown once at registration.
CREATE TABLE smart_proxies (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT   NOT NULL UNIQUE,
    url              TEXT   NOT NULL,
    orgs             TEXT   NOT NULL,
    sync_after_push  BIGINT NOT NULL,
    credential_hash  TEXT   NOT NULL,
    credential_id    TEXT   NOT NULL,
    last_sync_at     BIGINT,
    last_synced_event BIGINT NOT NULL DEFAULT 0,
    -- content_events up to this id have been turned into notifications (outbox).
    last_notified_event BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
