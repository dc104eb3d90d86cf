-- Scan analytics as tallies instead of one row per scan: the scan path is the
-- hottest there is, and a row per scan cost the database more than the rest of a
-- scan together. What the stats and reports read is kept, to the minute:
--   scan_minutes  - scans and first visits per code, minute, member, outcome and
--                   client class (staff_id '' when the scan went to no member);
--   scan_visitors - the code's visitors of one hour as a HyperLogLog sketch
--                   (base64), so unique visitors over any range of hours are a
--                   merge of sketches: exact for small counts, about 1.6 % off
--                   for large ones;
--   scan_flushes  - the ids of written flushes, so a flush retried after an
--                   unclear failure is not counted twice (kept a day).
-- Rows already in `scans` are folded into the tallies by the codes service
-- when it starts, and deleted as they are folded.
CREATE TABLE scan_minutes (
    tenant_id     TEXT NOT NULL,
    code_id       TEXT NOT NULL,
    minute        BIGINT NOT NULL,
    staff_id      TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    client        TEXT NOT NULL,
    scans         BIGINT NOT NULL,
    first_visits  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, code_id, minute, staff_id, outcome, client)
);

CREATE TABLE scan_visitors (
    tenant_id  TEXT NOT NULL,
    code_id    TEXT NOT NULL,
    hour       BIGINT NOT NULL,
    sketch     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, code_id, hour)
);

CREATE TABLE scan_flushes (
    id  TEXT PRIMARY KEY,
    at  BIGINT NOT NULL
);
CREATE INDEX scan_flushes_by_time ON scan_flushes (at);

-- Secrets a service makes for itself on first use and every replica shares (the
-- codes service signs a visitor's sticky pick with one).
CREATE TABLE service_keys (
    name        TEXT PRIMARY KEY,
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
