-- The SDR's side of a lead: activities, the sales funnel after acceptance, the
-- public pool (claims with limits, releases, recycling).

ALTER TABLE leads ADD COLUMN first_contact_at BIGINT;
ALTER TABLE leads ADD COLUMN last_activity_at BIGINT;
-- When the lead entered its current status (the funnel times each step).
ALTER TABLE leads ADD COLUMN status_changed_at BIGINT;
-- How often the lead went back to the pool for want of activity.
ALTER TABLE leads ADD COLUMN recycle_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE leads ADD COLUMN status_reason TEXT;
CREATE INDEX leads_by_status ON leads (tenant_id, status, updated_at);
CREATE INDEX leads_by_owner ON leads (tenant_id, owner_id, status);

-- Calls, WeChat messages, e-mails and notes an SDR logs on a lead.
CREATE TABLE lead_activities (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    lead_id      TEXT NOT NULL,
    staff_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,   -- call | wechat | email | note
    body         TEXT,
    occurred_at  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX lead_activities_by_lead ON lead_activities (tenant_id, lead_id, occurred_at);

-- The tenant's pool rules (JSON): claim limits, recycling, disqualification reasons.
CREATE TABLE pool_settings (
    tenant_id   TEXT PRIMARY KEY,
    body        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Claims per SDR per day (the tenant's local date): the row is the counter and the
-- lock that makes the daily and holding limits exact under concurrent claims.
CREATE TABLE pool_claims (
    tenant_id   TEXT NOT NULL,
    staff_id    TEXT NOT NULL,
    day         TEXT NOT NULL,
    claims      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, staff_id, day)
);
