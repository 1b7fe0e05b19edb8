-- A remote's signature lookaside (Pulp's `sigstore`): the base URL under which the
-- upstream's simple signing signatures are published as containers/image writes them
-- (<url>/<repository>@sha256=<hex>/signature-<n>); NULL: the signature extension API.
ALTER TABLE remotes ADD COLUMN sigstore TEXT;
