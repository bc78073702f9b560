-- duoprov audit trail, sqlite dialect: every change duoprov makes in Duo (with Duo's answer) and every
-- source change it applies to the registry, appended and never pruned. seq is assigned by the
-- appender under the audit lock (head + 1, no gaps), and hash is the SHA-256 of the entry's
-- canonical serialization including prev_hash, the previous entry's hash (all zeros for the
-- first), so `duoprov audit verify` finds an edited, deleted or reordered entry. before_json and
-- after_json hold the object before and after the change as JSON text, hashed as stored.
CREATE TABLE audit_log (
    seq          INTEGER NOT NULL PRIMARY KEY,
    at_ms        INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    run_id       INTEGER,
    approval     TEXT,
    source       TEXT,
    provisioner  TEXT,
    object_kind  TEXT NOT NULL,
    object_name  TEXT NOT NULL,
    object_uuid  TEXT,
    action       TEXT NOT NULL,
    before_json  TEXT,
    after_json   TEXT,
    duo_status   TEXT,
    duo_code     INTEGER,
    duo_message  TEXT,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);

CREATE INDEX audit_log_at ON audit_log (at_ms);
CREATE INDEX audit_log_object ON audit_log (object_name);
