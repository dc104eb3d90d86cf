-- Routing by rules and SLA. Rule sets and SLA policies are versioned per tenant and
-- every version is kept; the highest version is in force.
CREATE TABLE routing_rules (
    tenant_id   TEXT NOT NULL,
    version     BIGINT NOT NULL,
    body        TEXT NOT NULL,     -- JSON, validated
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

CREATE TABLE sla_policies (
    tenant_id   TEXT NOT NULL,
    version     BIGINT NOT NULL,
    body        TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

-- The tenant's business calendar: weekly hours, holidays, adjusted working days.
CREATE TABLE tenant_calendars (
    tenant_id   TEXT PRIMARY KEY,
    body        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- One row per open offer with an accept deadline; the router polls the due ones.
CREATE TABLE sla_timers (
    assignment_id  TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    lead_id        TEXT NOT NULL,
    due_at         BIGINT NOT NULL
);
CREATE INDEX sla_timers_by_due ON sla_timers (due_at);

-- Why each routing decision went the way it did: rule, candidates, exclusions.
CREATE TABLE routing_decisions (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    lead_id     TEXT NOT NULL,
    at          BIGINT NOT NULL,
    cause       TEXT NOT NULL,     -- qualified | rejected | sla_breached
    detail      TEXT NOT NULL      -- JSON
);
CREATE INDEX routing_decisions_by_lead ON routing_decisions (tenant_id, lead_id, at);

ALTER TABLE assignments ADD COLUMN hop BIGINT NOT NULL DEFAULT 0;
ALTER TABLE assignments ADD COLUMN kind TEXT NOT NULL DEFAULT 'offer';
CREATE INDEX assignments_by_staff ON assignments (tenant_id, staff_id, state);

ALTER TABLE staff ADD COLUMN daily_cap BIGINT;
CREATE INDEX assignments_by_day ON assignments (tenant_id, created_at);
CREATE INDEX leads_by_company ON leads (tenant_id, lower(trim(company)));
CREATE INDEX captures_by_lead ON captures (tenant_id, lead_id, created_at);
