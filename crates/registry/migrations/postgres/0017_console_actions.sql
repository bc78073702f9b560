-- The console's durable state. What triggered each run (a schedule, the change log, a console
-- action and by whom, the command line); the removal digest approved from the console for a
-- provisioner's next full sync, taken (deleted) by the run that applies it; and a partial index
-- over the audit trail's console actions, read back as the console's action log; and the
-- indexes the console's user search reads: a prefix of a subject's login or id, lowercased,
-- compared byte by byte.
ALTER TABLE sync_run ADD COLUMN triggered_by TEXT;

CREATE TABLE console_approval (
    provisioner     TEXT NOT NULL PRIMARY KEY,
    digest          TEXT NOT NULL,
    approved_by     TEXT NOT NULL,
    approved_at_ms  BIGINT NOT NULL
);

CREATE INDEX audit_log_console ON audit_log (provisioner, seq) WHERE object_kind = 'console';

CREATE INDEX subject_login_id_lower_c ON subject ((lower(login_id) COLLATE "C"));
CREATE INDEX subject_id_lower_c ON subject ((lower(subject_id) COLLATE "C"));
