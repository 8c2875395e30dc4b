-- Chat moderation: per-channel settings, moderators, bans/timeouts, word filters, reports,
-- and the audit log of every moderation action. A channel is the streamer's user id, so bans
-- and rules carry over from one broadcast to the next.

CREATE TABLE chat_settings (
    channel_id      uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    slow_mode_secs  int NOT NULL DEFAULT 0 CHECK (slow_mode_secs BETWEEN 0 AND 86400),
    followers_only  boolean NOT NULL DEFAULT false,
    links_allowed   boolean NOT NULL DEFAULT true,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chat_moderators (
    channel_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_by    uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, user_id)
);

-- A ban has no end; a timeout ends at `until`.
CREATE TABLE chat_bans (
    channel_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    until       timestamptz,
    reason      text NOT NULL DEFAULT '',
    created_by  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, user_id)
);

-- Banned words and regular expressions; channel_id NULL is a global rule.
CREATE TABLE chat_filters (
    id          uuid PRIMARY KEY,
    channel_id  uuid REFERENCES users (id) ON DELETE CASCADE,
    pattern     text NOT NULL CHECK (char_length(pattern) BETWEEN 1 AND 200),
    is_regex    boolean NOT NULL DEFAULT false,
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_filters_channel ON chat_filters (channel_id);

CREATE TABLE chat_reports (
    id          uuid PRIMARY KEY,
    stream_id   uuid NOT NULL,
    message_id  uuid NOT NULL,
    reporter_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reason      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    UNIQUE (message_id, reporter_id)
);
CREATE INDEX chat_reports_open ON chat_reports (stream_id, created_at DESC) WHERE resolved_at IS NULL;

CREATE TABLE moderation_audit (
    id              uuid PRIMARY KEY,
    channel_id      uuid NOT NULL,
    stream_id       uuid,
    actor_id        uuid NOT NULL,
    action          text NOT NULL,
    target_user_id  uuid,
    target_message  uuid,
    reason          text NOT NULL DEFAULT '',
    details         jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX moderation_audit_channel ON moderation_audit (channel_id, created_at DESC);

-- History renders without a join into the user domain: the author's name and badges as they
-- were when the message was sent.
ALTER TABLE chat_messages
    ADD COLUMN user_name text NOT NULL DEFAULT '',
    ADD COLUMN badges text[] NOT NULL DEFAULT '{}';
