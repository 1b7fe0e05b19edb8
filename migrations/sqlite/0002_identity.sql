-- Who may do what: users, organisations and their products, role bindings, pull
-- secrets; and the audit log. Times are Unix milliseconds; booleans are 0/1 BIGINT.
-- Ids come from AUTOINCREMENT and are never reused, so a token naming a credential id
-- can never match a later credential of the same name.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    -- Argon2id PHC string.
    password_hash TEXT    NOT NULL,
    global_admin  BIGINT  NOT NULL DEFAULT 0,
    created_at    BIGINT  NOT NULL
);

CREATE TABLE orgs (
    label       TEXT   PRIMARY KEY,
    name        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE products (
    org         TEXT   NOT NULL REFERENCES orgs(label) ON DELETE CASCADE,
    label       TEXT   NOT NULL,
    public      BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org, label)
);

-- product '' binds the role on the whole organisation.
CREATE TABLE role_bindings (
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    org         TEXT   NOT NULL REFERENCES orgs(label) ON DELETE CASCADE,
    product     TEXT   NOT NULL DEFAULT '',
    role        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, org, product, role)
);
CREATE INDEX role_bindings_by_org ON role_bindings(org);

-- Robot credentials of one organisation. products: JSON array of product labels, or
-- NULL for every product of the org. Revoking deletes the row.
CREATE TABLE pull_secrets (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    username     TEXT   NOT NULL UNIQUE,
    org          TEXT   NOT NULL REFERENCES orgs(label) ON DELETE CASCADE,
    name         TEXT   NOT NULL,
    secret_hash  TEXT   NOT NULL,
    products     TEXT,
    can_push     BIGINT NOT NULL DEFAULT 0,
    expires_at   BIGINT,
    created_by   TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    UNIQUE (org, name)
);

-- Bounded by the audit_retention and audit_max_events settings.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    actor_kind  TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    org         TEXT,
    target      TEXT   NOT NULL,
    outcome     TEXT   NOT NULL,
    remote      TEXT,
    detail      TEXT
);
CREATE INDEX audit_events_by_org ON audit_events(org, id);
CREATE INDEX audit_events_by_at ON audit_events(at);
