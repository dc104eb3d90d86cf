-- Bulk imports: the file is stored in 1 MiB chunks (base64) as it is received, so it
-- never sits in memory and any intake process can work it; rows that could not be
-- imported keep their problems.
CREATE TABLE imports (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    format        TEXT NOT NULL,     -- csv | ndjson
    encoding      TEXT,              -- UTF-8 | gb18030
    sha256        TEXT NOT NULL,     -- of the whole file; the same file again is the same import
    bytes         BIGINT NOT NULL,
    chunks        BIGINT NOT NULL,
    channel       TEXT,
    campaign_id   TEXT,
    status        TEXT NOT NULL,     -- receiving | queued | running | done
    rows_done     BIGINT NOT NULL DEFAULT 0,
    rows_failed   BIGINT NOT NULL DEFAULT 0,
    locked_until  BIGINT NOT NULL DEFAULT 0,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    finished_at   BIGINT
);
CREATE UNIQUE INDEX imports_by_file ON imports (tenant_id, sha256);
CREATE INDEX imports_waiting ON imports (status, created_at);

CREATE TABLE import_chunks (
    import_id  TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (import_id, seq)
);

CREATE TABLE import_errors (
    import_id   TEXT NOT NULL,
    row_number  BIGINT NOT NULL,
    errors      TEXT NOT NULL,       -- JSON [{field, message}]
    PRIMARY KEY (import_id, row_number)
);
