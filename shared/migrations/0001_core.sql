-- One schema for PostgreSQL and SQLite: TEXT ids, BIGINT epoch milliseconds,
-- BIGINT 0/1 instead of BOOLEAN, JSON kept as TEXT and parsed in Rust.
-- Every business row carries tenant_id, and every query filters on it.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    manager_id  TEXT,
    created_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE staff (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    name           TEXT NOT NULL,
    email          TEXT NOT NULL,  -- lower-cased
    password_hash  TEXT,
    roles          TEXT NOT NULL,  -- comma-separated role names
    team_id        TEXT,
    capacity       BIGINT,
    timezone       TEXT NOT NULL,
    working_hours  TEXT,           -- JSON
    active         BIGINT NOT NULL DEFAULT 1,
    created_at     BIGINT NOT NULL,
    UNIQUE (tenant_id, email)
);

-- Outbox: rows written in the same transaction as the change they announce,
-- relayed to the bus afterwards, deleted once the bus has confirmed them.
CREATE TABLE outbox (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    topic         TEXT NOT NULL,
    envelope      TEXT NOT NULL,
    delay_ms      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    locked_until  BIGINT NOT NULL DEFAULT 0,
    attempts      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX outbox_by_age ON outbox (created_at);

-- The embedded bus: one row per (queue, message); bindings as RabbitMQ would keep them.
CREATE TABLE bus_bindings (
    queue    TEXT NOT NULL,
    pattern  TEXT NOT NULL,
    PRIMARY KEY (queue, pattern)
);

CREATE TABLE bus_messages (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    queue         TEXT NOT NULL,
    topic         TEXT NOT NULL,
    envelope      TEXT NOT NULL,
    available_at  BIGINT NOT NULL,
    locked_until  BIGINT NOT NULL DEFAULT 0,
    attempts      BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX bus_messages_ready ON bus_messages (queue, available_at);

-- Consumers are idempotent on the message id.
CREATE TABLE processed_messages (
    consumer      TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    processed_at  BIGINT NOT NULL,
    PRIMARY KEY (consumer, message_id)
);

CREATE TABLE captures (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    channel          TEXT NOT NULL,
    payload          TEXT NOT NULL,  -- JSON of the normalised capture
    status           TEXT NOT NULL,  -- pending | qualified | rejected
    lead_id          TEXT,
    errors           TEXT,           -- JSON array
    idempotency_key  TEXT,
    request_hash     TEXT,
    created_by       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX captures_idempotency ON captures (tenant_id, idempotency_key);

CREATE TABLE leads (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    name           TEXT,
    company        TEXT,
    title          TEXT,
    phone          TEXT,
    email          TEXT,
    channel        TEXT NOT NULL,   -- first channel
    score          BIGINT NOT NULL,
    grade          TEXT NOT NULL,
    score_reasons  TEXT NOT NULL,   -- JSON
    is_mql         BIGINT NOT NULL DEFAULT 0,
    status         TEXT NOT NULL,
    owner_id       TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX leads_by_tenant ON leads (tenant_id, created_at);

-- A person's identifiers; the primary key makes exact de-duplication race-free.
CREATE TABLE lead_identities (
    tenant_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,   -- phone | email | unionid | openid | external_userid
    value       TEXT NOT NULL,   -- normalised
    lead_id     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, kind, value)
);
CREATE INDEX lead_identities_by_lead ON lead_identities (tenant_id, lead_id);

CREATE TABLE lead_touches (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    lead_id      TEXT NOT NULL,
    capture_id   TEXT NOT NULL,
    channel      TEXT NOT NULL,
    campaign_id  TEXT,
    occurred_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, capture_id)
);
CREATE INDEX lead_touches_by_lead ON lead_touches (tenant_id, lead_id);

-- Audit trail: why this score, why this owner, who did what.
CREATE TABLE lead_history (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    lead_id     TEXT NOT NULL,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    actor       TEXT,
    detail      TEXT NOT NULL    -- JSON
);
CREATE INDEX lead_history_by_lead ON lead_history (tenant_id, lead_id, at);

CREATE TABLE assignments (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    lead_id     TEXT NOT NULL,
    staff_id    TEXT NOT NULL,
    state       TEXT NOT NULL,   -- offered | accepted | rejected | expired
    reason      TEXT,            -- why this owner
    sla_due_at  BIGINT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX assignments_by_lead ON assignments (tenant_id, lead_id, created_at);

-- The SDR's inbox, projected by pool from lead.assigned.
CREATE TABLE inbox_items (
    assignment_id  TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    staff_id       TEXT NOT NULL,
    lead_id        TEXT NOT NULL,
    state          TEXT NOT NULL,
    sla_due_at     BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX inbox_by_staff ON inbox_items (tenant_id, staff_id, created_at);
