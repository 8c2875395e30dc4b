-- Recordings, VODs, clips and the object-deletion queue (issue 15, docs/design/recording.md §3).

-- The channel's setting: record its broadcasts (the default) or not.
ALTER TABLE users ADD COLUMN record_broadcasts boolean NOT NULL DEFAULT true;

-- One per broadcast that is recorded: made when the stream starts (the channel records and the
-- apiserver has a recordings store), updated by the media worker's reports, finalized into a
-- VOD once the stream is over and its segments are stored.
CREATE TABLE recordings (
    stream_id         uuid PRIMARY KEY REFERENCES streams (id) ON DELETE CASCADE,
    user_id           uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The object prefix, 'rec/{stream_id}': what deleting the row deletes in the store.
    prefix            text NOT NULL UNIQUE,
    state             text NOT NULL DEFAULT 'recording'
                      CHECK (state IN ('recording', 'finalizing', 'ready')),
    -- The worker's last report (POST /internal/streams/{id}/recording).
    upload_state      text NOT NULL DEFAULT 'ok' CHECK (upload_state IN ('ok', 'behind', 'failing')),
    lag_ms            bigint NOT NULL DEFAULT 0 CHECK (lag_ms >= 0),
    uploaded_segments bigint NOT NULL DEFAULT 0 CHECK (uploaded_segments >= 0),
    dropped_segments  bigint NOT NULL DEFAULT 0 CHECK (dropped_segments >= 0),
    uploaded_bytes    bigint NOT NULL DEFAULT 0 CHECK (uploaded_bytes >= 0),
    reported_at       timestamptz,
    -- The worker stored everything after the stream ended: the VOD can be made now.
    flushed_at        timestamptz,
    -- Finalizing is leased, so several apiserver replicas never write the same VOD at once.
    lease_until       timestamptz NOT NULL DEFAULT '-infinity',
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recordings_open ON recordings (stream_id) WHERE state <> 'ready';

-- A finished recording people can watch. Deleting the recording row deletes it (and, through
-- the trigger below, its objects).
CREATE TABLE vods (
    id              uuid PRIMARY KEY,
    stream_id       uuid NOT NULL UNIQUE REFERENCES recordings (stream_id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    duration_ms     bigint NOT NULL CHECK (duration_ms >= 0),
    renditions      text[] NOT NULL,
    discontinuities int NOT NULL DEFAULT 0 CHECK (discontinuities >= 0),
    bytes           bigint NOT NULL CHECK (bytes >= 0),
    has_thumbnail   boolean NOT NULL DEFAULT false,
    -- The first segment's wall-clock time.
    recorded_at     timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The stream's end plus the channel tier's retention.
    expires_at      timestamptz NOT NULL
);
CREATE INDEX vods_by_channel ON vods (user_id, created_at DESC, id DESC);
CREATE INDEX vods_expiry ON vods (expires_at);

-- Object prefixes to delete, filled by a trigger in the transaction that deletes the row, so no
-- path (the API, retention, account deletion, a cascade) can leave objects behind. Swept twice:
-- once at once, once after the flush grace (a worker still storing a late segment).
CREATE TABLE storage_deletions (
    prefix          text PRIMARY KEY,
    reason          text NOT NULL,
    not_before      timestamptz NOT NULL DEFAULT now(),
    sweeps_left     smallint NOT NULL DEFAULT 2 CHECK (sweeps_left >= 0),
    lease_until     timestamptz NOT NULL DEFAULT '-infinity',
    deleted_objects bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX storage_deletions_due ON storage_deletions (not_before);

CREATE FUNCTION queue_storage_deletion() RETURNS trigger AS $$
BEGIN
    INSERT INTO storage_deletions (prefix, reason) VALUES (OLD.prefix, TG_TABLE_NAME)
    ON CONFLICT (prefix) DO UPDATE SET sweeps_left = 2, not_before = now();
    RETURN OLD;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER recordings_objects AFTER DELETE ON recordings
    FOR EACH ROW EXECUTE FUNCTION queue_storage_deletion();

-- A clip: its own copies of a recording's segments (clips/{id}/), so it outlives the VOD.
CREATE TABLE clips (
    id          uuid PRIMARY KEY,
    channel_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Who made it; a deleted account's clips of other channels stay.
    creator_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    stream_id   uuid REFERENCES streams (id) ON DELETE SET NULL,
    vod_id      uuid REFERENCES vods (id) ON DELETE SET NULL,
    prefix      text NOT NULL UNIQUE,
    title       text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 140),
    -- Where it starts in the broadcast's recording.
    offset_ms   bigint NOT NULL CHECK (offset_ms >= 0),
    duration_ms bigint NOT NULL CHECK (duration_ms > 0),
    renditions  text[] NOT NULL,
    bytes       bigint NOT NULL CHECK (bytes >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- NULL: kept until deleted.
    expires_at  timestamptz
);
CREATE INDEX clips_by_channel ON clips (channel_id, created_at DESC, id DESC);
CREATE INDEX clips_expiry ON clips (expires_at) WHERE expires_at IS NOT NULL;

CREATE TRIGGER clips_objects AFTER DELETE ON clips
    FOR EACH ROW EXECUTE FUNCTION queue_storage_deletion();
