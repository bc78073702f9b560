-- The console at scale. Each provisioner's link counts by kind and state, kept with the links by
-- triggers on every insert, update and delete of `sync_group`, `sync_user` and
-- `sync_membership` (so every write path keeps them exact), instead of counting a million
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
       0, SUM(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END)
FROM sync_membership GROUP BY provisioner;

-- sync_group
CREATE TRIGGER sync_group_count_insert AFTER INSERT ON sync_group BEGIN
    INSERT INTO link_count (provisioner, kind) SELECT NEW.provisioner, 'groups'
        WHERE NOT EXISTS (SELECT 1 FROM link_count WHERE provisioner = NEW.provisioner AND kind = 'groups');
    UPDATE link_count SET total = total + 1,
        in_target = in_target + (CASE WHEN NEW.in_target THEN 1 ELSE 0 END),
        linked = linked + (CASE WHEN NEW.duo_group_id IS NOT NULL THEN 1 ELSE 0 END),
        created_by_us = created_by_us + (CASE WHEN NEW.created_by_us THEN 1 ELSE 0 END),
        in_error = in_error + (CASE WHEN NEW.error_code IS NOT NULL THEN 1 ELSE 0 END)
    WHERE provisioner = NEW.provisioner AND kind = 'groups';
END;
CREATE TRIGGER sync_group_count_delete AFTER DELETE ON sync_group BEGIN
    UPDATE link_count SET total = total - 1,
        in_target = in_target - (CASE WHEN OLD.in_target THEN 1 ELSE 0 END),
        linked = linked - (CASE WHEN OLD.duo_group_id IS NOT NULL THEN 1 ELSE 0 END),
        created_by_us = created_by_us - (CASE WHEN OLD.created_by_us THEN 1 ELSE 0 END),
        in_error = in_error - (CASE WHEN OLD.error_code IS NOT NULL THEN 1 ELSE 0 END)
    WHERE provisioner = OLD.provisioner AND kind = 'groups';
END;
CREATE TRIGGER sync_group_count_update AFTER UPDATE ON sync_group BEGIN
    UPDATE link_count SET total = total - 1,
        in_target = in_target - (CASE WHEN OLD.in_target THEN 1 ELSE 0 END),
        linked = linked - (CASE WHEN OLD.duo_group_id IS NOT NULL THEN 1 ELSE 0 END),
        created_by_us = created_by_us - (CASE WHEN OLD.created_by_us THEN 1 ELSE 0 END),
        in_error = in_error - (CASE WHEN OLD.error_code IS NOT NULL THEN 1 ELSE 0 END)
    WHERE provisioner = OLD.provisioner AND kind = 'groups';
    INSERT INTO link_count (provisioner, kind) SELECT NEW.provisioner, 'groups'
        WHERE NOT EXISTS (SELECT 1 FROM link_count WHERE provisioner = NEW.provisioner AND kind = 'groups');
    UPDATE link_count SET total = total + 1,
        in_target = in_target + (CASE WHEN NEW.in_target THEN 1 ELSE 0 END),
        linked = linked + (CASE WHEN NEW.duo_group_id IS NOT NULL THEN 1 ELSE 0 END),
        created_by_us = created_by_us + (CASE WHEN NEW.created_by_us THEN 1 ELSE 0 END),
        in_error = in_error + (CASE WHEN NEW.error_code IS NOT NULL THEN 1 ELSE 0 END)
    WHERE provisioner = NEW.provisioner AND kind = 'groups';
END;

-- sync_user
CREATE TRIGGER sync_user_count_insert AFTER INSERT ON sync_user BEGIN
    INSERT INTO link_count (provisioner, kind) SELECT NEW.provisioner, 'users'
        WHERE NOT EXISTS (SELECT 1 FROM link_count WHERE provisioner = NEW.provisioner AND kind = 'users');
    UPDATE link_count SET total = total + 1,
        in_target = in_target + (CASE WHEN NEW.in_target THEN 1 ELSE 0 END),
        linked = linked + (CASE WHEN NEW.duo_user_id IS NOT NULL THEN 1 ELSE 0 END),
        created_by_us = created_by_us + (CASE WHEN NEW.created_by_us THEN 1 ELSE 0 END),
        in_error = in_error + (CASE WHEN NEW.error_code IS NOT NULL THEN 1 ELSE 0 END)
    WHERE provisioner = NEW.provisioner AND kind = 'users';
END;
CREATE TRIGGER sync_user_count_delete AFTER DELETE ON sync_user BEGIN
    UPDATE link_count SET total = total - 1,
        in_target = in_target - (CASE WHEN OLD.in_target THEN 1 ELSE 0 END),
        linked = linked - (CASE WHEN OLD.duo_user_id IS NOT NULL THEN 1 ELSE 0 END),
        created_by_us = created_by_us - (CASE WHEN OLD.created_by_us THEN 1 ELSE 0 END),
        in_error = in_error - (CASE WHEN OLD.error_code IS NOT NULL THEN 1 ELSE 0 END)
    WHERE provisioner = OLD.provisioner AND kind = 'users';
END;
CREATE TRIGGER sync_user_count_update AFTER UPDATE ON sync_user BEGIN
    UPDATE link_count SET total = total - 1,
        in_target = in_target - (CASE WHEN OLD.in_target THEN 1 ELSE 0 END),
        linked = linked - (CASE WHEN OLD.duo_user_id IS NOT NULL THEN 1 ELSE 0 END),
        created_by_us = created_by_us - (CASE WHEN OLD.created_by_us THEN 1 ELSE 0 END),
        in_error = in_error - (CASE WHEN OLD.error_code IS NOT NULL THEN 1 ELSE 0 END)
    WHERE provisioner = OLD.provisioner AND kind = 'users';
    INSERT INTO link_count (provisioner, kind) SELECT NEW.provisioner, 'users'
        WHERE NOT EXISTS (SELECT 1 FROM link_count WHERE provisioner = NEW.provisioner AND kind = 'users');
    UPDATE link_count SET total = total + 1,
        in_target = in_target + (CASE WHEN NEW.in_target THEN 1 ELSE 0 END),
        linked = linked + (CASE WHEN NEW.duo_user_id IS NOT NULL THEN 1 ELSE 0 END),
        created_by_us = created_by_us + (CASE WHEN NEW.created_by_us THEN 1 ELSE 0 END),
        in_error = in_error + (CASE WHEN NEW.error_code IS NOT NULL THEN 1 ELSE 0 END)
    WHERE provisioner = NEW.provisioner AND kind = 'users';
END;

-- sync_membership (created_by_us: memberships have none, always 0)
CREATE TRIGGER sync_membership_count_insert AFTER INSERT ON sync_membership BEGIN
    INSERT INTO link_count (provisioner, kind) SELECT NEW.provisioner, 'memberships'
        WHERE NOT EXISTS (SELECT 1 FROM link_count WHERE provisioner = NEW.provisioner AND kind = 'memberships');
    UPDATE link_count SET total = total + 1,
        in_target = in_target + (CASE WHEN NEW.in_target THEN 1 ELSE 0 END),
        linked = linked + (CASE WHEN NEW.last_provisioned IS NOT NULL THEN 1 ELSE 0 END),
        in_error = in_error + (CASE WHEN NEW.error_code IS NOT NULL THEN 1 ELSE 0 END)
    WHERE provisioner = NEW.provisioner AND kind = 'memberships';
END;
CREATE TRIGGER sync_membership_count_delete AFTER DELETE ON sync_membership BEGIN
    UPDATE link_count SET total = total - 1,
        in_target = in_target - (CASE WHEN OLD.in_target THEN 1 ELSE 0 END),
        linked = linked - (CASE WHEN OLD.last_provisioned IS NOT NULL THEN 1 ELSE 0 END),
        in_error = in_error - (CASE WHEN OLD.error_code IS NOT NULL THEN 1 ELSE 0 END)
    WHERE provisioner = OLD.provisioner AND kind = 'memberships';
END;
CREATE TRIGGER sync_membership_count_update AFTER UPDATE ON sync_membership BEGIN
    UPDATE link_count SET total = total - 1,
        in_target = in_target - (CASE WHEN OLD.in_target THEN 1 ELSE 0 END),
        linked = linked - (CASE WHEN OLD.last_provisioned IS NOT NULL THEN 1 ELSE 0 END),
        in_error = in_error - (CASE WHEN OLD.error_code IS NOT NULL THEN 1 ELSE 0 END)
    WHERE provisioner = OLD.provisioner AND kind = 'memberships';
    INSERT INTO link_count (provisioner, kind) SELECT NEW.provisioner, 'memberships'
        WHERE NOT EXISTS (SELECT 1 FROM link_count WHERE provisioner = NEW.provisioner AND kind = 'memberships');
    UPDATE link_count SET total = total + 1,
        in_target = in_target + (CASE WHEN NEW.in_target THEN 1 ELSE 0 END),
        linked = linked + (CASE WHEN NEW.last_provisioned IS NOT NULL THEN 1 ELSE 0 END),
        in_error = in_error + (CASE WHEN NEW.error_code IS NOT NULL THEN 1 ELSE 0 END)
    WHERE provisioner = NEW.provisioner AND kind = 'memberships';
END;

CREATE INDEX grp_name_lower ON grp (lower(name));

ALTER TABLE duo_user ADD COLUMN user_name_key TEXT;
UPDATE duo_user SET user_name_key = lower(user_name) WHERE user_name NOT GLOB '*[^ -~]*';
CREATE INDEX duo_user_unkeyed ON duo_user (config_id) WHERE user_name_key IS NULL;
CREATE INDEX duo_user_key ON duo_user (config_id, user_name_key);
