-- The registry store's record of what exists. Blob bytes live in the blob store; a blob,
-- manifest or tag is visible only once its row here is committed.
-- Times are Unix milliseconds. SQL kept portable to PostgreSQL (BIGINT, TEXT, $n).

CREATE TABLE repositories (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL
);

-- state: 'live' (visible) or 'deleting' (garbage collection has claimed it: invisible,
-- its bytes may already be gone; an upload of the same digest revives it).
CREATE TABLE blobs (
    digest      TEXT    PRIMARY KEY,
    size        BIGINT  NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'live',
    created_at  BIGINT  NOT NULL
);

-- A blob is readable in a repository only through a link (uploaded or mounted there).
CREATE TABLE repository_blobs (
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT   NOT NULL,
    linked_at     BIGINT NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);

-- Manifests are content-addressed and global; repositories link to them.
CREATE TABLE manifests (
    digest        TEXT   PRIMARY KEY,
    media_type    TEXT   NOT NULL,
    artifact_type TEXT,
    subject       TEXT,
    annotations   TEXT,
    size          BIGINT NOT NULL,
    content       BLOB   NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX manifests_by_subject ON manifests(subject);

-- What a manifest references: blobs (config, layers) and child manifests (index).
CREATE TABLE manifest_blobs (
    manifest_digest TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    blob_digest     TEXT NOT NULL,
    PRIMARY KEY (manifest_digest, blob_digest)
);
CREATE INDEX manifest_blobs_by_blob ON manifest_blobs(blob_digest);

CREATE TABLE manifest_children (
    manifest_digest TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    child_digest    TEXT NOT NULL,
    PRIMARY KEY (manifest_digest, child_digest)
);

CREATE TABLE repository_manifests (
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT   NOT NULL REFERENCES manifests(digest),
    pushed_at     BIGINT NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_manifests_by_digest ON repository_manifests(digest);

CREATE TABLE tags (
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    name          TEXT   NOT NULL,
    digest        TEXT   NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (repository_id, name)
);
CREATE INDEX tags_by_digest ON tags(repository_id, digest);

-- Upload sessions; their bytes are staged in <data>/uploads/<id>.
CREATE TABLE uploads (
    id          TEXT   PRIMARY KEY,
    repository  TEXT   NOT NULL,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
