-- Outbound webhooks: a tenant's subscriptions and every delivery to them.
CREATE TABLE webhook_subscriptions (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    url          TEXT NOT NULL,
    secret       TEXT NOT NULL,
    events       TEXT NOT NULL,   -- JSON list of event types, or ["*"]
    description  TEXT,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX webhook_subscriptions_by_tenant ON webhook_subscriptions (tenant_id, revoked_at);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    subscription_id  TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    status           TEXT NOT NULL,   -- pending | delivered | failing | skipped
    attempts         BIGINT NOT NULL DEFAULT 0,
    last_status      BIGINT,          -- the receiver's HTTP status
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_by_subscription ON webhook_deliveries (tenant_id, subscription_id, created_at);
