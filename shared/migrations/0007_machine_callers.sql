-- Machine callers: API keys, shown once and stored as a SHA-256 hash of the whole key.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,     -- the first characters, for recognising a key in lists
    key_hash      TEXT NOT NULL,
    scopes        TEXT NOT NULL,     -- comma-separated
    roles         TEXT NOT NULL,     -- comma-separated, may be empty
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE UNIQUE INDEX api_keys_by_hash ON api_keys (key_hash);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);

-- Signed webhook sources: a secret shared with the provider (needed to verify each
-- call, so kept as is and never shown again), and how its payload maps to a lead.
CREATE TABLE webhook_sources (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    name              TEXT NOT NULL,
    secret            TEXT NOT NULL,
    channel           TEXT NOT NULL,
    campaign_id       TEXT,
    mapping           TEXT NOT NULL,   -- JSON: {"<JSON pointer>": "<lead field>"}
    event_id_pointer  TEXT NOT NULL,
    created_by        TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    disabled_at       BIGINT
);
CREATE INDEX webhook_sources_by_tenant ON webhook_sources (tenant_id, created_at);
