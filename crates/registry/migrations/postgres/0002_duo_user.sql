-- Duo users table (Grouper's grouper_prov_duo_user), PostgreSQL dialect; see docs/duo-users.md.
-- One row per Duo user per provisioner (config_id), replaced as a whole by `duoprov load-users`
-- or a full sync with load_duo_users = true. Values are stored as Grouper stores them: aliases and
-- phone numbers sorted and comma-joined (a comma inside a value written &#x2c;), booleans 'T'/'F',
-- times in epoch seconds, blank text as NULL.
CREATE TABLE duo_user (
    config_id            TEXT NOT NULL,
    user_id              TEXT NOT NULL,
    aliases              TEXT,
    phones               TEXT,
    is_push_enabled      TEXT CHECK (is_push_enabled IN ('T', 'F')),
    email                TEXT,
    first_name           TEXT,
    last_name            TEXT,
    is_enrolled          TEXT CHECK (is_enrolled IN ('T', 'F')),
    last_directory_sync  BIGINT,
    notes                TEXT,
    real_name            TEXT,
    status               TEXT,
    user_name            TEXT NOT NULL,
    created_at           BIGINT,
    last_login_time      BIGINT,
    PRIMARY KEY (config_id, user_id)
);
CREATE INDEX duo_user_user_name ON duo_user (user_name, config_id);

-- When each provisioner's rows were last replaced, and how many there were.
CREATE TABLE duo_user_load (
    config_id  TEXT PRIMARY KEY,
    loaded_at  BIGINT NOT NULL,
    users      BIGINT NOT NULL
);

-- Case-insensitive matching of Duo usernames to registry login ids (reports and the view below).
CREATE INDEX subject_login_id_lower ON subject (lower(login_id));

-- Read-only view for people who write their own reports: every loaded Duo user with the registry
-- subject whose login_id equals its username, ignoring case (NULL subject columns: none maps to it).
CREATE VIEW duo_user_report AS
SELECT d.config_id, d.user_id, d.user_name, d.real_name, d.first_name, d.last_name, d.email,
       d.status, d.is_enrolled, d.is_push_enabled, d.aliases, d.phones, d.notes,
       d.created_at, d.last_login_time, d.last_directory_sync,
       s.source AS subject_source, s.subject_id AS subject_id, s.name AS subject_name,
       s.login_id AS subject_login_id,
       l.loaded_at
FROM duo_user d
LEFT JOIN subject s ON lower(s.login_id) = lower(d.user_name)
LEFT JOIN duo_user_load l ON l.config_id = d.config_id;
