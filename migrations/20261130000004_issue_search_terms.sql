-- Search inside stack traces (issue 11): per issue, the distinct exception types and values,
-- messages, and frame functions, modules and files of its events, kept by the writer as the
-- events arrive, so the issue list's free text finds "parse_quantity" without reading events.
-- A trigram index serves `term ILIKE '%text%'` for text of three characters or more.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- No foreign key, as for events: it would cost a lookup per row, and the writer creates the
-- issue in the same transaction.
CREATE TABLE issue_search_terms (
    issue_id BIGINT NOT NULL,
    term     TEXT NOT NULL,
    PRIMARY KEY (issue_id, term)
);
CREATE INDEX issue_search_terms_trigrams ON issue_search_terms USING gin (term gin_trgm_ops);

-- How many terms an issue has: the writer stops adding past a bound (values that differ in
-- every event would otherwise grow without end).
ALTER TABLE issues ADD COLUMN search_terms INTEGER NOT NULL DEFAULT 0;
