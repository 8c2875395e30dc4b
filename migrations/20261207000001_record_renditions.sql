-- A channel may record only the top and the lowest rendition of its ladder (issue 15): set on
-- the user, copied onto each recording when its broadcast starts, so a change applies from the
-- next broadcast and a publisher's reconnect keeps what its broadcast began with.
ALTER TABLE users ADD COLUMN record_renditions text NOT NULL DEFAULT 'all'
    CHECK (record_renditions IN ('all', 'top_and_lowest'));
ALTER TABLE recordings ADD COLUMN renditions text NOT NULL DEFAULT 'all'
    CHECK (renditions IN ('all', 'top_and_lowest'));
