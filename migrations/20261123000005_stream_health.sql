-- What the media worker last reported about a stream's encoder: speed (1.0 = real time) and
-- frames dropped so far. Shown to the streamer in analytics; the autoscaler will read it too.
ALTER TABLE streams
    ADD COLUMN encode_speed real,
    ADD COLUMN dropped_frames int NOT NULL DEFAULT 0 CHECK (dropped_frames >= 0),
    ADD COLUMN health_at timestamptz;
