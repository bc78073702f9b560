-- The console's reads: objects in error found through partial indexes of the errored links, so a
-- provisioner's page does not scan every link (a million memberships) to list its few errors.
CREATE INDEX sync_group_errors ON sync_group (provisioner, error_at) WHERE error_code IS NOT NULL;
CREATE INDEX sync_user_errors ON sync_user (provisioner, error_at) WHERE error_code IS NOT NULL;
CREATE INDEX sync_membership_errors ON sync_membership (provisioner, error_at) WHERE error_code IS NOT NULL;
