-- lifecycle-worker schema, version 2: hardening (contract section 9).
-- Runs in the worker's own schema (database.schema), like 0001.

-- Dead letters keep at most limits.dead_letter_body_bytes of a body, with
-- the full length and SHA-256; and the producer a replay is authorised as.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS body_len bigint;
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS body_sha256 text;
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS user_id text;
UPDATE dead_letters SET body_len = octet_length(body) WHERE body_len IS NULL;
UPDATE dead_letters SET body_sha256 = encode(sha256(body), 'hex') WHERE body_sha256 IS NULL;
UPDATE dead_letters SET user_id = properties->>'user_id' WHERE user_id IS NULL;
ALTER TABLE dead_letters ALTER COLUMN body_len SET NOT NULL;
ALTER TABLE dead_letters ALTER COLUMN body_sha256 SET NOT NULL;
-- Retention purges by last failure.
CREATE INDEX IF NOT EXISTS dead_letters_by_last_failure ON dead_letters (last_failed_at);

-- Invariants the data relies on, enforced where they live.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'outbox_event_id_unique' AND conrelid = 'outbox'::regclass) THEN
        ALTER TABLE outbox ADD CONSTRAINT outbox_event_id_unique UNIQUE (tenant_id, event_id);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'outbox_version_positive' AND conrelid = 'outbox'::regclass) THEN
        ALTER TABLE outbox ADD CONSTRAINT outbox_version_positive CHECK (version >= 0);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'processed_commands_outcome' AND conrelid = 'processed_commands'::regclass) THEN
        -- The outcomes an inbox row can hold (rejections are dead letters,
        -- duplicates repeat the first); v2's held, scheduled and cancelled too.
        ALTER TABLE processed_commands ADD CONSTRAINT processed_commands_outcome CHECK (
            outcome IS NOT NULL AND reply IS NOT NULL
            AND outcome IN ('applied', 'unchanged', 'stale', 'rejected', 'held', 'scheduled', 'cancelled'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'dead_letters_code' AND conrelid = 'dead_letters'::regclass) THEN
        ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_code CHECK (code IN (
            'malformed', 'invalid_command', 'forbidden', 'not_found', 'employer_not_found',
            'role_not_found', 'version_conflict', 'frozen', 'delete_forbidden', 'invalid_status',
            'invalid_transition', 'discarded', 'poison'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'dead_letters_counts' AND conrelid = 'dead_letters'::regclass) THEN
        ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_counts CHECK (
            failure_count >= 1 AND replay_count >= 0 AND last_failure_replay >= 0
            AND body_len >= octet_length(body) AND body_sha256 ~ '^[0-9a-f]{64}$');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'contacts_version' AND conrelid = 'contacts'::regclass) THEN
        ALTER TABLE contacts ADD CONSTRAINT contacts_version CHECK (version >= 0);
        ALTER TABLE users ADD CONSTRAINT users_version CHECK (version >= 0);
        ALTER TABLE employers ADD CONSTRAINT employers_version CHECK (version >= 0);
        ALTER TABLE roles ADD CONSTRAINT roles_version CHECK (version >= 0);
    END IF;
END
$$;
