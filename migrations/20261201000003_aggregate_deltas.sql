-- Under load, a batch does not upsert the aggregates the dashboard reads (events per issue and
-- hour, tag values, endpoint hits): it appends its totals here, in its own transaction, as one
-- row of arrays shaped like those tables' columns. A flush later deletes the waiting rows and
-- folds their sums in, one upsert per key for many batches: those upserts were half of
-- PostgreSQL's work per event (issue 13). A row outlives a crash, so nothing counted is lost.
CREATE TABLE aggregate_deltas (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- issue_hourly_counts
    hour_issue_ids   BIGINT[] NOT NULL DEFAULT '{}',
    hours            TIMESTAMPTZ[] NOT NULL DEFAULT '{}',
    hour_counts      BIGINT[] NOT NULL DEFAULT '{}',
    -- issue_tag_values
    tag_issue_ids    BIGINT[] NOT NULL DEFAULT '{}',
    tag_keys         TEXT[] NOT NULL DEFAULT '{}',
    tag_values       TEXT[] NOT NULL DEFAULT '{}',
    tag_counts       BIGINT[] NOT NULL DEFAULT '{}',
    tag_first_seen   TIMESTAMPTZ[] NOT NULL DEFAULT '{}',
    tag_last_seen    TIMESTAMPTZ[] NOT NULL DEFAULT '{}',
    -- endpoint_hourly_counts
    eh_projects      BIGINT[] NOT NULL DEFAULT '{}',
    eh_endpoints     TEXT[] NOT NULL DEFAULT '{}',
    eh_environments  TEXT[] NOT NULL DEFAULT '{}',
    eh_hours         TIMESTAMPTZ[] NOT NULL DEFAULT '{}',
    eh_counts        BIGINT[] NOT NULL DEFAULT '{}',
    eh_last_seen     TIMESTAMPTZ[] NOT NULL DEFAULT '{}',
    -- endpoint_issues
    ei_projects      BIGINT[] NOT NULL DEFAULT '{}',
    ei_endpoints     TEXT[] NOT NULL DEFAULT '{}',
    ei_environments  TEXT[] NOT NULL DEFAULT '{}',
    ei_issue_ids     BIGINT[] NOT NULL DEFAULT '{}',
    ei_counts        BIGINT[] NOT NULL DEFAULT '{}',
    ei_last_seen     TIMESTAMPTZ[] NOT NULL DEFAULT '{}',
    -- endpoint_users
    eu_projects      BIGINT[] NOT NULL DEFAULT '{}',
    eu_endpoints     TEXT[] NOT NULL DEFAULT '{}',
    eu_environments  TEXT[] NOT NULL DEFAULT '{}',
    eu_user_keys     TEXT[] NOT NULL DEFAULT '{}',
    eu_last_seen     TIMESTAMPTZ[] NOT NULL DEFAULT '{}',
    -- New distinct users a flush could not add to their issues yet (the issue was locked by a
    -- batch: a flush never waits for one), carried to the next flush.
    user_issue_ids   BIGINT[] NOT NULL DEFAULT '{}',
    user_counts      BIGINT[] NOT NULL DEFAULT '{}'
);

-- The text arrays of a large batch are tens of kilobytes: kept out of line but not compressed,
-- since each row is read back once, seconds later, and compressing it would cost more CPU than
-- the I/O it saves.
ALTER TABLE aggregate_deltas
    ALTER COLUMN tag_keys SET STORAGE EXTERNAL,
    ALTER COLUMN tag_values SET STORAGE EXTERNAL,
    ALTER COLUMN eh_endpoints SET STORAGE EXTERNAL,
    ALTER COLUMN ei_endpoints SET STORAGE EXTERNAL,
    ALTER COLUMN eu_endpoints SET STORAGE EXTERNAL,
    ALTER COLUMN eu_user_keys SET STORAGE EXTERNAL;
