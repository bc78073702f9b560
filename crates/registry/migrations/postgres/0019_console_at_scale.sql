-- The console at scale. Each provisioner's link counts by kind and state, kept with the links by
-- statement-level triggers (one upsert per statement, summed over its transition tables) on
-- every insert, update and delete of `sync_group`, `sync_user` and `sync_membership` (so every
-- write path keeps them exact), instead of counting a million
-- membership links per view; the lowercased name index the group search reads (a prefix of
-- the full name or of the name within a folder); and each Duo user's username key
-- (`duoprov_model::username_key`, written by the loader), compared with the recorded rendered
-- usernames of 0018 for "not in the registry" (indexed, so the usernames missing from the
-- recorded ones are a merge of two index scans). Rows loaded before this migration get the key
-- only when their username is plain ASCII (where SQL's lower() is the same); the others stay
-- NULL until the next load, and the console renders the template while any is NULL.
CREATE TABLE link_count (
    provisioner    TEXT NOT NULL,
    kind           TEXT NOT NULL,
    total          BIGINT NOT NULL DEFAULT 0,
    in_target      BIGINT NOT NULL DEFAULT 0,
    linked         BIGINT NOT NULL DEFAULT 0,
    created_by_us  BIGINT NOT NULL DEFAULT 0,
    in_error       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (provisioner, kind)
);

INSERT INTO link_count (provisioner, kind, total, in_target, linked, created_by_us, in_error)
SELECT provisioner, 'groups', COUNT(*), SUM(CASE WHEN in_target THEN 1 ELSE 0 END), SUM(CASE WHEN duo_group_id IS NOT NULL THEN 1 ELSE 0 END),
       SUM(CASE WHEN created_by_us THEN 1 ELSE 0 END), SUM(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END)
FROM sync_group GROUP BY provisioner;

INSERT INTO link_count (provisioner, kind, total, in_target, linked, created_by_us, in_error)
SELECT provisioner, 'users', COUNT(*), SUM(CASE WHEN in_target THEN 1 ELSE 0 END), SUM(CASE WHEN duo_user_id IS NOT NULL THEN 1 ELSE 0 END),
       SUM(CASE WHEN created_by_us THEN 1 ELSE 0 END), SUM(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END)
FROM sync_user GROUP BY provisioner;

INSERT INTO link_count (provisioner, kind, total, in_target, linked, created_by_us, in_error)
SELECT provisioner, 'memberships', COUNT(*), SUM(CASE WHEN in_target THEN 1 ELSE 0 END), SUM(CASE WHEN last_provisioned IS NOT NULL THEN 1 ELSE 0 END),
       SUM(0), SUM(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END)
FROM sync_membership GROUP BY provisioner;

CREATE FUNCTION sync_group_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO link_count (provisioner, kind, total, in_target, linked, created_by_us, in_error)
    SELECT provisioner, 'groups', SUM(total), SUM(in_target), SUM(linked), SUM(created_by_us), SUM(in_error)
    FROM (SELECT provisioner, +1 AS total, +(CASE WHEN in_target THEN 1 ELSE 0 END) AS in_target, +(CASE WHEN duo_group_id IS NOT NULL THEN 1 ELSE 0 END) AS linked, +(CASE WHEN created_by_us THEN 1 ELSE 0 END) AS created_by_us, +(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END) AS in_error FROM new_rows) d GROUP BY provisioner
    ON CONFLICT (provisioner, kind) DO UPDATE SET total = link_count.total + excluded.total, in_target = link_count.in_target + excluded.in_target,
        linked = link_count.linked + excluded.linked, created_by_us = link_count.created_by_us + excluded.created_by_us,
        in_error = link_count.in_error + excluded.in_error;
    RETURN NULL;
END $$;
CREATE TRIGGER sync_group_count_insert AFTER INSERT ON sync_group REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_group_count_insert();

CREATE FUNCTION sync_group_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO link_count (provisioner, kind, total, in_target, linked, created_by_us, in_error)
    SELECT provisioner, 'groups', SUM(total), SUM(in_target), SUM(linked), SUM(created_by_us), SUM(in_error)
    FROM (SELECT provisioner, -1 AS total, -(CASE WHEN in_target THEN 1 ELSE 0 END) AS in_target, -(CASE WHEN duo_group_id IS NOT NULL THEN 1 ELSE 0 END) AS linked, -(CASE WHEN created_by_us THEN 1 ELSE 0 END) AS created_by_us, -(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END) AS in_error FROM old_rows) d GROUP BY provisioner
    ON CONFLICT (provisioner, kind) DO UPDATE SET total = link_count.total + excluded.total, in_target = link_count.in_target + excluded.in_target,
        linked = link_count.linked + excluded.linked, created_by_us = link_count.created_by_us + excluded.created_by_us,
        in_error = link_count.in_error + excluded.in_error;
    RETURN NULL;
END $$;
CREATE TRIGGER sync_group_count_delete AFTER DELETE ON sync_group REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_group_count_delete();

CREATE FUNCTION sync_group_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO link_count (provisioner, kind, total, in_target, linked, created_by_us, in_error)
    SELECT provisioner, 'groups', SUM(total), SUM(in_target), SUM(linked), SUM(created_by_us), SUM(in_error)
    FROM (SELECT provisioner, +1 AS total, +(CASE WHEN in_target THEN 1 ELSE 0 END) AS in_target, +(CASE WHEN duo_group_id IS NOT NULL THEN 1 ELSE 0 END) AS linked, +(CASE WHEN created_by_us THEN 1 ELSE 0 END) AS created_by_us, +(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END) AS in_error FROM new_rows UNION ALL SELECT provisioner, -1 AS total, -(CASE WHEN in_target THEN 1 ELSE 0 END) AS in_target, -(CASE WHEN duo_group_id IS NOT NULL THEN 1 ELSE 0 END) AS linked, -(CASE WHEN created_by_us THEN 1 ELSE 0 END) AS created_by_us, -(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END) AS in_error FROM old_rows) d GROUP BY provisioner
    ON CONFLICT (provisioner, kind) DO UPDATE SET total = link_count.total + excluded.total, in_target = link_count.in_target + excluded.in_target,
        linked = link_count.linked + excluded.linked, created_by_us = link_count.created_by_us + excluded.created_by_us,
        in_error = link_count.in_error + excluded.in_error;
    RETURN NULL;
END $$;
CREATE TRIGGER sync_group_count_update AFTER UPDATE ON sync_group REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_group_count_update();

CREATE FUNCTION sync_user_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO link_count (provisioner, kind, total, in_target, linked, created_by_us, in_error)
    SELECT provisioner, 'users', SUM(total), SUM(in_target), SUM(linked), SUM(created_by_us), SUM(in_error)
    FROM (SELECT provisioner, +1 AS total, +(CASE WHEN in_target THEN 1 ELSE 0 END) AS in_target, +(CASE WHEN duo_user_id IS NOT NULL THEN 1 ELSE 0 END) AS linked, +(CASE WHEN created_by_us THEN 1 ELSE 0 END) AS created_by_us, +(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END) AS in_error FROM new_rows) d GROUP BY provisioner
    ON CONFLICT (provisioner, kind) DO UPDATE SET total = link_count.total + excluded.total, in_target = link_count.in_target + excluded.in_target,
        linked = link_count.linked + excluded.linked, created_by_us = link_count.created_by_us + excluded.created_by_us,
        in_error = link_count.in_error + excluded.in_error;
    RETURN NULL;
END $$;
CREATE TRIGGER sync_user_count_insert AFTER INSERT ON sync_user REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_user_count_insert();

CREATE FUNCTION sync_user_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO link_count (provisioner, kind, total, in_target, linked, created_by_us, in_error)
    SELECT provisioner, 'users', SUM(total), SUM(in_target), SUM(linked), SUM(created_by_us), SUM(in_error)
    FROM (SELECT provisioner, -1 AS total, -(CASE WHEN in_target THEN 1 ELSE 0 END) AS in_target, -(CASE WHEN duo_user_id IS NOT NULL THEN 1 ELSE 0 END) AS linked, -(CASE WHEN created_by_us THEN 1 ELSE 0 END) AS created_by_us, -(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END) AS in_error FROM old_rows) d GROUP BY provisioner
    ON CONFLICT (provisioner, kind) DO UPDATE SET total = link_count.total + excluded.total, in_target = link_count.in_target + excluded.in_target,
        linked = link_count.linked + excluded.linked, created_by_us = link_count.created_by_us + excluded.created_by_us,
        in_error = link_count.in_error + excluded.in_error;
    RETURN NULL;
END $$;
CREATE TRIGGER sync_user_count_delete AFTER DELETE ON sync_user REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_user_count_delete();

CREATE FUNCTION sync_user_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO link_count (provisioner, kind, total, in_target, linked, created_by_us, in_error)
    SELECT provisioner, 'users', SUM(total), SUM(in_target), SUM(linked), SUM(created_by_us), SUM(in_error)
    FROM (SELECT provisioner, +1 AS total, +(CASE WHEN in_target THEN 1 ELSE 0 END) AS in_target, +(CASE WHEN duo_user_id IS NOT NULL THEN 1 ELSE 0 END) AS linked, +(CASE WHEN created_by_us THEN 1 ELSE 0 END) AS created_by_us, +(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END) AS in_error FROM new_rows UNION ALL SELECT provisioner, -1 AS total, -(CASE WHEN in_target THEN 1 ELSE 0 END) AS in_target, -(CASE WHEN duo_user_id IS NOT NULL THEN 1 ELSE 0 END) AS linked, -(CASE WHEN created_by_us THEN 1 ELSE 0 END) AS created_by_us, -(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END) AS in_error FROM old_rows) d GROUP BY provisioner
    ON CONFLICT (provisioner, kind) DO UPDATE SET total = link_count.total + excluded.total, in_target = link_count.in_target + excluded.in_target,
        linked = link_count.linked + excluded.linked, created_by_us = link_count.created_by_us + excluded.created_by_us,
        in_error = link_count.in_error + excluded.in_error;
    RETURN NULL;
END $$;
CREATE TRIGGER sync_user_count_update AFTER UPDATE ON sync_user REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_user_count_update();

CREATE FUNCTION sync_membership_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO link_count (provisioner, kind, total, in_target, linked, created_by_us, in_error)
    SELECT provisioner, 'memberships', SUM(total), SUM(in_target), SUM(linked), SUM(created_by_us), SUM(in_error)
    FROM (SELECT provisioner, +1 AS total, +(CASE WHEN in_target THEN 1 ELSE 0 END) AS in_target, +(CASE WHEN last_provisioned IS NOT NULL THEN 1 ELSE 0 END) AS linked, +(0) AS created_by_us, +(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END) AS in_error FROM new_rows) d GROUP BY provisioner
    ON CONFLICT (provisioner, kind) DO UPDATE SET total = link_count.total + excluded.total, in_target = link_count.in_target + excluded.in_target,
        linked = link_count.linked + excluded.linked, created_by_us = link_count.created_by_us + excluded.created_by_us,
        in_error = link_count.in_error + excluded.in_error;
    RETURN NULL;
END $$;
CREATE TRIGGER sync_membership_count_insert AFTER INSERT ON sync_membership REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_membership_count_insert();

CREATE FUNCTION sync_membership_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO link_count (provisioner, kind, total, in_target, linked, created_by_us, in_error)
    SELECT provisioner, 'memberships', SUM(total), SUM(in_target), SUM(linked), SUM(created_by_us), SUM(in_error)
    FROM (SELECT provisioner, -1 AS total, -(CASE WHEN in_target THEN 1 ELSE 0 END) AS in_target, -(CASE WHEN last_provisioned IS NOT NULL THEN 1 ELSE 0 END) AS linked, -(0) AS created_by_us, -(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END) AS in_error FROM old_rows) d GROUP BY provisioner
    ON CONFLICT (provisioner, kind) DO UPDATE SET total = link_count.total + excluded.total, in_target = link_count.in_target + excluded.in_target,
        linked = link_count.linked + excluded.linked, created_by_us = link_count.created_by_us + excluded.created_by_us,
        in_error = link_count.in_error + excluded.in_error;
    RETURN NULL;
END $$;
CREATE TRIGGER sync_membership_count_delete AFTER DELETE ON sync_membership REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_membership_count_delete();

CREATE FUNCTION sync_membership_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO link_count (provisioner, kind, total, in_target, linked, created_by_us, in_error)
    SELECT provisioner, 'memberships', SUM(total), SUM(in_target), SUM(linked), SUM(created_by_us), SUM(in_error)
    FROM (SELECT provisioner, +1 AS total, +(CASE WHEN in_target THEN 1 ELSE 0 END) AS in_target, +(CASE WHEN last_provisioned IS NOT NULL THEN 1 ELSE 0 END) AS linked, +(0) AS created_by_us, +(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END) AS in_error FROM new_rows UNION ALL SELECT provisioner, -1 AS total, -(CASE WHEN in_target THEN 1 ELSE 0 END) AS in_target, -(CASE WHEN last_provisioned IS NOT NULL THEN 1 ELSE 0 END) AS linked, -(0) AS created_by_us, -(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END) AS in_error FROM old_rows) d GROUP BY provisioner
    ON CONFLICT (provisioner, kind) DO UPDATE SET total = link_count.total + excluded.total, in_target = link_count.in_target + excluded.in_target,
        linked = link_count.linked + excluded.linked, created_by_us = link_count.created_by_us + excluded.created_by_us,
        in_error = link_count.in_error + excluded.in_error;
    RETURN NULL;
END $$;
CREATE TRIGGER sync_membership_count_update AFTER UPDATE ON sync_membership REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_membership_count_update();

CREATE INDEX grp_name_lower_c ON grp ((lower(name) COLLATE "C"));

ALTER TABLE duo_user ADD COLUMN user_name_key TEXT;
UPDATE duo_user SET user_name_key = lower(user_name) WHERE user_name !~ '[^ -~]';
CREATE INDEX duo_user_unkeyed ON duo_user (config_id) WHERE user_name_key IS NULL;
CREATE INDEX duo_user_key ON duo_user (config_id, user_name_key);
