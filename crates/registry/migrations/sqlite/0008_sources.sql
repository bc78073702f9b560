-- duoprov sources, sqlite dialect. source_group records the key a source knows each of its groups
-- by (an LDAP entryUUID, a file's group name), so a group renamed in the source is renamed in the
-- registry, keeping its uuid and links; the row goes with its group. source_run keeps the last
-- run of each source for `duoprov source status`: when it ended, its result, and its counts and
-- messages as JSON.
CREATE TABLE source_group (
    source      TEXT NOT NULL,
    source_key  TEXT NOT NULL,
    group_id    INTEGER NOT NULL UNIQUE REFERENCES grp (id) ON DELETE CASCADE,
    PRIMARY KEY (source, source_key)
);

CREATE TABLE source_run (
    source  TEXT NOT NULL PRIMARY KEY,
    at_ms   INTEGER NOT NULL,
    result  TEXT NOT NULL,
    detail  TEXT NOT NULL
);
