-- Chat history, partitioned by day on created_at. Partitions are created ahead of time by the
-- services (`ensure_chat_partitions`), never by hand; old ones can be detached and archived.
-- The primary key must contain the partition key, so it is (created_at, id); message ids are
-- UUIDv7, whose timestamp is created_at, so a retried insert lands on the same row.

CREATE TABLE chat_messages (
    id          uuid NOT NULL,
    stream_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    body        text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 500),
    created_at  timestamptz NOT NULL,
    deleted_at  timestamptz,
    deleted_by  uuid,
    PRIMARY KEY (created_at, id)
) PARTITION BY RANGE (created_at);

-- History of a room, newest first (the only read path).
CREATE INDEX chat_messages_stream_time ON chat_messages (stream_id, created_at DESC, id DESC);
-- Moderation: a user's messages in a room (delete-all on ban).
CREATE INDEX chat_messages_user ON chat_messages (stream_id, user_id, created_at DESC);

-- Creates the daily partitions covering [from_day, from_day + days). Idempotent.
CREATE FUNCTION ensure_chat_partitions(from_day date, days int) RETURNS int AS $$
DECLARE
    d date;
    made int := 0;
    part text;
BEGIN
    -- Several replicas run this at start-up; serialise them instead of racing on CREATE.
    PERFORM pg_advisory_xact_lock(hashtext('ensure_chat_partitions'));
    FOR i IN 0 .. days - 1 LOOP
        d := from_day + i;
        part := 'chat_messages_' || to_char(d, 'YYYYMMDD');
        IF to_regclass(part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF chat_messages FOR VALUES FROM (%L) TO (%L)',
                part, d::text || ' 00:00:00+00', (d + 1)::text || ' 00:00:00+00');
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END
$$ LANGUAGE plpgsql;
