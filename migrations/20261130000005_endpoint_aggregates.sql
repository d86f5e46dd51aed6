-- Where the 500s come from (issue 11): per project, the failing requests by method + route (+
-- response status), as the `request` tag names them, kept by the writer so the Endpoints page
-- never reads events. `environment` is '' for events without one; every hit is also counted
-- under '*', every environment, which the page shows unless filtered. The text keys use the "C"
-- collation: they are only grouped and matched, and byte order groups them several times
-- faster than a language's rules.

-- Events per endpoint and hour: the counts, the period filter and the 24-hour sparkline.
CREATE TABLE endpoint_hourly_counts (
    project_id  BIGINT NOT NULL,
    endpoint    TEXT COLLATE "C" NOT NULL,
    environment TEXT COLLATE "C" NOT NULL,
    hour        TIMESTAMPTZ NOT NULL,
    count       BIGINT NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, endpoint, environment, hour)
);
CREATE INDEX endpoint_hourly_counts_hour ON endpoint_hourly_counts (hour);

-- Which issues fail on an endpoint, with their events there: the issue count and top issues.
CREATE TABLE endpoint_issues (
    project_id  BIGINT NOT NULL,
    endpoint    TEXT COLLATE "C" NOT NULL,
    environment TEXT COLLATE "C" NOT NULL,
    issue_id    BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, endpoint, environment, issue_id)
);

-- Who was affected on an endpoint, and when last: the users count of any recent period.
CREATE TABLE endpoint_users (
    project_id  BIGINT NOT NULL,
    endpoint    TEXT COLLATE "C" NOT NULL,
    environment TEXT COLLATE "C" NOT NULL,
    user_key    TEXT COLLATE "C" NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, endpoint, environment, user_key)
);
