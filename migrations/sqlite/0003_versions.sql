-- Pulp's repository model: push repositories receive pushes (latest state only); each is
-- paired with a normal repository whose content changes only by numbered, immutable
-- versions. The normal repository's current content (tags, repository_manifests,
-- repository_blobs) is its latest version; version_content keeps every version by
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

-- Version content, incrementally (as Pulp keeps it): a row is in versions
-- added_in <= N < removed_in (removed_in NULL: still present). A change costs rows in
-- proportion to what changed, not to the repository's size.
-- kind: 'tag' (key = tag name, digest = what it points to), 'manifest' or 'blob'
-- (key = digest = the content's digest).
CREATE TABLE version_content (
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    kind          TEXT   NOT NULL,
    key           TEXT   NOT NULL,
    digest        TEXT   NOT NULL,
    added_in      BIGINT NOT NULL,
    removed_in    BIGINT
);
CREATE INDEX version_content_current ON version_content(repository_id, kind, key) WHERE removed_in IS NULL;
CREATE INDEX version_content_by_version ON version_content(repository_id, added_in);
CREATE INDEX version_content_by_digest ON version_content(digest);

-- The outbox: work recorded in the same transaction as the change that causes it, run
-- later (at least once) by the job runner; handlers are idempotent.
-- state: 'queued', 'done' or 'failed' (gave up after max attempts). A job runs inside
-- one write transaction that re-checks its state, so two runners never both apply it.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT   NOT NULL,
    payload     TEXT   NOT NULL,
    state       TEXT   NOT NULL DEFAULT 'queued',
    attempts    BIGINT NOT NULL DEFAULT 0,
    run_after   BIGINT NOT NULL,
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
