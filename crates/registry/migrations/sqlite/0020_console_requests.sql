-- What the console asks of the daemons and what their runs leave for it, kept so they outlive a
-- restart or a change of leader. `console_request`: a full sync or a retry of one object asked
-- for from any daemon's console (who, when), carried out by whichever daemon leads the
-- provisioner; a full sync's request is claimed (`claimed_at_ms`) when its run starts and deleted
-- when the run ends, so one run consumes it and a run cut short leaves it for the next leader; a
-- retry's is deleted with the audit entry of its outcome. At most one request waits unclaimed per
-- provisioner, kind and object (the partial unique index). `console_refusal`: the last plan the
-- safety rules refused per provisioner (its first removals as shown, their number, the digest,
-- the rules' reasons, when), replaced by the next refusal and deleted by a run that succeeds.
CREATE TABLE console_request (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    provisioner      TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('full-sync', 'retry')),
    object_kind      TEXT NOT NULL DEFAULT '' CHECK (object_kind IN ('', 'subject', 'group')),
    object_name      TEXT NOT NULL DEFAULT '',
    requested_by     TEXT NOT NULL,
    requested_at_ms  INTEGER NOT NULL,
    claimed_at_ms    INTEGER
);

CREATE UNIQUE INDEX console_request_waiting ON console_request (provisioner, kind, object_kind, object_name) WHERE claimed_at_ms IS NULL;

CREATE TABLE console_refusal (
    provisioner    TEXT NOT NULL PRIMARY KEY,
    kind           TEXT NOT NULL,
    digest         TEXT NOT NULL,
    reasons_json   TEXT NOT NULL,
    removals_json  TEXT NOT NULL,
    removal_count  INTEGER NOT NULL,
    refused_at_ms  INTEGER NOT NULL
);
