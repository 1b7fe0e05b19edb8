-- Simple-signing ("atomic", GPG) signatures of manifests, served by the signature
-- extension API. Content-addressed like manifests (digest: sha256 of the signature
-- bytes); `name` is what the client called it ("<manifest digest>@<32 hex>").
-- Repositories link to them; versions record them (version_content kind 'signature',
-- key = signature digest, digest = the signed manifest's digest).
CREATE TABLE signatures (
    digest          TEXT   PRIMARY KEY,
    manifest_digest TEXT   NOT NULL,
    name            TEXT   NOT NULL,
    content         BLOB   NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE repository_signatures (
    repository_id   BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest          TEXT   NOT NULL REFERENCES signatures(digest),
    manifest_digest TEXT   NOT NULL,
    linked_at       BIGINT NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_signatures_by_manifest ON repository_signatures(repository_id, manifest_digest);
