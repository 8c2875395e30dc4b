-- Who may play a channel's broadcasts (issue 17): set on the user, copied onto each stream when
-- it starts, so a change applies from the next broadcast and never stops viewers mid-stream.
-- `public` plays from plain URLs; `signed` and `followers` only from signed, expiring ones.
ALTER TABLE users ADD COLUMN playback_access text NOT NULL DEFAULT 'public'
    CHECK (playback_access IN ('public', 'signed', 'followers'));
ALTER TABLE streams ADD COLUMN playback_access text NOT NULL DEFAULT 'public'
    CHECK (playback_access IN ('public', 'signed', 'followers'));
