-- lifecycle-worker schema, version 3: the mass-change guardrail (contract
-- section 10).

-- One row per tenant that ever applied a destructive change. Transactions
-- applying destructive changes lock their tenant's row, so the count is
-- exact across replicas and tenants never wait for each other.
CREATE TABLE IF NOT EXISTS guardrail_tenants (
    tenant_id     text        NOT NULL PRIMARY KEY,
    tripped       boolean     NOT NULL DEFAULT false,
    -- A release or discard of everything restarts the count here.
    counted_since timestamptz NOT NULL DEFAULT '-infinity',
    -- Orders the tenant's guardrail events (their entityversion).
    version       bigint      NOT NULL DEFAULT 0 CHECK (version >= 0)
);

-- Destructive changes applied, per tenant and second: the sliding window
-- is the sum over its span (to the second), and a tenant's flood adds one
-- row a second, not one a batch. Purged by retention.
CREATE TABLE IF NOT EXISTS guardrail_changes (
    tenant_id  text        NOT NULL,
    applied_at timestamptz NOT NULL,
    changes    bigint      NOT NULL CHECK (changes > 0),
    PRIMARY KEY (tenant_id, applied_at)
);

-- Held commands, whole: what a release applies again or a discard
-- dead-letters. One hold per command of a tenant.
CREATE TABLE IF NOT EXISTS held_commands (
    tenant_id    text        NOT NULL,
    hold_id      bigserial   NOT NULL,
    command_id   text        NOT NULL,
    command_type text        NOT NULL,
    entity_kind  text,
    entity_id    text,
    contact_ids  jsonb,
    user_id      text,
    body         bytea       NOT NULL,
    properties   jsonb       NOT NULL,
    exchange     text        NOT NULL,
    routing_key  text        NOT NULL,
    held_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, hold_id),
    UNIQUE (tenant_id, command_id)
);
