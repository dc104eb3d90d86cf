-- The region a tenant's numbers without a country code are read in (ISO 3166
-- alpha-2, as libphonenumber knows them).
ALTER TABLE tenants ADD COLUMN phone_region TEXT NOT NULL DEFAULT 'CN';
