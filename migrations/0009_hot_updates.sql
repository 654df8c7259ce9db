-- lifecycle-worker schema, version 9: contact and user updates without
-- index writes (issue 17).
--
-- Postgres updates a row in place on its page (a HOT update: no new entry
-- in any index) only when no column an index uses changes, and columns in
-- an index's WHERE clause or expression count. Every command rewrites
-- `state`, which the indexes below named, so every update of a contact
-- wrote three index entries and left three dead ones for vacuum. Now no
-- index names `state`: the address the erasure looks up is a generated
-- column (it only changes when the address does), and the partial indexes
-- filter on their own columns.

ALTER TABLE contacts ADD COLUMN IF NOT EXISTS email_lower text
    GENERATED ALWAYS AS (lower(state->>'email')) STORED;

DROP INDEX IF EXISTS contacts_by_email;
CREATE INDEX IF NOT EXISTS contacts_by_email_lower
    ON contacts (tenant_id, email_lower) WHERE email_lower IS NOT NULL;

-- Queries by employer (or by contact, for users) also ask for a live row;
-- that test is made on the rows the index finds.
DROP INDEX IF EXISTS contacts_by_employer;
CREATE INDEX IF NOT EXISTS contacts_by_employer_id
    ON contacts (tenant_id, employer_id) WHERE employer_id IS NOT NULL;
DROP INDEX IF EXISTS users_by_contact;
CREATE INDEX IF NOT EXISTS users_by_contact_id
    ON users (tenant_id, contact_id) WHERE contact_id IS NOT NULL;

-- Room on each page for the next version of its rows, so an update can
-- stay on the page (applies to pages written from now on).
ALTER TABLE contacts SET (fillfactor = 80);
ALTER TABLE users SET (fillfactor = 80);
