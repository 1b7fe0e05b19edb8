-- Pulp's repository model: push repositories receive pushes (latest state only); each is
-- paired with a normal repository whose content changes only by numbered, immutable
-- versions. The normal repository's current content (tags, repository_manifests,
-- repository_blobs) is its latest version; version_* rows keep every version by
-- reference (metadata only, no bytes).
-- kind: 'plain' (an ordinary OCI repository), 'push' or 'normal'.
ALTER TABLE repositories ADD COLUMN kind TEXT NOT NULL DEFAULT 'plain';
-- push repository -> its normal repository.
ALTER TABLE repositories ADD COLUMN normal_id BIGINT REFERENCES repositories(id);
ALTER TABLE repositories ADD COLUMN latest_version BIGINT NOT NULL DEFAULT 0;

CREATE TABLE repository_versions (
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    number        BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    -- Why it exists: "push 1.1", "rollback to 3", "delete tag 1.0", ...
    reason        TEXT   NOT NULL,
    -- JSON: {"added":{"tags","manifests","blobs"},"removed":{…},"present":{…}}
    summary       TEXT   NOT NULL,
    PRIMARY KEY (repository_id, number)
);

CREATE TABLE version_tags (
    repository_id BIGINT NOT NULL,
    number        BIGINT NOT NULL,
    name          TEXT   NOT NULL,
    digest        TEXT   NOT NULL,
    PRIMARY KEY (repository_id, number, name),
    FOREIGN KEY (repository_id, number) REFERENCES repository_versions(repository_id, number) ON DELETE CASCADE
);

CREATE TABLE version_manifests (
    repository_id BIGINT NOT NULL,
    number        BIGINT NOT NULL,
    digest        TEXT   NOT NULL,
    PRIMARY KEY (repository_id, number, digest),
    FOREIGN KEY (repository_id, number) REFERENCES repository_versions(repository_id, number) ON DELETE CASCADE
);
CREATE INDEX version_manifests_by_digest ON version_manifests(digest);

CREATE TABLE version_blobs (
    repository_id BIGINT NOT NULL,
    number        BIGINT NOT NULL,
    digest        TEXT   NOT NULL,
    PRIMARY KEY (repository_id, number, digest),
    FOREIGN KEY (repository_id, number) REFERENCES repository_versions(repository_id, number) ON DELETE CASCADE
);
CREATE INDEX version_blobs_by_digest ON version_blobs(digest);

-- The outbox: work recorded in the same transaction as the change that causes it, run
-- later (at least once) by the job runner; handlers are idempotent.
-- state: 'queued', 'done' or 'failed' (gave up); a queued job whose lease has not run
-- out is being worked on.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT   NOT NULL,
    payload     TEXT   NOT NULL,
    state       TEXT   NOT NULL DEFAULT 'queued',
    attempts    BIGINT NOT NULL DEFAULT 0,
    run_after   BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX jobs_runnable ON jobs(state, run_after);

-- "Content changed" events for smart-proxy (edge) syncs, kept durably.
CREATE TABLE content_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    repository  TEXT   NOT NULL,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
