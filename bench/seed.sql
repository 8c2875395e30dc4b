-- Synthetic load for the apiserver benchmark: 5,000 users, 100,000 streams (5,000 live with
-- viewers, the rest ended), titles and tags drawn from a small vocabulary so searches match
-- realistic fractions of the table.
\set ON_ERROR_STOP on
BEGIN;
TRUNCATE users, streams, followers, analytics_samples, refresh_tokens, stream_keys CASCADE;

CREATE TEMP TABLE vocab(i int, w text);
INSERT INTO vocab SELECT row_number() OVER (), w FROM unnest(string_to_array(
  'speedrun retro chill music coding rust lofi beats painting cooking pasta chess ranked tournament '
  'minecraft building survival hardcore piano guitar jazz study science space rocket garden travel '
  'hiking fishing football highlights esports strategy puzzle horror indie review talk podcast news '
  'fitness yoga dance karaoke drawing anime modding linux kernel compilers databases streaming', ' ')) AS w;

INSERT INTO users (id, username, username_key, email, password_hash, display_name)
SELECT gen_random_uuid(), 'user' || g, 'user' || g, 'user' || g || '@bench.example',
       '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$0000000000000000000000000000000000000000000', 'User ' || g
FROM generate_series(1, 5000) g;

CREATE TEMP TABLE u AS SELECT row_number() OVER (ORDER BY username) AS n, id, username FROM users;
CREATE TEMP TABLE c AS SELECT row_number() OVER (ORDER BY slug) AS n, slug FROM categories;

INSERT INTO streams (id, user_id, title, category, tags, language, status, streamer_name, created_at, started_at, ended_at,
                     current_viewers, peak_viewers)
SELECT gen_random_uuid(), u.id,
       initcap(v1.w) || ' ' || v2.w || ' ' || v3.w || ' #' || g,
       c.slug,
       ARRAY[v2.w, v4.w],
       CASE WHEN g % 10 = 0 THEN 'de' ELSE 'en' END,
       CASE WHEN g <= 5000 THEN 'live' ELSE 'ended' END,
       u.username,
       now() - (g || ' minutes')::interval,
       now() - (g || ' minutes')::interval,
       CASE WHEN g <= 5000 THEN NULL ELSE now() - (g || ' minutes')::interval + interval '2 hours' END,
       CASE WHEN g <= 5000 THEN (100000 / g) ELSE 0 END,
       (100000 / g)
FROM generate_series(1, 100000) g
JOIN u ON u.n = 1 + (g - 1) % 5000
JOIN c ON c.n = 1 + (g * 7) % (SELECT count(*) FROM c)
JOIN vocab v1 ON v1.i = 1 + (g * 13) % 60
JOIN vocab v2 ON v2.i = 1 + (g * 17 + 3) % 60
JOIN vocab v3 ON v3.i = 1 + (g * 31 + 7) % 60
JOIN vocab v4 ON v4.i = 1 + (g * 37 + 11) % 60;

-- One account with a known password for the login benchmark is registered over the API.
COMMIT;
VACUUM (ANALYZE) streams;
VACUUM (ANALYZE) users;
SELECT status, count(*) FROM streams GROUP BY status;
