-- lifecycle-worker schema, version 10: the relay's work list is its own
-- table (issue 17).
--
-- Marking an outbox row published was an UPDATE of `published_at`, which
-- two partial indexes named: a full new version of the row (event body
-- included) with four new index entries, per event, more WAL than the
-- insert itself, and a dead row in the large table for vacuum. Now an
-- outbox row is written once and never updated on the way out: the events
-- still to publish are listed in `outbox_unpublished` (a few bytes per row,
-- inserted in the same statement as the event) and publishing deletes that
-- entry. An outbox row without one is published.
--
-- `scrub` moves there too: it only ever mattered for a row not yet
-- published (strip the event's data once it is out). No foreign key to the
-- outbox: it would cost a lookup per event, and rows are only ever written
-- and removed together by the statements of the worker.
CREATE TABLE IF NOT EXISTS outbox_unpublished (
    tenant_id text    NOT NULL,
    id        bigint  NOT NULL,
    scrub     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, id)
);
-- The relay reads and deletes in id order, across tenants.
CREATE INDEX IF NOT EXISTS outbox_unpublished_in_order ON outbox_unpublished (id);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'outbox'
                 AND column_name = 'published_at') THEN
        INSERT INTO outbox_unpublished (tenant_id, id, scrub)
            SELECT tenant_id, id, scrub FROM outbox WHERE published_at IS NULL
            ON CONFLICT DO NOTHING;
        DROP INDEX IF EXISTS outbox_pending;
        DROP INDEX IF EXISTS outbox_published;
        ALTER TABLE outbox DROP COLUMN published_at;
    END IF;
END $$;
ALTER TABLE outbox DROP COLUMN IF EXISTS scrub;

-- The event body is stored as `json`, the text the worker wrote (checked
-- to be JSON): the relay publishes it as stored, so building a jsonb tree
-- on insert (parsing, sorting keys) and printing it again for the relay
-- was a fifth of Postgres's CPU per event. This rewrites the outbox once
-- (it holds `retention.published_outbox_days` of events).
ALTER TABLE outbox ALTER COLUMN body TYPE json;

-- Retention purges published rows by age: the index is appended to in
-- time order, one entry per event at the right edge.
CREATE INDEX IF NOT EXISTS outbox_by_time ON outbox (created_at);
