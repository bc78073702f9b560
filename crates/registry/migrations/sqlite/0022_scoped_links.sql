-- An incremental run reads the links of the Duo users it meets by their Duo user id, and counts
-- the users a provisioner manages without reading every link: one index for each.
CREATE INDEX sync_user_duo_user ON sync_user (provisioner, duo_user_id);
CREATE INDEX sync_user_managed ON sync_user (provisioner) WHERE in_target AND duo_user_id IS NOT NULL;
