-- Open upload sessions are counted per repository when one more is asked for.
CREATE INDEX uploads_by_repository ON uploads (repository);
