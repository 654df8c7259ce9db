-- lifecycle-worker schema, version 6: effective-dated commands (contract
-- section 12). A scheduled command is kept whole until it is due; the
-- transaction that applies it deletes its row, so it runs exactly once.
CREATE TABLE IF NOT EXISTS scheduled_commands (
    tenant_id    text        NOT NULL,
    command_id   text        NOT NULL,
    command_type text        NOT NULL,
    -- The entity (contact or user), or a bulk's tenant.
    entity_kind  text        NOT NULL,
    entity_id    text        NOT NULL,
    -- The AMQP user the command was authorised as.
    user_id      text,
    effective_at timestamptz NOT NULL,
    body         bytea       NOT NULL,
    properties   jsonb       NOT NULL,
    exchange     text        NOT NULL,
    routing_key  text        NOT NULL,
    scheduled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, command_id)
);
-- The schedulers' work list and their next wake-up.
CREATE INDEX IF NOT EXISTS scheduled_due ON scheduled_commands (effective_at);
-- `contact show` / `user show`, and erasure.
CREATE INDEX IF NOT EXISTS scheduled_by_entity
    ON scheduled_commands (tenant_id, entity_kind, entity_id);
