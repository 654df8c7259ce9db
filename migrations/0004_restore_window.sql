-- lifecycle-worker schema, version 4: soft delete with a restore window
-- (contract section 11). A soft-deleted contact or user keeps its state
-- here, not in `state`, so it reads as deleted everywhere, until the purge
-- after `purge_after` removes it (and a contact's activity) for good.
ALTER TABLE contacts ADD COLUMN IF NOT EXISTS deleted_state jsonb;
ALTER TABLE contacts ADD COLUMN IF NOT EXISTS purge_after timestamptz;
ALTER TABLE users ADD COLUMN IF NOT EXISTS deleted_state jsonb;
ALTER TABLE users ADD COLUMN IF NOT EXISTS purge_after timestamptz;
-- The purge's work list.
CREATE INDEX IF NOT EXISTS contacts_to_purge ON contacts (purge_after)
    WHERE purge_after IS NOT NULL;
CREATE INDEX IF NOT EXISTS users_to_purge ON users (purge_after)
    WHERE purge_after IS NOT NULL;
