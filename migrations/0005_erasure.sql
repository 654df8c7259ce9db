-- lifecycle-worker schema, version 5: erasure and the blocklist of erased
-- addresses (contract section 11).

-- Erased addresses, per tenant, as HMAC-SHA-256 (privacy.hash_key) of
-- tenant and normalised email: enough to recognise the address when it
-- comes back, never enough to read it.
CREATE TABLE IF NOT EXISTS erased_emails (
    tenant_id  text        NOT NULL,
    email_hmac bytea       NOT NULL CHECK (octet_length(email_hmac) = 32),
    erased_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, email_hmac)
);

-- The key of those hashes: generated here once when privacy.hash_key is
-- not configured; its fingerprint makes a start with another key fail
-- instead of silently forgetting every erased address.
CREATE TABLE IF NOT EXISTS privacy_key (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generated   bytea CHECK (generated IS NULL OR octet_length(generated) = 32),
    fingerprint text  NOT NULL
);

-- An erasure finds a tenant's contacts with the same address (to suppress
-- them too) by index; the worker compares the candidates exactly.
CREATE INDEX IF NOT EXISTS contacts_by_email
    ON contacts (tenant_id, lower(state->>'email')) WHERE state IS NOT NULL;

-- What an erasure scrubs, found by index: the entity's outbox rows (scrub:
-- strip `data` once published), dead letters and held commands.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS scrub boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS outbox_by_entity ON outbox (tenant_id, entity_kind, entity_id);
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS entity_kind text;
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS entity_id text;
CREATE INDEX IF NOT EXISTS dead_letters_by_entity ON dead_letters (tenant_id, entity_kind, entity_id)
    WHERE entity_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS held_commands_by_entity ON held_commands (tenant_id, entity_kind, entity_id);

-- Dead letters stored before this version: their entity, where the body
-- is a JSON command naming one.
DO $$
DECLARE
    r record;
    j jsonb;
    kind text;
BEGIN
    FOR r IN SELECT id, body FROM dead_letters WHERE entity_id IS NULL AND tenant_id IS NOT NULL LOOP
        BEGIN
            j := convert_from(r.body, 'UTF8')::jsonb;
        EXCEPTION WHEN others THEN
            CONTINUE;
        END;
        IF jsonb_typeof(j) <> 'object' OR jsonb_typeof(j->'payload') <> 'object' THEN
            CONTINUE;
        END IF;
        kind := split_part(j->>'type', '.', 1);
        IF kind IN ('contact', 'user') AND jsonb_typeof(j->'payload'->(kind || '_id')) = 'string' THEN
            UPDATE dead_letters SET entity_kind = kind, entity_id = j->'payload'->>(kind || '_id')
            WHERE id = r.id;
        END IF;
    END LOOP;
END
$$;
