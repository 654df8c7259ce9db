-- lifecycle-worker schema, version 11: the console within bounds (issue
-- 25).
--
-- A failed login (or wrong bearer token, or an attempt refused while its
-- address is locked out) was one audit row per request, written for
-- anyone who could reach the port. Now the console counts them in memory
-- and adds the counts every few seconds to one row per client address,
-- minute and result; every other record keeps count 1.
ALTER TABLE console_audit ADD COLUMN IF NOT EXISTS count integer NOT NULL DEFAULT 1;
CREATE UNIQUE INDEX IF NOT EXISTS console_audit_failed_logins
    ON console_audit (remote, at, result) WHERE action = 'failed login';

-- The console lists held commands of all tenants a page at a time in hold
-- order (keyset); the primary key starts with the tenant.
CREATE INDEX IF NOT EXISTS held_commands_by_hold ON held_commands (hold_id);
