-- Every scan is a row, written on the hottest path there is; each index on the
-- table is paid on every scan. The funnel report now counts scans per live code
-- through scans_by_code (tenant, code, time), so the tenant-wide time index goes.
DROP INDEX IF EXISTS scans_by_time;
