-- The username each selected subject renders to under a provisioner's templates (its
-- lowercase form, what clash detection compares), so an incremental run checks a changed
-- subject's username against every other subject with one index lookup instead of reading
-- the whole selection. `rendered_state` records the fingerprint of the rendering settings the
-- rows were made with; rows under another fingerprint are not used.
CREATE TABLE rendered_username (
    provisioner  TEXT NOT NULL,
    source       TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    username_key TEXT NOT NULL,
    PRIMARY KEY (provisioner, source, subject_id)
);
CREATE INDEX rendered_username_key ON rendered_username (provisioner, username_key);

CREATE TABLE rendered_state (
    provisioner  TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL,
    at_ms        BIGINT NOT NULL
);
