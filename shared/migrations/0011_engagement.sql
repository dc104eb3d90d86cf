-- Which lead a public-page visitor became (the salted visitor hash of the page a form
-- was sent from): later visits of that visitor are the lead's engagement. Not an
-- identity: a shared phone or browser must not merge people, only credit visits.
CREATE TABLE lead_visitors (
    tenant_id   TEXT NOT NULL,
    visitor     TEXT NOT NULL,
    lead_id     TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, visitor)
);
