-- duoprov sync state, postgres dialect: one unit for every time. Links, memberships and errors
-- recorded epoch seconds; the run log, checkpoint and retry list milliseconds. From here on all
-- are milliseconds since the epoch: the seconds columns are scaled so existing rows keep meaning
-- the same instants.
UPDATE sync_group SET first_provisioned = first_provisioned * 1000, last_provisioned = last_provisioned * 1000,
    error_at = error_at * 1000, pending_at = pending_at * 1000;
UPDATE sync_user SET first_provisioned = first_provisioned * 1000, last_provisioned = last_provisioned * 1000,
    error_at = error_at * 1000, pending_at = pending_at * 1000;
UPDATE sync_membership SET first_provisioned = first_provisioned * 1000, last_provisioned = last_provisioned * 1000,
    error_at = error_at * 1000;
