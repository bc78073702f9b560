-- "Not in the registry" kept with the rows: `duo_user.rendered` holds whether a username the
-- provisioner's runs recorded (`rendered_username`, whose provisioner is the Duo user's
-- `config_id`) equals the Duo user's username key, kept exact by triggers on every write of
-- either table (a Duo user's row when written; on `rendered_username`, one UPDATE of the Duo
-- users under the keys a statement inserted, updated or deleted, from its transition tables),
-- so the console's "not in the registry" reads a partial index of the few Duo users missing
-- instead of anti-joining 100 000 usernames per request.
ALTER TABLE duo_user ADD COLUMN rendered BOOLEAN NOT NULL DEFAULT FALSE;

UPDATE duo_user d SET rendered = TRUE
WHERE d.user_name_key IS NOT NULL
  AND EXISTS (SELECT 1 FROM rendered_username r WHERE r.provisioner = d.config_id AND r.username_key = d.user_name_key);

CREATE INDEX duo_user_unrendered ON duo_user (config_id, user_name_key) WHERE NOT rendered;

CREATE FUNCTION duo_user_rendered_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.rendered := NEW.user_name_key IS NOT NULL
        AND EXISTS (SELECT 1 FROM rendered_username r WHERE r.provisioner = NEW.config_id AND r.username_key = NEW.user_name_key);
    RETURN NEW;
END $$;
CREATE TRIGGER duo_user_rendered_row BEFORE INSERT OR UPDATE OF config_id, user_name_key ON duo_user
    FOR EACH ROW EXECUTE FUNCTION duo_user_rendered_row();

CREATE FUNCTION rendered_username_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE duo_user d SET rendered = TRUE
    FROM (SELECT DISTINCT provisioner, username_key FROM new_rows) n
    WHERE d.config_id = n.provisioner AND d.user_name_key = n.username_key AND NOT d.rendered;
    RETURN NULL;
END $$;
CREATE TRIGGER rendered_username_insert AFTER INSERT ON rendered_username REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rendered_username_insert();

CREATE FUNCTION rendered_username_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE duo_user d SET rendered = FALSE
    FROM (SELECT DISTINCT provisioner, username_key FROM old_rows) o
    WHERE d.config_id = o.provisioner AND d.user_name_key = o.username_key AND d.rendered
      AND NOT EXISTS (SELECT 1 FROM rendered_username r WHERE r.provisioner = o.provisioner AND r.username_key = o.username_key);
    RETURN NULL;
END $$;
CREATE TRIGGER rendered_username_delete AFTER DELETE ON rendered_username REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rendered_username_delete();

CREATE FUNCTION rendered_username_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE duo_user d SET rendered = FALSE
    FROM (SELECT DISTINCT provisioner, username_key FROM old_rows) o
    WHERE d.config_id = o.provisioner AND d.user_name_key = o.username_key AND d.rendered
      AND NOT EXISTS (SELECT 1 FROM rendered_username r WHERE r.provisioner = o.provisioner AND r.username_key = o.username_key);
    UPDATE duo_user d SET rendered = TRUE
    FROM (SELECT DISTINCT provisioner, username_key FROM new_rows) n
    WHERE d.config_id = n.provisioner AND d.user_name_key = n.username_key AND NOT d.rendered;
    RETURN NULL;
END $$;
CREATE TRIGGER rendered_username_update AFTER UPDATE ON rendered_username REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rendered_username_update();
