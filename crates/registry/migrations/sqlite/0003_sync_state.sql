-- duoprov sync state, sqlite dialect: what each provisioner knows of Duo. Links outlive the
-- registry objects they pair (a deleted group's link says whether duoprov created its Duo
-- group), so there are no foreign keys to the registry tables. Times are epoch seconds, except
-- the run log's milliseconds.
CREATE TABLE sync_group (
    provisioner        TEXT NOT NULL,
    group_uuid         TEXT NOT NULL,
    duo_group_id       TEXT,
    in_target          BOOLEAN NOT NULL,
    created_by_us      BOOLEAN NOT NULL,
    first_provisioned  INTEGER,
    last_provisioned   INTEGER,
    error_code         TEXT,
    error_message      TEXT,
    error_at           INTEGER,
    PRIMARY KEY (provisioner, group_uuid)
);

CREATE TABLE sync_user (
    provisioner        TEXT NOT NULL,
    source             TEXT NOT NULL,
    subject_id         TEXT NOT NULL,
    duo_user_id        TEXT,
    in_target          BOOLEAN NOT NULL,
    created_by_us      BOOLEAN NOT NULL,
    first_provisioned  INTEGER,
    last_provisioned   INTEGER,
    error_code         TEXT,
    error_message      TEXT,
    error_at           INTEGER,
    PRIMARY KEY (provisioner, source, subject_id)
);

CREATE TABLE sync_membership (
    provisioner        TEXT NOT NULL,
    group_uuid         TEXT NOT NULL,
    source             TEXT NOT NULL,
    subject_id         TEXT NOT NULL,
    in_target          BOOLEAN NOT NULL,
    first_provisioned  INTEGER,
    last_provisioned   INTEGER,
    error_code         TEXT,
    error_message      TEXT,
    error_at           INTEGER,
    PRIMARY KEY (provisioner, group_uuid, source, subject_id)
);

CREATE TABLE sync_run (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    provisioner     TEXT NOT NULL,
    kind            TEXT NOT NULL,
    dry_run         BOOLEAN NOT NULL,
    started_at_ms   INTEGER NOT NULL,
    finished_at_ms  INTEGER,
    status          TEXT NOT NULL,
    counts          TEXT NOT NULL,
    timings         TEXT NOT NULL,
    message         TEXT
);
CREATE INDEX sync_run_provisioner ON sync_run (provisioner, id);
