-- The Duo group name each selected group renders to under a provisioner's templates (NULL when
-- its name does not render or cannot be sent: such a group is held, and clashes with none), one
-- row per selected group, so an incremental run renders only the groups in its scope, finds the
-- groups sharing a rendered name with one index lookup, and counts the selected groups without
-- reading them. `rendered_group_state` records the fingerprint of the rendering and selection
-- settings the rows were made with; rows under another fingerprint are not used.
CREATE TABLE rendered_group (
    provisioner  TEXT NOT NULL,
    group_uuid   TEXT NOT NULL,
    name         TEXT,
    PRIMARY KEY (provisioner, group_uuid)
);
CREATE INDEX rendered_group_name ON rendered_group (provisioner, name);

CREATE TABLE rendered_group_state (
    provisioner  TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL,
    at_ms        BIGINT NOT NULL
);

-- A scoped run reads the group links of the Duo groups it meets by their Duo group id, and counts
-- the groups a provisioner manages without reading every link.
CREATE INDEX sync_group_duo_group ON sync_group (provisioner, duo_group_id);
CREATE INDEX sync_group_managed ON sync_group (provisioner) WHERE in_target AND duo_group_id IS NOT NULL;
