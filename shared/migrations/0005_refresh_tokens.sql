-- Long-lived refresh tokens, stored only as SHA-256 hashes. Each use replaces the
-- token with a new one (rotation); a used or revoked one is refused.
CREATE TABLE refresh_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    staff_id     TEXT NOT NULL,
    token_hash   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,   -- epoch seconds
    expires_at   BIGINT NOT NULL,   -- epoch seconds
    used_at      BIGINT
);
CREATE UNIQUE INDEX refresh_tokens_by_hash ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_by_staff ON refresh_tokens (tenant_id, staff_id);
