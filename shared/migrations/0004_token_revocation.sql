-- Tokens issued to a staff member at or before this time (epoch seconds) are no
-- longer accepted: set when the member is switched off.
ALTER TABLE staff ADD COLUMN tokens_revoked_at BIGINT NOT NULL DEFAULT 0;
