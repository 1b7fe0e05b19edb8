-- Distributions: a public name served from a normal repository's latest version, or
-- from a pinned version materialised into its own (hidden) repository.
-- name: the distribution's three-part name (org/product/name).
-- served_from: the store repository pulls of `name` read.
CREATE TABLE distributions (
    name        TEXT COLLATE "C"   PRIMARY KEY,
    repository  TEXT COLLATE "C"   NOT NULL,
    version     BIGINT,
    served_from TEXT COLLATE "C"   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX distributions_by_repository ON distributions(repository);

-- How an organisation's pushed repositories are named (and distributed):
-- NULL is the default, {org}/{product}/{name}.
ALTER TABLE orgs ADD COLUMN naming_pattern TEXT COLLATE "C";
