-- lifecycle-worker schema, version 1.
-- Every table keyed by tenant has tenant_id first in its primary key and in
-- every unique and foreign key, so the schema can be distributed by tenant
-- (e.g. Citus) without a redesign (contract section 8).

-- Contacts. Entity state lives in `state` (JSONB, the domain's Contact);
-- the columns beside it are what queries filter on. A row with state NULL
-- and deleted_at set is a tombstone: ids and time only, no personal data.
-- A row with both NULL is a lock placeholder that only exists inside the
-- transaction creating the contact.
CREATE TABLE IF NOT EXISTS contacts (
    tenant_id   text        NOT NULL,
    contact_id  text        NOT NULL,
    version     bigint      NOT NULL,
    employer_id text,
    deleted_at  timestamptz,
    state       jsonb,
    PRIMARY KEY (tenant_id, contact_id)
);
-- contact.bulk with a filter selects a tenant's contacts by current employer.
CREATE INDEX IF NOT EXISTS contacts_by_employer
    ON contacts (tenant_id, employer_id) WHERE state IS NOT NULL;

-- The activity trail (notes, meetings, tasks, messages), attributed to the
-- employer the contact had when it was logged. Erased with the contact.
CREATE TABLE IF NOT EXISTS contact_activity (
    tenant_id   text        NOT NULL,
    contact_id  text        NOT NULL,
    seq         bigserial   NOT NULL,
    command_id  text        NOT NULL,
    kind        text        NOT NULL,
    body        text        NOT NULL,
    action_code text,
    employer_id text,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, contact_id, seq)
);

-- Employer users; same layout as contacts. contact_id links a user to the
-- contact whose archive may revoke their access.
CREATE TABLE IF NOT EXISTS users (
    tenant_id  text        NOT NULL,
    user_id    text        NOT NULL,
    version    bigint      NOT NULL,
    contact_id text,
    deleted_at timestamptz,
    state      jsonb,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX IF NOT EXISTS users_by_contact
    ON users (tenant_id, contact_id) WHERE state IS NOT NULL;

-- Employers, created with no name when a contact references one first.
CREATE TABLE IF NOT EXISTS employers (
    tenant_id   text   NOT NULL,
    employer_id text   NOT NULL,
    version     bigint NOT NULL,
    state       jsonb  NOT NULL,
    PRIMARY KEY (tenant_id, employer_id)
);

CREATE TABLE IF NOT EXISTS roles (
    tenant_id text   NOT NULL,
    role_id   text   NOT NULL,
    version   bigint NOT NULL,
    state     jsonb  NOT NULL,
    PRIMARY KEY (tenant_id, role_id)
);

-- The inbox: one row per processed command, written in the same transaction
-- as its effect. `reply` is repeated (with duplicate=true) for duplicates.
-- Rejected commands are never recorded here.
CREATE TABLE IF NOT EXISTS processed_commands (
    tenant_id    text        NOT NULL,
    command_id   text        NOT NULL,
    command_type text        NOT NULL,
    outcome      text,
    reply        jsonb,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, command_id)
);
CREATE INDEX IF NOT EXISTS processed_commands_by_time ON processed_commands (processed_at);

-- The transactional outbox. `id` orders events: rows of one entity are
-- inserted under that entity's row lock, so their ids follow its versions.
CREATE TABLE IF NOT EXISTS outbox (
    tenant_id    text        NOT NULL,
    id           bigserial   NOT NULL,
    event_id     uuid        NOT NULL,
    routing_key  text        NOT NULL,
    event_type   text        NOT NULL,
    entity_kind  text        NOT NULL,
    entity_id    text        NOT NULL,
    version      bigint      NOT NULL,
    body         jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
-- The relay's work list: unpublished rows in id order.
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Dead letters: rejected commands and broker-level dead letters. Not keyed
-- by tenant, because a malformed message may have none; `fingerprint`
-- (hash of routing key and body) makes the same message failing again
-- update its row.
CREATE TABLE IF NOT EXISTS dead_letters (
    id              bigserial   PRIMARY KEY,
    fingerprint     text        NOT NULL UNIQUE,
    body            bytea       NOT NULL,
    properties      jsonb       NOT NULL,
    exchange        text        NOT NULL,
    routing_key     text        NOT NULL,
    tenant_id       text,
    command_id      text,
    command_type    text,
    code            text        NOT NULL,
    message         text        NOT NULL,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at  timestamptz NOT NULL DEFAULT now(),
    failure_count   integer     NOT NULL DEFAULT 1,
    -- Replays by `dlq replay` (which adds header x-replayed = replay_count).
    replayed_at     timestamptz,
    replay_count    integer     NOT NULL DEFAULT 0,
    -- x-replayed of the delivery that failed last (0: the original). The row
    -- needs attention while last_failure_replay >= replay_count, whichever
    -- of the replay mark and the new failure is written first.
    last_failure_replay integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS dead_letters_by_tenant ON dead_letters (tenant_id, code);
