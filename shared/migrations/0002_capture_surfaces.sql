-- Capture surfaces: campaigns and channels, live codes and their scans, WeCom
-- settings, smart business cards with share and visit tracking.

ALTER TABLE staff ADD COLUMN wecom_userid TEXT;
ALTER TABLE captures ADD COLUMN live_code TEXT;
CREATE INDEX captures_by_live_code ON captures (tenant_id, live_code);

CREATE TABLE campaigns (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE channels (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    campaign_id  TEXT,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- Live codes (kind live), channel codes (kind channel) and group codes (kind group).
CREATE TABLE live_codes (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    code             TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL,
    name             TEXT NOT NULL,
    campaign_id      TEXT,
    channel_id       TEXT,
    mode             TEXT NOT NULL,
    members          TEXT NOT NULL,   -- JSON array
    schedule         TEXT,            -- JSON
    backup_staff_id  TEXT,
    tags             TEXT NOT NULL,   -- JSON array
    welcome_text     TEXT,
    state            TEXT,            -- attribution state (channel codes)
    groups           TEXT NOT NULL,   -- JSON array (group codes)
    active           BIGINT NOT NULL,
    deleted_at       BIGINT,          -- deleted codes answer 410, never reused
    logo_png         TEXT,            -- base64 PNG drawn in the centre of QR images on request
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX live_codes_by_tenant ON live_codes (tenant_id, id);
CREATE INDEX live_codes_by_campaign ON live_codes (tenant_id, campaign_id);

CREATE TABLE scans (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    code_id      TEXT NOT NULL,
    staff_id     TEXT,
    group_index  BIGINT,
    visitor      TEXT NOT NULL,    -- salted hash, never the raw cookie
    client       TEXT NOT NULL,    -- wechat | wecom | other
    referer      TEXT,
    outcome      TEXT NOT NULL,    -- member | backup | group | none
    at           BIGINT NOT NULL
);
CREATE INDEX scans_by_code ON scans (tenant_id, code_id, at);

CREATE TABLE wecom_settings (
    tenant_id         TEXT PRIMARY KEY,
    corp_id           TEXT NOT NULL,
    secret            TEXT NOT NULL,
    agent_id          TEXT,
    callback_token    TEXT NOT NULL,
    encoding_aes_key  TEXT NOT NULL,
    api_base          TEXT,
    updated_at        BIGINT NOT NULL
);

-- "Contact me" QR codes obtained from WeCom, one per (code, member), so a flushed
-- cache never makes us ask WeCom for a second one.
CREATE TABLE wecom_contact_ways (
    tenant_id   TEXT NOT NULL,
    code_id     TEXT NOT NULL,
    staff_id    TEXT NOT NULL,
    config_id   TEXT NOT NULL,
    qr_code     TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, code_id, staff_id)
);

CREATE TABLE cards (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    staff_id       TEXT NOT NULL,
    slug           TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    title          TEXT,
    company        TEXT,
    avatar_url     TEXT,
    phone          TEXT,
    show_phone     BIGINT NOT NULL DEFAULT 0,
    email          TEXT,
    live_code_id   TEXT,
    bio            TEXT,
    company_intro  TEXT,
    links          TEXT NOT NULL,   -- JSON array of {label, url, kind}
    theme          TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (tenant_id, staff_id)
);

-- Each share mints a token naming who shared (a visitor hash or a staff id) and the
-- token they arrived through, which makes the share tree.
CREATE TABLE card_shares (
    token         TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    card_id       TEXT NOT NULL,
    sharer        TEXT NOT NULL,
    parent_token  TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX card_shares_by_card ON card_shares (tenant_id, card_id);

CREATE TABLE card_events (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    card_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,    -- view | vcard | lead
    visitor      TEXT NOT NULL,
    share_token  TEXT,
    at           BIGINT NOT NULL
);
CREATE INDEX card_events_by_card ON card_events (tenant_id, card_id, kind, at);
