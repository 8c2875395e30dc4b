-- Who may play a clip (issue 17): its broadcast's `playback_access` when it was cut, kept on the
-- clip because a clip outlives its broadcast's row. A VOD reads its broadcast's.
ALTER TABLE clips ADD COLUMN playback_access text NOT NULL DEFAULT 'public'
    CHECK (playback_access IN ('public', 'signed', 'followers'));
UPDATE clips c SET playback_access = s.playback_access FROM streams s WHERE s.id = c.stream_id;
