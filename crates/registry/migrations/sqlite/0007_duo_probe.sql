-- duoprov probe results, sqlite dialect: what `duoprov doctor --probe` found about one Duo account
-- (bulk membership writes, username case, duplicate group names), keyed by the connection's
-- api_host and integration key. `result` is the probe's report as JSON; the newest probe replaces
-- the row. Clients of that account read it before they write.
CREATE TABLE duo_probe (
    api_host         TEXT NOT NULL,
    integration_key  TEXT NOT NULL,
    probed_at_ms     INTEGER NOT NULL,
    result           TEXT NOT NULL,
    PRIMARY KEY (api_host, integration_key)
);
