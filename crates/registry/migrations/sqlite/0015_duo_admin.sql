-- duoprov admin roles, sqlite dialect: the Duo administrators each provisioner manages, created by
-- it or adopted by e-mail match. Only administrators recorded here are ever changed, disabled or
-- deleted by the admin-role sync; `disabled_by_us` marks one duoprov disabled when its subject
-- left every mapped group (re-enabled if it returns).
CREATE TABLE duo_admin (
    provisioner        TEXT NOT NULL,
    admin_id           TEXT NOT NULL,
    email              TEXT NOT NULL,
    subject_source     TEXT NOT NULL,
    subject_id         TEXT NOT NULL,
    role               TEXT NOT NULL,
    created_by_us      BOOLEAN NOT NULL,
    disabled_by_us     BOOLEAN NOT NULL,
    first_recorded_ms  INTEGER NOT NULL,
    updated_ms         INTEGER NOT NULL,
    PRIMARY KEY (provisioner, admin_id)
);
