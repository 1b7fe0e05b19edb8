-- Upload sessions staged in object storage (replicas share them): the names of the
-- session's chunk objects in order, as a JSON array; NULL for sessions staged in a
-- local file. A chunk counts only once its name is recorded here.
ALTER TABLE uploads ADD COLUMN chunks TEXT COLLATE "C";
