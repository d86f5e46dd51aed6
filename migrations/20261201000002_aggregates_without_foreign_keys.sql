-- The writer adds a few new tag values per event (`url` and `user` are new for most events),
-- and each new row paid a foreign-key check against `issues` (~30 µs of PostgreSQL's CPU per
-- row, most of the tag upsert's time; issue 13). The writer creates an issue in the same
-- transaction as its aggregates, and issues are never deleted while their rows exist — the same
-- rule `events` and `issue_search_terms` already rely on — so the checks only cost.
ALTER TABLE issue_tag_values DROP CONSTRAINT issue_tag_values_issue_id_fkey;
ALTER TABLE issue_hourly_counts DROP CONSTRAINT issue_hourly_counts_issue_id_fkey;
