-- Broadcasts, categories, followers and analytics.

CREATE TABLE categories (
    slug       text PRIMARY KEY CHECK (slug ~ '^[a-z0-9-]{1,40}$'),
    name       text NOT NULL,
    sort_order int NOT NULL DEFAULT 100
);

INSERT INTO categories (slug, name, sort_order) VALUES
    ('just-chatting', 'Just Chatting', 1),
    ('games', 'Games', 2),
    ('music', 'Music', 3),
    ('art', 'Art', 4),
    ('software', 'Software & Development', 5),
    ('science', 'Science & Technology', 6),
    ('sports', 'Sports', 7),
    ('education', 'Education', 8),
    ('food', 'Food & Drink', 9),
    ('travel', 'Travel & Outdoors', 10),
    ('irl', 'IRL', 11),
    ('other', 'Other', 100);

-- One row per broadcast, from start to end.
CREATE TABLE streams (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title           text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 140),
    category        text NOT NULL REFERENCES categories (slug),
    tags            text[] NOT NULL DEFAULT '{}',
    language        text NOT NULL DEFAULT 'en',
    -- Requested top rendition (e.g. 'source', '1080p', '720p').
    quality         text NOT NULL DEFAULT 'source',
    status          text NOT NULL DEFAULT 'starting'
                    CHECK (status IN ('starting', 'live', 'ending', 'ended', 'failed')),
    -- The streamer's name at start, so text search needs no join (names rarely change mid-stream).
    streamer_name   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    ended_at        timestamptz,
    current_viewers int NOT NULL DEFAULT 0 CHECK (current_viewers >= 0),
    peak_viewers    int NOT NULL DEFAULT 0 CHECK (peak_viewers >= 0),
    unique_viewers  int NOT NULL DEFAULT 0 CHECK (unique_viewers >= 0),
    -- Maintained by the trigger below: title (A), tags and streamer name (B), category (C).
    search          tsvector NOT NULL DEFAULT ''::tsvector
);

-- One active broadcast per user; the apiserver turns a violation into 409.
CREATE UNIQUE INDEX streams_one_active_per_user ON streams (user_id)
    WHERE status IN ('starting', 'live', 'ending');
-- A user's past broadcasts, newest first.
CREATE INDEX streams_user_created ON streams (user_id, created_at DESC, id DESC);
-- Discovery: live streams ranked by viewers (the hot path; partial keeps it tiny).
CREATE INDEX streams_live_rank ON streams (current_viewers DESC, created_at DESC, id DESC) WHERE status = 'live';
CREATE INDEX streams_live_category ON streams (category, current_viewers DESC, created_at DESC, id DESC) WHERE status = 'live';
-- Discovery over everything: live first, then most recent.
CREATE INDEX streams_all_rank ON streams ((status = 'live') DESC, current_viewers DESC, created_at DESC, id DESC);
CREATE INDEX streams_search ON streams USING gin (search);
CREATE INDEX streams_tags ON streams USING gin (tags);
CREATE INDEX streams_title_trgm ON streams USING gin (lower(title) gin_trgm_ops);

CREATE FUNCTION streams_search_update() RETURNS trigger AS $$
BEGIN
    NEW.search :=
        setweight(to_tsvector('simple', NEW.title), 'A') ||
        setweight(to_tsvector('simple', array_to_string(NEW.tags, ' ')), 'B') ||
        setweight(to_tsvector('simple', NEW.streamer_name), 'B') ||
        setweight(to_tsvector('simple', replace(NEW.category, '-', ' ')), 'C');
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER streams_search_update
    BEFORE INSERT OR UPDATE OF title, tags, streamer_name, category ON streams
    FOR EACH ROW EXECUTE FUNCTION streams_search_update();

CREATE TABLE followers (
    -- The channel being followed.
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    follower_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, follower_id),
    CHECK (user_id <> follower_id)
);

-- "Whom do I follow" and "followed channels live now".
CREATE INDEX followers_by_follower ON followers (follower_id, created_at DESC);
-- "Followers of a channel, newest first" and "followers gained during a stream".
CREATE INDEX followers_by_channel_time ON followers (user_id, created_at DESC);

-- One sample per stream per 10 s, taken by the apiserver's sampler from Redis.
CREATE TABLE analytics_samples (
    stream_id          uuid NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    at                 timestamptz NOT NULL,
    concurrent_viewers int NOT NULL CHECK (concurrent_viewers >= 0),
    chat_messages      int NOT NULL DEFAULT 0 CHECK (chat_messages >= 0),
    PRIMARY KEY (stream_id, at)
);
