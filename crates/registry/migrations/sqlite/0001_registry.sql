-- duoprov registry schema, SQLite dialect. Timestamps are epoch seconds or milliseconds in
-- INTEGER columns so the same queries run on PostgreSQL.
CREATE TABLE subject (
    id           INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    name         TEXT,
    login_id     TEXT,
    email        TEXT,
    first_name   TEXT,
    last_name    TEXT,
    description  TEXT,
    UNIQUE (source, subject_id)
);
CREATE INDEX subject_login_id ON subject (login_id);

CREATE TABLE folder (
    id            INTEGER PRIMARY KEY,
    path          TEXT NOT NULL UNIQUE,
    parent_id     INTEGER REFERENCES folder (id),
    display_name  TEXT,
    description   TEXT
);
CREATE INDEX folder_parent ON folder (parent_id);

CREATE TABLE grp (
    id            INTEGER PRIMARY KEY,
    uuid          TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL UNIQUE,
    folder_id     INTEGER REFERENCES folder (id),
    display_name  TEXT,
    description   TEXT
);
CREATE INDEX grp_folder ON grp (folder_id);

CREATE TABLE member_subject (
    group_id    INTEGER NOT NULL REFERENCES grp (id) ON DELETE CASCADE,
    subject_id  INTEGER NOT NULL REFERENCES subject (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, subject_id)
) WITHOUT ROWID;
CREATE INDEX member_subject_subject ON member_subject (subject_id);

CREATE TABLE member_group (
    group_id         INTEGER NOT NULL REFERENCES grp (id) ON DELETE CASCADE,
    member_group_id  INTEGER NOT NULL REFERENCES grp (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, member_group_id),
    CHECK (group_id <> member_group_id)
) WITHOUT ROWID;
CREATE INDEX member_group_member ON member_group (member_group_id);

CREATE TABLE marker (
    id           INTEGER PRIMARY KEY,
    provisioner  TEXT NOT NULL,
    folder_id    INTEGER REFERENCES folder (id) ON DELETE CASCADE,
    group_id     INTEGER REFERENCES grp (id) ON DELETE CASCADE,
    scope        TEXT NOT NULL CHECK (scope IN ('one', 'sub')),
    provision    BOOLEAN NOT NULL,
    CHECK ((folder_id IS NULL) <> (group_id IS NULL))
);
CREATE UNIQUE INDEX marker_folder ON marker (provisioner, folder_id) WHERE folder_id IS NOT NULL;
CREATE UNIQUE INDEX marker_group ON marker (provisioner, group_id) WHERE group_id IS NOT NULL;

CREATE TABLE change_log (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms         INTEGER NOT NULL,
    kind          TEXT NOT NULL,
    groups        TEXT NOT NULL,
    subjects      TEXT NOT NULL,
    provisioners  TEXT NOT NULL,
    detail        TEXT NOT NULL
);
