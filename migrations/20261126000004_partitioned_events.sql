-- Events are partitioned by the day they were received, so retention drops whole partitions
-- (a cheap DROP TABLE) instead of deleting millions of rows, and ingest never waits for it.
--
-- A primary key on a partitioned table must contain the partition key, so SDK-retry
-- de-duplication moves to `event_ids`: one narrow row per stored event, unique per project and
-- event id, which also finds an event's partition and issue from its id.

CREATE TABLE event_ids (
    project_id  BIGINT NOT NULL,
    event_id    UUID NOT NULL,
    issue_id    BIGINT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, event_id)
);
-- Rows arrive in time order: a BRIN index finds the expired ones at almost no cost per insert.
CREATE INDEX event_ids_received ON event_ids USING brin (received_at);

ALTER TABLE events RENAME TO events_unpartitioned;
ALTER INDEX events_issue_received RENAME TO events_unpartitioned_issue_received;

-- No foreign keys: they would cost a lookup per inserted row, and the writer creates the issue
-- in the same transaction. Issues and projects are never deleted while events exist.
CREATE TABLE events (
    project_id  BIGINT NOT NULL,
    event_id    UUID NOT NULL,
    issue_id    BIGINT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    level       TEXT NOT NULL,
    environment TEXT,
    release     TEXT,
    user_key    TEXT,
    body        BYTEA NOT NULL
) PARTITION BY RANGE (received_at);
CREATE INDEX events_issue_received ON events (issue_id, received_at);

-- Creates the daily partitions `events_YYYYMMDD` from `first_day` to `last_day` that are
-- missing; returns how many it created. Safe to run from several instances at once.
CREATE FUNCTION faultline_create_event_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day date := first_day;
    created integer := 0;
BEGIN
    WHILE day <= last_day LOOP
        IF to_regclass(format('events_%s', to_char(day, 'YYYYMMDD'))) IS NULL THEN
            BEGIN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                    format('events_%s', to_char(day, 'YYYYMMDD')),
                    format('%s 00:00:00+00', day),
                    format('%s 00:00:00+00', day + 1)
                );
                created := created + 1;
            EXCEPTION WHEN duplicate_table THEN
                NULL; -- another instance made it first
            END;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN created;
END;
$$;

SELECT faultline_create_event_partitions(
    LEAST(COALESCE((SELECT min(received_at) FROM events_unpartitioned), now()), now())::date - 1,
    (now() AT TIME ZONE 'UTC')::date + 14
);

INSERT INTO event_ids (project_id, event_id, issue_id, received_at)
SELECT project_id, event_id, issue_id, received_at FROM events_unpartitioned;
INSERT INTO events SELECT project_id, event_id, issue_id, received_at, occurred_at, level,
                          environment, release, user_key, body
                     FROM events_unpartitioned;
DROP TABLE events_unpartitioned;
