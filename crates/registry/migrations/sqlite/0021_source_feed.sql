-- Each source's change feed (LDAP syncrepl) as the daemon last recorded it, for
-- `duoprov source status`: the mode (syncrepl, polling, schedule), whether the persistent search
-- is connected (1, 0, NULL when not syncrepl), since when, the last change it reported, why it is
-- down, and when the daemon last wrote the row.
CREATE TABLE source_feed (
    source          TEXT NOT NULL PRIMARY KEY,
    mode            TEXT NOT NULL,
    connected       INTEGER,
    since_ms        INTEGER NOT NULL,
    last_change_ms  INTEGER,
    error           TEXT,
    updated_at_ms   INTEGER NOT NULL
);
