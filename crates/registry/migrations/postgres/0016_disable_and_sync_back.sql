-- Users duoprov disabled (`user_delete_mode = "disable"`), per provisioner: only these are
-- re-enabled when their subject is selected again; a user disabled by anyone else is left
-- disabled. Kept apart from `sync_user` so forgetting a link does not forget the disable.
CREATE TABLE sync_user_disabled (
    provisioner     TEXT NOT NULL,
    source          TEXT NOT NULL,
    subject_id      TEXT NOT NULL,
    duo_user_id     TEXT NOT NULL,
    disabled_at_ms  BIGINT NOT NULL,
    PRIMARY KEY (provisioner, source, subject_id)
);

-- Registry groups duoprov created to hold a provisioner's sync-back members ("users with Duo
-- set up"): duoprov writes the members of these groups only, never of a group it did not create.
-- The row goes with its group.
CREATE TABLE sync_back_group (
    provisioner    TEXT NOT NULL PRIMARY KEY,
    group_id       BIGINT NOT NULL UNIQUE REFERENCES grp (id) ON DELETE CASCADE,
    created_at_ms  BIGINT NOT NULL
);
