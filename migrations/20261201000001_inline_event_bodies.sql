-- Event bodies are zstd-compressed by Faultline (a ~10 KB event is ~2.5 KB stored). With the
-- default `toast_tuple_target` of 2 KB, PostgreSQL tried to pglz-compress every such row again
-- (in vain) and then moved the body to the TOAST table: two more heap rows and two more index
-- entries per event. Keeping rows up to a whole page inline, and never re-compressing the
-- body, makes an event one heap row and one index entry (issue 13).
ALTER TABLE events ALTER COLUMN body SET STORAGE EXTERNAL;

DO $$
DECLARE
    partition regclass;
BEGIN
    FOR partition IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'events'::regclass
    LOOP
        EXECUTE format('ALTER TABLE %s SET (toast_tuple_target = 8160)', partition);
    END LOOP;
END;
$$;

-- As in 20261126000004, with the storage parameter on each new partition.
CREATE OR REPLACE FUNCTION faultline_create_event_partitions(first_day date, last_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day date := first_day;
    created integer := 0;
BEGIN
    WHILE day <= last_day LOOP
        IF to_regclass(format('events_%s', to_char(day, 'YYYYMMDD'))) IS NULL THEN
            BEGIN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)
                     WITH (toast_tuple_target = 8160)',
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
