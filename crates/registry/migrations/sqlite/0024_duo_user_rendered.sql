-- "Not in the registry" kept with the rows: `duo_user.rendered` holds whether a username the
-- provisioner's runs recorded (`rendered_username`, whose provisioner is the Duo user's
-- `config_id`) equals the Duo user's username key, kept exact by row triggers on every write of
-- either table, so the console's "not in the registry" reads a partial index of the few Duo
-- users missing instead of anti-joining every username per request. The triggers look rows up
-- by username key first (`duo_user_by_key`, `rendered_username_by_key`; the provisioner's term
-- is written `+…` so no index on it is used): by the provisioner alone SQLite's planner may walk
-- all of its rows through the primary key, once per row written.
ALTER TABLE duo_user ADD COLUMN rendered INTEGER NOT NULL DEFAULT 0;

CREATE INDEX duo_user_by_key ON duo_user (user_name_key, config_id);
CREATE INDEX rendered_username_by_key ON rendered_username (username_key, provisioner);

UPDATE duo_user SET rendered = 1
WHERE user_name_key IS NOT NULL
  AND EXISTS (SELECT 1 FROM rendered_username r WHERE r.username_key = duo_user.user_name_key AND +r.provisioner = duo_user.config_id);

CREATE INDEX duo_user_unrendered ON duo_user (config_id, user_name_key) WHERE NOT rendered;

CREATE TRIGGER duo_user_rendered_insert AFTER INSERT ON duo_user BEGIN
    UPDATE duo_user SET rendered = (NEW.user_name_key IS NOT NULL
        AND EXISTS (SELECT 1 FROM rendered_username r WHERE r.username_key = NEW.user_name_key AND +r.provisioner = NEW.config_id))
    WHERE config_id = NEW.config_id AND user_id = NEW.user_id;
END;

CREATE TRIGGER duo_user_rendered_update AFTER UPDATE OF config_id, user_name_key ON duo_user BEGIN
    UPDATE duo_user SET rendered = (NEW.user_name_key IS NOT NULL
        AND EXISTS (SELECT 1 FROM rendered_username r WHERE r.username_key = NEW.user_name_key AND +r.provisioner = NEW.config_id))
    WHERE config_id = NEW.config_id AND user_id = NEW.user_id;
END;

CREATE TRIGGER rendered_username_insert AFTER INSERT ON rendered_username BEGIN
    UPDATE duo_user SET rendered = 1 WHERE user_name_key = NEW.username_key AND +config_id = NEW.provisioner;
END;

CREATE TRIGGER rendered_username_delete AFTER DELETE ON rendered_username BEGIN
    UPDATE duo_user SET rendered = EXISTS (SELECT 1 FROM rendered_username r WHERE r.username_key = OLD.username_key AND +r.provisioner = OLD.provisioner)
    WHERE user_name_key = OLD.username_key AND +config_id = OLD.provisioner;
END;

CREATE TRIGGER rendered_username_update AFTER UPDATE OF provisioner, username_key ON rendered_username BEGIN
    UPDATE duo_user SET rendered = EXISTS (SELECT 1 FROM rendered_username r WHERE r.username_key = OLD.username_key AND +r.provisioner = OLD.provisioner)
    WHERE user_name_key = OLD.username_key AND +config_id = OLD.provisioner;
    UPDATE duo_user SET rendered = 1 WHERE user_name_key = NEW.username_key AND +config_id = NEW.provisioner;
END;
