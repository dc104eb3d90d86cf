-- Answers to create requests sent with an Idempotency-Key, so a retried request gets
-- the first answer instead of a second object. Secrets in answers are not kept.
CREATE TABLE idempotent_requests (
    tenant_id     TEXT NOT NULL,
    route         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        BIGINT NOT NULL,   -- 0 while the first request is being handled
    body          TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, route, key)
);
CREATE INDEX idempotent_requests_by_time ON idempotent_requests (created_at);
