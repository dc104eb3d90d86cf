-- The first-contact SLA: by when the owner of an offer must first contact the lead
-- (the policy's first_contact_within_seconds, from the offer), and when that passed
-- without contact.
ALTER TABLE assignments ADD COLUMN first_contact_due_at BIGINT;
ALTER TABLE assignments ADD COLUMN first_contact_breached_at BIGINT;
CREATE INDEX assignments_by_first_contact_due ON assignments (first_contact_due_at);
