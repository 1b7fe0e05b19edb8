-- A repository's README (Markdown), edited by those who may push to it; shown in the
-- web console. Keyed by the normal repository's name.
CREATE TABLE repository_readmes (
    repository TEXT   PRIMARY KEY,
    content    TEXT   NOT NULL,
    updated_by TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
