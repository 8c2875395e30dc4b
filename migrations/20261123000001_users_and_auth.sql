-- Users, their login sessions (refresh-token families) and stream keys.

-- Fuzzy matching for discovery (trigram similarity on titles and names).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    -- As typed at registration (NFKC).
    username      text NOT NULL CHECK (char_length(username) BETWEEN 3 AND 25),
    -- NFKC + Unicode lower case, computed by the service (not by the database's locale, which
    -- may be C): what uniqueness and login compare.
    username_key  text NOT NULL,
    email         text NOT NULL CHECK (email = lower(email)),
    password_hash text NOT NULL,
    display_name  text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 40),
    bio           text NOT NULL DEFAULT '' CHECK (char_length(bio) <= 500),
    avatar_url    text,
    role          text NOT NULL DEFAULT 'viewer' CHECK (role IN ('viewer', 'streamer', 'admin')),
    tier          text NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'partner')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_username_key ON users (username_key);
CREATE UNIQUE INDEX users_email_key ON users (email);
-- Discovery matches streamer names fuzzily.
CREATE INDEX users_username_trgm ON users USING gin (username_key gin_trgm_ops);

-- One row per refresh token ever issued. Tokens rotate on every use: the used row is marked,
-- a new row joins the same family. Presenting a used token again means it leaked, and the
-- whole family (the login session) is revoked.
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    -- SHA-256 of the token; the token itself is never stored.
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id) WHERE revoked_at IS NULL;

-- One stream key per user, shown once when made or rotated. Keys are 256-bit random, so a
-- plain SHA-256 is enough to make the stored value useless to a thief and still indexable.
CREATE TABLE stream_keys (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    key_hash   bytea NOT NULL UNIQUE,
    -- The first characters, so a streamer can tell which key they have pasted into OBS.
    key_prefix text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
