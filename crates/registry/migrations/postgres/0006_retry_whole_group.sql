-- duoprov retry list, postgres dialect: a group's retry row can ask for its whole membership to be
-- reconciled (read from Duo), not only its attributes. A failed removal of a Duo member no
-- subject is linked to (a hand-made member) is scheduled this way: the next incremental run reads
-- the group's members and plans the removal again.
ALTER TABLE sync_retry ADD COLUMN whole_group BOOLEAN NOT NULL DEFAULT FALSE;
