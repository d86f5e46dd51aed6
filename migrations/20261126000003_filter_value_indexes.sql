-- The issue list's environment and release drop-downs read every value of one tag key. Partial
-- indexes keep that an index scan over a few rows per issue, without indexing the (much larger)
-- rest of issue_tag_values on the ingest hot path.
CREATE INDEX issue_tag_values_environments ON issue_tag_values (value) WHERE key = 'environment';
CREATE INDEX issue_tag_values_releases ON issue_tag_values (value) WHERE key = 'release';
