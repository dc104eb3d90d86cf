-- One person, one lead: merges that can be undone, possible duplicates kept apart for
-- a person to decide, companies compared by a normalised key, and scoring rules.

-- A merged lead stays, pointing at the lead that absorbed it.
ALTER TABLE leads ADD COLUMN merged_into TEXT;
-- The company name reduced to what identifies the company (see shared/src/company.rs).
ALTER TABLE leads ADD COLUMN company_key TEXT;
-- Unified social credit code of the company, check digit verified.
ALTER TABLE leads ADD COLUMN uscc TEXT;
-- When the lead first reached the MQL threshold (kept when the score later decays).
ALTER TABLE leads ADD COLUMN mql_at BIGINT;
ALTER TABLE leads ADD COLUMN scored_at BIGINT;
ALTER TABLE leads ADD COLUMN scoring_version BIGINT;
-- What the captures told about the lead beyond the named fields (industry, region…),
-- JSON, first answer kept; scoring rules may test it.
ALTER TABLE leads ADD COLUMN attributes TEXT;
-- Whether any capture of the lead consented to being contacted (0/1).
ALTER TABLE leads ADD COLUMN consent BIGINT NOT NULL DEFAULT 0;
-- Companies are now compared by key, not by lower(trim(company)).
DROP INDEX leads_by_company;
CREATE INDEX leads_by_company_key ON leads (tenant_id, company_key);
CREATE INDEX leads_by_uscc ON leads (tenant_id, uscc);

-- What a touch was: a capture, or an engagement (a card view, a scan of the code the
-- lead came through) credited to the lead.
ALTER TABLE lead_touches ADD COLUMN kind TEXT NOT NULL DEFAULT 'capture';

-- Every merge, with what it moved, so the last one of a lead can be undone.
CREATE TABLE lead_merges (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    survivor_id  TEXT NOT NULL,
    merged_id    TEXT NOT NULL,
    reason       TEXT NOT NULL,   -- JSON: the shared identities, or who asked
    actor        TEXT NOT NULL,
    moved        TEXT NOT NULL,   -- JSON: identities, touches, assignments, history rows
    created_at   BIGINT NOT NULL,
    undone_at    BIGINT,
    undone_by    TEXT
);
CREATE INDEX lead_merges_by_survivor ON lead_merges (tenant_id, survivor_id, created_at);

-- Leads that may be one person (same company, similar name) but share no identity:
-- flagged for a person, never merged automatically. Stored in both directions.
CREATE TABLE lead_possible_duplicates (
    tenant_id   TEXT NOT NULL,
    lead_id     TEXT NOT NULL,
    other_id    TEXT NOT NULL,
    reasons     TEXT NOT NULL,    -- JSON list
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, lead_id, other_id)
);

-- Scoring rule sets, versioned per tenant like routing rules; the highest is in force.
CREATE TABLE scoring_rules (
    tenant_id   TEXT NOT NULL,
    version     BIGINT NOT NULL,
    body        TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
