-- lifecycle-worker schema, version 8: the operations console (contract
-- section 14).

-- What was done through the console, and every reveal of a dead letter's
-- body: who (the name given at login, or `bearer`), from where, what, and
-- the result. Targets are ids, never personal data.
CREATE TABLE IF NOT EXISTS console_audit (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    session text,
    remote  text,
    action  text NOT NULL,
    target  text,
    result  text NOT NULL
);
CREATE INDEX IF NOT EXISTS console_audit_by_time ON console_audit (at);

-- A group's rows, a page at a time, in id order.
CREATE INDEX IF NOT EXISTS dead_letters_by_group_and_id ON dead_letters (group_id, id)
    WHERE resolved_at IS NULL;
