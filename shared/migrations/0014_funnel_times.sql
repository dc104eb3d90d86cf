-- When a lead first reached each funnel stage, for reports (the history has it too,
-- as JSON that SQL should not have to read).
ALTER TABLE leads ADD COLUMN sql_at BIGINT;
ALTER TABLE leads ADD COLUMN converted_at BIGINT;
ALTER TABLE leads ADD COLUMN won_at BIGINT;
ALTER TABLE leads ADD COLUMN lost_at BIGINT;
ALTER TABLE leads ADD COLUMN disqualified_at BIGINT;
CREATE INDEX assignments_by_time ON assignments (tenant_id, created_at);
CREATE INDEX scans_by_time ON scans (tenant_id, at);
CREATE INDEX lead_touches_by_time ON lead_touches (tenant_id, occurred_at);
