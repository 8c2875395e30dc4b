//! The rewind window while live (issue 15, design §4.5): per stream and rendition, the recorded
//! segments of the last `window`, served as a live playlist of its own (`/hls/{id}/dvr/…`), so
//! viewers seek back up to the window while the live LL-HLS playlist stays small.
//!
//! Segments enter in the order the packager completed them, numbered then (the numbers never
//! change: players rely on them), and are listed once stored: the playlist ends at the newest
//! segment before which everything is in the store, which serves the bytes. An upload outage
//! holds the window's end back; the live playlist is untouched.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use onair_domain::StreamId;
use onair_recording::layout::{Rendition, SegmentName};
use onair_recording::playlist::{self, Entry};

#[derive(Debug, Clone)]
struct Slot {
    seq: u64,
    name: SegmentName,
    discontinuity: bool,
    stored: bool,
}

#[derive(Debug, Default)]
struct Track {
    slots: VecDeque<Slot>,
    next_seq: u64,
    /// Discontinuity tags no longer in the playlist (slid out, or now on its first segment).
    discontinuity_seq: u64,
    /// The longest segment it ever held, in whole seconds rounded up: the playlist's target
    /// duration, which must not change from one reload to the next.
    target: u64,
}

#[derive(Debug, Default)]
struct StreamWindow {
    tracks: BTreeMap<Rendition, Track>,
    ended: bool,
}

/// Every recorded stream's rewind window.
#[derive(Debug)]
pub struct Dvr {
    window: Duration,
    streams: HashMap<StreamId, StreamWindow>,
}

impl Dvr {
    /// Windows of `window` (zero: no rewind, nothing is kept).
    pub fn new(window: Duration) -> Self {
        Self { window, streams: HashMap::new() }
    }

    pub fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    /// A segment was queued for storing, in completion order.
    pub fn queued(&mut self, stream: StreamId, rendition: &Rendition, name: SegmentName) {
        if !self.enabled() {
            return;
        }
        let window_ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        let w = self.streams.entry(stream).or_default();
        w.ended = false;
        let track = w.tracks.entry(rendition.clone()).or_default();
        let discontinuity = track.slots.back().is_some_and(|prev| name.jumps_from(&prev.name));
        track.slots.push_back(Slot { seq: track.next_seq, name, discontinuity, stored: false });
        track.target = track.target.max(name.duration_us.div_ceil(1_000_000).max(1));
        track.next_seq += 1;
        // Slide: keep what started within the window of the newest segment's end.
        let end_ms = name.pdt_ms + name.duration_us / 1000;
        while track.slots.len() > 1 && track.slots[0].name.pdt_ms + window_ms < end_ms {
            track.slots.pop_front();
            // The new first segment's tag is no longer written.
            if track.slots.front().is_some_and(|s| s.discontinuity) {
                track.discontinuity_seq += 1;
            }
        }
    }

    /// A segment is in the store.
    pub fn stored(&mut self, stream: StreamId, rendition: &Rendition, name: &SegmentName) {
        let Some(track) = self.streams.get_mut(&stream).and_then(|w| w.tracks.get_mut(rendition)) else { return };
        // Stored nearly in order: look from the newest.
        if let Some(slot) = track.slots.iter_mut().rev().find(|s| s.name == *name) {
            slot.stored = true;
        }
    }

    /// No more segments come; the playlists end once all are stored.
    pub fn end(&mut self, stream: StreamId) {
        if let Some(w) = self.streams.get_mut(&stream) {
            w.ended = true;
        }
    }

    pub fn forget(&mut self, stream: StreamId) {
        self.streams.remove(&stream);
    }

    /// The renditions with a window.
    pub fn renditions(&self, stream: StreamId) -> Vec<Rendition> {
        self.streams.get(&stream).map(|w| w.tracks.keys().cloned().collect()).unwrap_or_default()
    }

    /// The window's playlist: its stored head. `None` when nothing is stored yet.
    pub fn playlist(&self, stream: StreamId, rendition: &Rendition) -> Option<String> {
        let w = self.streams.get(&stream)?;
        let track = w.tracks.get(rendition)?;
        let stored: Vec<&Slot> = track.slots.iter().take_while(|s| s.stored).collect();
        let first = stored.first()?;
        let entries: Vec<Entry> =
            stored.iter().map(|s| Entry { name: s.name, size: 0, discontinuity: s.discontinuity }).collect();
        let ended = w.ended && stored.len() == track.slots.len();
        Some(playlist::sliding(&entries, track.target, first.seq, track.discontinuity_seq, ended))
    }

    /// Whether `name` is in the window (a request outside it is refused).
    pub fn holds(&self, stream: StreamId, rendition: &Rendition, name: &SegmentName) -> bool {
        self.streams
            .get(&stream)
            .and_then(|w| w.tracks.get(rendition))
            .is_some_and(|t| t.slots.iter().any(|s| s.stored && s.name == *name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_recording::layout::Session;

    const T0: u64 = 1_764_000_000_000;

    fn seg(at_s: u64, session: u64, msn: u64) -> SegmentName {
        SegmentName {
            pdt_ms: T0 + at_s * 1000,
            session: Session(session),
            msn,
            duration_us: 1_000_000,
            init_version: 0,
            discontinuity: false,
        }
    }

    fn r() -> Rendition {
        Rendition::parse("360p").unwrap()
    }

    fn line<'a>(text: &'a str, tag: &str) -> &'a str {
        text.lines().find_map(|l| l.strip_prefix(tag)).unwrap_or_else(|| panic!("no {tag} in {text}"))
    }

    #[test]
    fn the_window_lists_the_stored_head_and_slides_with_stable_numbers() {
        let s = StreamId::new();
        let mut dvr = Dvr::new(Duration::from_secs(5));
        for i in 0..4 {
            dvr.queued(s, &r(), seg(i, 1, i));
        }
        assert_eq!(dvr.playlist(s, &r()), None, "nothing stored yet");
        // Stored out of order: listed only up to the first gap.
        dvr.stored(s, &r(), &seg(0, 1, 0));
        dvr.stored(s, &r(), &seg(2, 1, 2));
        let text = dvr.playlist(s, &r()).unwrap();
        assert_eq!(text.matches("#EXTINF").count(), 1, "{text}");
        dvr.stored(s, &r(), &seg(1, 1, 1));
        dvr.stored(s, &r(), &seg(3, 1, 3));
        assert_eq!(dvr.playlist(s, &r()).unwrap().matches("#EXTINF").count(), 4);
        assert!(!dvr.holds(s, &r(), &seg(9, 1, 9)));
        assert!(dvr.holds(s, &r(), &seg(3, 1, 3)));

        // Ten seconds in, a 5 s window: the head slid, its numbers kept.
        for i in 4..10 {
            dvr.queued(s, &r(), seg(i, 1, i));
            dvr.stored(s, &r(), &seg(i, 1, i));
        }
        let text = dvr.playlist(s, &r()).unwrap();
        assert_eq!(line(&text, "#EXT-X-MEDIA-SEQUENCE:"), "5");
        assert_eq!(text.matches("#EXTINF").count(), 5, "{text}");
        assert!(!dvr.holds(s, &r(), &seg(0, 1, 0)), "slid out");
        assert!(!text.contains("#EXT-X-ENDLIST"));
        dvr.end(s);
        assert!(dvr.playlist(s, &r()).unwrap().ends_with("#EXT-X-ENDLIST\n"));
        dvr.forget(s);
        assert_eq!(dvr.playlist(s, &r()), None);
    }

    #[test]
    fn a_new_session_is_a_discontinuity_counted_once_it_slides_out() {
        let s = StreamId::new();
        let mut dvr = Dvr::new(Duration::from_secs(3));
        let names = [seg(0, 1, 0), seg(1, 1, 1), seg(2, 2, 0), seg(3, 2, 1), seg(4, 2, 2), seg(5, 2, 3), seg(6, 2, 4)];
        for n in &names[..4] {
            dvr.queued(s, &r(), *n);
            dvr.stored(s, &r(), n);
        }
        let text = dvr.playlist(s, &r()).unwrap();
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
        assert_eq!(line(&text, "#EXT-X-DISCONTINUITY-SEQUENCE:"), "0");
        // The 5th segment slides the old session's second out: the new session's first heads the
        // window, its tag is no longer written, and is counted.
        dvr.queued(s, &r(), names[4]);
        dvr.stored(s, &r(), &names[4]);
        let text = dvr.playlist(s, &r()).unwrap();
        assert_eq!(line(&text, "#EXT-X-MEDIA-SEQUENCE:"), "2", "{text}");
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 0, "{text}");
        assert_eq!(line(&text, "#EXT-X-DISCONTINUITY-SEQUENCE:"), "1");
        // And stays counted once it slid out too.
        for n in &names[5..] {
            dvr.queued(s, &r(), *n);
            dvr.stored(s, &r(), n);
        }
        let text = dvr.playlist(s, &r()).unwrap();
        assert_eq!(line(&text, "#EXT-X-DISCONTINUITY-SEQUENCE:"), "1", "{text}");
    }

    #[test]
    fn a_zero_window_keeps_nothing() {
        let s = StreamId::new();
        let mut dvr = Dvr::new(Duration::ZERO);
        dvr.queued(s, &r(), seg(0, 1, 0));
        dvr.stored(s, &r(), &seg(0, 1, 0));
        assert_eq!(dvr.playlist(s, &r()), None);
        assert!(dvr.renditions(s).is_empty());
    }
}
