-- duoprov incremental sync state, postgres dialect. The checkpoint is the change-log sequence number
-- up to which a provisioner's changes have reached Duo (or are tracked in sync_retry); the
-- retry table holds objects whose last attempt failed, with a deterministic next attempt time.
CREATE TABLE sync_checkpoint (
    provisioner          TEXT PRIMARY KEY,
    last_seq             BIGINT NOT NULL,
    updated_at_ms        BIGINT NOT NULL,
    last_full_ms         BIGINT,
    last_incremental_ms  BIGINT
);

-- One row per failed object: a group (subject empty), a user (group empty) or a membership.
CREATE TABLE sync_retry (
    provisioner   TEXT NOT NULL,
    group_uuid    TEXT NOT NULL,
    source        TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    attempts      INTEGER NOT NULL,
    next_at_ms    BIGINT NOT NULL,
    last_error    TEXT NOT NULL,
    PRIMARY KEY (provisioner, group_uuid, source, subject_id)
);
CREATE INDEX sync_retry_due ON sync_retry (provisioner, next_at_ms);

-- The Duo name an intended, unconfirmed create was for: a registry object removed before the
-- next run confirms its create still lets that run find (and, by policy, delete) its Duo object.
ALTER TABLE sync_group ADD COLUMN pending_name TEXT;
ALTER TABLE sync_user ADD COLUMN pending_name TEXT;
