-- Projects and the DSN keys that may send events to them.
CREATE TABLE projects (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE project_keys (
    id         BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    public_key TEXT NOT NULL UNIQUE,
    label      TEXT NOT NULL DEFAULT 'Default',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ
);
CREATE INDEX project_keys_project ON project_keys (project_id);

CREATE TYPE issue_status AS ENUM ('unresolved', 'resolved', 'ignored');

-- One row per (project, grouping hash). Counts are kept current by the batch writer.
CREATE TABLE issues (
    id           BIGSERIAL PRIMARY KEY,
    project_id   BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    hash         TEXT NOT NULL,
    title        TEXT NOT NULL,
    culprit      TEXT NOT NULL DEFAULT '',
    level        TEXT NOT NULL,
    status       issue_status NOT NULL DEFAULT 'unresolved',
    event_count  BIGINT NOT NULL DEFAULT 0,
    user_count   BIGINT NOT NULL DEFAULT 0,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    regressed_at TIMESTAMPTZ,
    grouping     JSONB NOT NULL,
    metadata     JSONB NOT NULL DEFAULT '{}',
    UNIQUE (project_id, hash)
);
CREATE INDEX issues_project_last_seen ON issues (project_id, last_seen DESC);

-- The normalised event, zstd-compressed by the application: PostgreSQL never looks inside it;
-- what pages filter on lives in columns and aggregate tables.
CREATE TABLE events (
    project_id   BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    event_id     UUID NOT NULL,
    issue_id     BIGINT NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    received_at  TIMESTAMPTZ NOT NULL,
    occurred_at  TIMESTAMPTZ NOT NULL,
    level        TEXT NOT NULL,
    environment  TEXT,
    release      TEXT,
    user_key     TEXT,
    body         BYTEA NOT NULL,
    PRIMARY KEY (project_id, event_id)
);
CREATE INDEX events_issue_received ON events (issue_id, received_at);

-- Occurrences per issue and hour, for sparklines and charts.
CREATE TABLE issue_hourly_counts (
    issue_id BIGINT NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    hour     TIMESTAMPTZ NOT NULL,
    count    BIGINT NOT NULL,
    PRIMARY KEY (issue_id, hour)
);

-- Occurrences per issue and tag value (environment, release, user, the event's own tags…).
-- The number of distinct `user` values is the issue's user count.
CREATE TABLE issue_tag_values (
    issue_id   BIGINT NOT NULL REFERENCES issues (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    count      BIGINT NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issue_id, key, value)
);
