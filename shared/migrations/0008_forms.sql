-- Hosted web forms: the configuration (fields, channel, campaign, texts, allowed
-- origins, active) as validated JSON.
CREATE TABLE forms (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    config      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX forms_by_tenant ON forms (tenant_id, created_at);
