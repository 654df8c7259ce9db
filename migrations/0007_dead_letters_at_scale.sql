-- lifecycle-worker schema, version 7: dead letters at scale (contract
-- section 13): failure groups, replay claims, outcomes and a history.

-- The failure cause, computed when the row is written (the worker's
-- `template` of the message and the group id over code, type and
-- template), so grouping reads an index instead of parsing messages.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS template text;
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS group_id text;
-- A replay in flight: claimed before publishing, `claim_published` once
-- the broker confirmed it; cleared by its outcome. Another replay leaves a
-- claimed row alone (see the README for the leases).
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS claimed_at timestamptz;
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS claim_published boolean NOT NULL DEFAULT false;
-- A replay of it was applied (any outcome but a rejection): done.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS resolved_at timestamptz;
CREATE INDEX IF NOT EXISTS dead_letters_by_group ON dead_letters (group_id)
    WHERE resolved_at IS NULL;

-- Every replay and edit of a row: who (AMQP and operating-system user),
-- when, the result once known; an edit's old and new bodies. Deleted with
-- its row, so retention and erasure cover it.
CREATE TABLE IF NOT EXISTS dead_letter_history (
    dead_letter_id bigint      NOT NULL REFERENCES dead_letters (id) ON DELETE CASCADE,
    seq            bigserial   NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    action         text        NOT NULL CHECK (action IN ('replay', 'edit')),
    replay         integer,
    amqp_user      text,
    os_user        text,
    result         text,
    old_body       bytea,
    new_body       bytea,
    PRIMARY KEY (dead_letter_id, seq)
);
