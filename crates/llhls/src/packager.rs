//! One rendition's parts and segments: every fMP4 fragment is one part; a segment starts at a
//! keyframe fragment once the open one reached the segment target; a window of complete segments
//! is kept and older ones dropped.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};

use crate::blocking::Position;
use crate::fmp4::{Event, Track, TrackKind};

#[derive(Debug, Clone)]
pub struct Config {
    /// Declared `PART-TARGET`; every part must be at most this long. ffmpeg's
    /// `-frag_duration 200000` at 30 fps gives fragments of exactly 6 frames = 0.2 s.
    pub part_target: Duration,
    /// A segment is closed at the first keyframe fragment once it is at least this long.
    pub segment_target: Duration,
    /// Complete segments kept (and listed) besides the open one.
    pub window: usize,
    /// Media sequence number of the first segment.
    pub first_msn: u64,
    /// A segment with no keyframe is cut anyway at this length (bounds memory and latency).
    pub max_segment: Duration,
    /// Largest top-level fMP4 box accepted.
    pub max_box: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            part_target: Duration::from_millis(200),
            segment_target: Duration::from_secs(1),
            window: 6,
            first_msn: 0,
            max_segment: Duration::from_secs(10),
            max_box: crate::fmp4::DEFAULT_MAX_BOX,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub bytes: Bytes,
    pub duration: Duration,
    /// Starts with a video keyframe (`INDEPENDENT=YES`).
    pub independent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub msn: u64,
    pub parts: Vec<Part>,
    pub duration: Duration,
    /// Wall clock when the segment's first part arrived (kept continuous with the previous
    /// segment's date and duration while they agree within a segment target).
    pub program_date_time: DateTime<Utc>,
    pub complete: bool,
    /// The encoder restarted before it (`#EXT-X-DISCONTINUITY`): timestamps and perhaps the
    /// codec parameters start over.
    pub discontinuity: bool,
    /// Which init segment it needs (`#EXT-X-MAP`): 0 is `init.mp4`, later ones `init-{n}.mp4`.
    pub init: u32,
}

impl Segment {
    /// The whole segment: its parts concatenated (moof+mdat pairs make a valid fMP4 segment).
    pub fn bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.parts.iter().map(|p| p.bytes.len()).sum());
        for p in &self.parts {
            out.extend_from_slice(&p.bytes);
        }
        out.freeze()
    }
}

/// Counters for the operator (and the tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub parts: u64,
    pub segments: u64,
    /// Parts longer than the declared `PART-TARGET` (a player may refuse the playlist).
    pub parts_over_target: u64,
    /// Fragments dropped before the first keyframe.
    pub dropped_before_keyframe: u64,
    /// Segments cut at `max_segment` without a keyframe.
    pub forced_cuts: u64,
    pub longest_part: Duration,
}

#[derive(Debug)]
pub struct Packager {
    config: Config,
    /// Init segments by version, kept while a kept segment needs them; the last is current.
    inits: VecDeque<(u32, Bytes)>,
    tracks: Vec<Track>,
    segments: VecDeque<Segment>,
    ended: bool,
    max_segment_seen: Duration,
    stats: Stats,
    /// The next segment starts after an encoder restart.
    discontinuity_pending: bool,
    /// Discontinuities that left the window (`#EXT-X-DISCONTINUITY-SEQUENCE`).
    discontinuity_sequence: u64,
    /// Segments completed since the last [`Packager::take_completed`], when someone collects
    /// them (a recorder); `None` keeps nothing.
    completed: Option<Vec<(Segment, Bytes)>>,
}

impl Packager {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            inits: VecDeque::new(),
            tracks: Vec::new(),
            segments: VecDeque::new(),
            ended: false,
            max_segment_seen: Duration::ZERO,
            stats: Stats::default(),
            discontinuity_pending: false,
            discontinuity_sequence: 0,
            completed: None,
        }
    }

    /// From now on keep each segment as it completes, for [`Packager::take_completed`].
    pub fn collect_completed(&mut self) {
        self.completed.get_or_insert_with(Vec::new);
    }

    /// The segments completed since the last call, oldest first, each with the init segment it
    /// needs. Empty unless [`Packager::collect_completed`] was called.
    pub fn take_completed(&mut self) -> Vec<(Segment, Bytes)> {
        self.completed.as_mut().map(std::mem::take).unwrap_or_default()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The current `ftyp`+`moov`.
    pub fn init(&self) -> Option<&Bytes> {
        self.inits.back().map(|(_, b)| b)
    }

    /// The init segment of `version`, while a kept segment needs it.
    pub fn init_version(&self, version: u32) -> Option<&Bytes> {
        self.inits.iter().find(|(v, _)| *v == version).map(|(_, b)| b)
    }

    fn current_init(&self) -> u32 {
        self.inits.back().map_or(0, |(v, _)| *v)
    }

    /// `#EXT-X-DISCONTINUITY-SEQUENCE`: discontinuities before the first kept segment.
    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// The encoder restarted (a crash, a ladder change, a publisher reconnecting): what it wrote
    /// so far is complete, and what comes next continues the playlist after a discontinuity
    /// (same media sequence, new timestamps, perhaps a new init segment).
    pub fn restart(&mut self) {
        self.complete_open();
        self.ended = false;
        if !self.segments.is_empty() {
            self.discontinuity_pending = true;
        }
    }

    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Takes one reader event; `now` becomes the program date time of a segment it starts.
    pub fn push_event(&mut self, event: Event, now: DateTime<Utc>) {
        match event {
            Event::Init { bytes, tracks } => {
                // A second init without a restart is one all the same: the encoder started over.
                if self.init().is_some() && !self.discontinuity_pending {
                    self.restart();
                }
                if self.init() != Some(&bytes) {
                    let version = self.inits.back().map_or(0, |(v, _)| v + 1);
                    self.inits.push_back((version, bytes));
                }
                self.tracks = tracks;
            }
            Event::Fragment { bytes, tracks, keyframe } => {
                let primary = self.tracks.iter().find(|t| t.kind == TrackKind::Video).or_else(|| self.tracks.first());
                let seconds = |id: u32, ticks: u64| {
                    let scale = self.tracks.iter().find(|t| t.id == id).map_or(1, |t| t.timescale);
                    ticks_to_duration(ticks, scale)
                };
                // The primary (video) track's duration; a fragment without it (audio left over at
                // the end) takes its longest track.
                let duration = primary
                    .and_then(|p| tracks.iter().find(|f| f.track_id == p.id && f.samples > 0))
                    .map(|f| seconds(f.track_id, f.duration))
                    .unwrap_or_else(|| {
                        tracks.iter().map(|f| seconds(f.track_id, f.duration)).max().unwrap_or_default()
                    });
                self.push_part(bytes, duration, keyframe, now);
            }
        }
    }

    /// Adds one part (one fMP4 fragment) of `duration`, starting with a keyframe or not.
    pub fn push_part(&mut self, bytes: Bytes, duration: Duration, keyframe: bool, now: DateTime<Utc>) {
        if self.ended {
            tracing::warn!("part after the end of the stream ignored");
            return;
        }
        if duration > self.config.part_target {
            self.stats.parts_over_target += 1;
            tracing::warn!(?duration, part_target = ?self.config.part_target, "part longer than PART-TARGET");
        }
        self.stats.longest_part = self.stats.longest_part.max(duration);
        let open = self.segments.back().filter(|s| !s.complete);
        let start_new = match open {
            None => {
                if !keyframe {
                    self.stats.dropped_before_keyframe += 1;
                    return;
                }
                true
            }
            Some(s) if keyframe && s.duration >= self.config.segment_target => true,
            Some(s) if s.duration >= self.config.max_segment => {
                self.stats.forced_cuts += 1;
                tracing::warn!(msn = s.msn, "no keyframe within max_segment: segment cut anyway");
                true
            }
            Some(_) => false,
        };
        if start_new {
            let msn = self.segments.back().map_or(self.config.first_msn, |s| s.msn + 1);
            let discontinuity = std::mem::take(&mut self.discontinuity_pending);
            // After a restart the wall clock, not the previous segment's end: there is a gap.
            let program_date_time = if discontinuity { now } else { self.program_date_time(now) };
            self.complete_open();
            self.segments.push_back(Segment {
                msn,
                parts: Vec::new(),
                duration: Duration::ZERO,
                program_date_time,
                complete: false,
                discontinuity,
                init: self.current_init(),
            });
            self.stats.segments += 1;
        }
        if let Some(seg) = self.segments.back_mut() {
            seg.duration += duration;
            seg.parts.push(Part { bytes, duration, independent: keyframe });
            self.stats.parts += 1;
        }
    }

    /// The wall clock at a new segment's first part, unless the previous segment's date plus its
    /// duration is within a segment target of it: then that, so dates and durations agree
    /// (arrival jitter would otherwise make them disagree by a few milliseconds per segment).
    fn program_date_time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let Some(prev) = self.segments.back() else { return now };
        let Ok(duration) = chrono::Duration::from_std(prev.duration) else { return now };
        let continued = prev.program_date_time + duration;
        let drift = (now - continued).abs().to_std().unwrap_or(Duration::MAX);
        if drift <= self.config.segment_target { continued } else { now }
    }

    fn complete_open(&mut self) {
        if let Some(seg) = self.segments.back_mut().filter(|s| !s.complete) {
            seg.complete = true;
            self.max_segment_seen = self.max_segment_seen.max(seg.duration);
            if let Some(done) = self.completed.as_mut() {
                // Cheap: parts and inits are `Bytes`, shared with the window. The init is taken
                // now: it may leave before the collector comes.
                let init = self.inits.iter().find(|(v, _)| *v == seg.init).map(|(_, b)| b.clone());
                if let Some(init) = init {
                    done.push((seg.clone(), init));
                }
            }
        }
        let complete = self.segments.iter().filter(|s| s.complete).count();
        for _ in self.config.window..complete {
            if self.segments.pop_front().is_some_and(|s| s.discontinuity) {
                self.discontinuity_sequence += 1;
            }
        }
        // Init segments no kept segment needs go (the current one always stays).
        let oldest = self.segments.front().map_or(self.current_init(), |s| s.init);
        while self.inits.len() > 1 && self.inits.front().is_some_and(|(v, _)| *v < oldest) {
            self.inits.pop_front();
        }
    }

    /// Ends the stream: the open segment is complete and the playlist gets `#EXT-X-ENDLIST`.
    pub fn end(&mut self) {
        self.complete_open();
        self.ended = true;
    }

    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The kept segments, oldest first; the last one may be open.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = &Segment> + DoubleEndedIterator {
        self.segments.iter()
    }

    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        self.segments.get(usize::try_from(msn.checked_sub(first)?).ok()?)
    }

    pub fn part(&self, msn: u64, index: u64) -> Option<&Part> {
        self.segment(msn)?.parts.get(usize::try_from(index).ok()?)
    }

    /// The newest part, for blocking requests and rendition reports.
    pub fn position(&self) -> Option<Position> {
        let last = self.segments.back()?;
        Some(Position {
            msn: last.msn,
            part: (last.parts.len() as u64).saturating_sub(1),
            ended: self.ended,
            complete: last.complete,
        })
    }

    /// The part most likely to come next (`EXT-X-PRELOAD-HINT`): the first of a new segment when
    /// the open one is long enough to be cut at the next keyframe.
    pub fn next_part(&self) -> Option<(u64, u64)> {
        if self.ended {
            return None;
        }
        match self.segments.back() {
            None => Some((self.config.first_msn, 0)),
            Some(s) if s.complete || s.duration >= self.config.segment_target => Some((s.msn + 1, 0)),
            Some(s) => Some((s.msn, s.parts.len() as u64)),
        }
    }

    /// `EXT-X-TARGETDURATION`: whole seconds, never decreasing: the segment target rounded up,
    /// or the longest complete segment seen rounded to the nearest second if that is more (the
    /// spec's rule, so the short audio-only fragment ffmpeg writes after the last video frame
    /// does not raise the target of a stream of 1 s segments to 2 s at its end).
    pub fn target_duration(&self) -> u64 {
        let target = self.config.segment_target;
        let ceil = target.as_secs() + u64::from(target.subsec_nanos() > 0);
        let longest = self.max_segment_seen;
        let nearest = longest.as_secs() + u64::from(longest.subsec_nanos() >= 500_000_000);
        ceil.max(nearest).max(1)
    }
}

/// Exact to the nanosecond (rounded down).
pub(crate) fn ticks_to_duration(ticks: u64, timescale: u32) -> Duration {
    let scale = u128::from(timescale.max(1));
    let nanos = u128::from(ticks) * 1_000_000_000 / scale;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    pub(crate) fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// 30 fragments of 200 ms with a keyframe every 5th (a 1 s GOP).
    fn filled(config: Config, fragments: u64) -> Packager {
        let mut p = Packager::new(config);
        for i in 0..fragments {
            let now = t0() + chrono::Duration::milliseconds(200 * i as i64);
            p.push_part(Bytes::from(vec![i as u8; 4]), ms(200), i % 5 == 0, now);
        }
        p
    }

    #[test]
    fn keyframe_aligned_segments_in_a_window() {
        let p = filled(Config::default(), 43);
        let segs: Vec<_> = p.segments().collect();
        assert_eq!(segs.len(), 7, "6 complete + the open one");
        assert_eq!(segs[0].msn, 2);
        for s in &segs[..6] {
            assert!(s.complete);
            assert_eq!((s.parts.len(), s.duration), (5, ms(1000)));
            assert!(s.parts[0].independent && s.parts[1..].iter().all(|p| !p.independent));
            assert_eq!(s.program_date_time, t0() + chrono::Duration::seconds(s.msn as i64));
        }
        assert_eq!(segs[6].bytes().len(), 3 * 4);
        assert_eq!(p.position(), Some(Position { msn: 8, part: 2, ended: false, complete: false }));
        assert_eq!(p.next_part(), Some((8, 3)));
        assert_eq!(p.part(8, 1).map(|p| p.bytes[0]), Some(41));
        assert_eq!((p.part(8, 3), p.segment(1)), (None, None));
        assert_eq!(p.target_duration(), 1);
        assert_eq!(p.stats().parts_over_target, 0);
    }

    #[test]
    fn hint_points_at_the_next_segment_when_one_is_due() {
        let mut p = filled(Config::default(), 10);
        assert_eq!(p.next_part(), Some((2, 0)));
        p.end();
        assert_eq!(p.next_part(), None);
        assert_eq!(p.position(), Some(Position { msn: 1, part: 4, ended: true, complete: true }));
        p.push_part(Bytes::new(), ms(200), true, t0());
        assert_eq!(p.stats().parts, 10);
    }

    #[test]
    fn leading_non_keyframes_dropped_long_parts_counted_no_keyframe_forces_a_cut() {
        let mut p = Packager::new(Config { max_segment: ms(2000), ..Config::default() });
        p.push_part(Bytes::new(), ms(200), false, t0());
        assert_eq!(p.position(), None);
        p.push_part(Bytes::new(), ms(250), true, t0());
        for _ in 0..12 {
            p.push_part(Bytes::new(), ms(200), false, t0());
        }
        let s = p.stats();
        assert_eq!((s.dropped_before_keyframe, s.parts_over_target, s.forced_cuts), (1, 1, 1));
        assert_eq!(s.longest_part, ms(250));
        assert_eq!(p.segments().next().map(|s| s.duration), Some(ms(2050)));
        assert_eq!(p.target_duration(), 2, "2.05 s rounds to 2");
        let mut p = Packager::new(Config { segment_target: ms(1500), ..Config::default() });
        assert_eq!(p.target_duration(), 2);
        p.push_part(Bytes::new(), ms(2500), true, t0());
        p.push_part(Bytes::new(), ms(200), true, t0());
        assert_eq!(p.target_duration(), 3);
    }

    #[test]
    fn program_date_time_follows_durations_and_resyncs_after_a_gap() {
        let mut p = Packager::new(Config::default());
        let at = |ms: i64| t0() + chrono::Duration::milliseconds(ms);
        // Arrivals jitter by tens of milliseconds: dates follow the media durations.
        for (i, arrival) in [0, 230, 390, 610, 820, 1040, 1190, 1400, 1630, 1800, 2050].into_iter().enumerate() {
            p.push_part(Bytes::new(), ms(200), i % 5 == 0, at(arrival));
        }
        let dates: Vec<_> = p.segments().map(|s| s.program_date_time).collect();
        assert_eq!(dates, vec![at(0), at(1000), at(2000)]);
        for i in 0..4 {
            p.push_part(Bytes::new(), ms(200), false, at(2250 + 200 * i));
        }
        // After a 5 s stall the wall clock wins.
        for i in 0..5 {
            p.push_part(Bytes::new(), ms(200), i == 0, at(8000 + 200 * i));
        }
        p.push_part(Bytes::new(), ms(200), true, at(9000));
        let dates: Vec<_> = p.segments().map(|s| s.program_date_time).skip(3).collect();
        assert_eq!(dates, vec![at(8000), at(9000)]);
    }

    #[test]
    fn ticks_convert_exactly() {
        assert_eq!(ticks_to_duration(3072, 15360), ms(200));
        assert_eq!(ticks_to_duration(9216, 44100), Duration::from_nanos(208_979_591));
    }

    #[test]
    fn a_restart_continues_the_playlist_after_a_discontinuity_with_its_init() {
        let mut p = Packager::new(Config { window: 3, ..Config::default() });
        let init = |b: &'static [u8]| Event::Init { bytes: Bytes::from_static(b), tracks: Vec::new() };
        p.push_event(init(b"init-a"), t0());
        for i in 0..7u64 {
            p.push_part(Bytes::from(vec![i as u8]), ms(200), i % 5 == 0, t0());
        }
        // The encoder dies mid-segment: what it wrote is complete, numbering goes on.
        p.restart();
        assert!(p.segment(1).is_some_and(|s| s.complete && s.parts.len() == 2));
        p.push_event(init(b"init-a"), t0());
        let later = t0() + chrono::Duration::seconds(30);
        p.push_part(Bytes::from_static(b"k"), ms(200), true, later);
        let s2 = p.segment(2).unwrap();
        assert!(s2.discontinuity && s2.init == 0, "same codec parameters: same init");
        assert_eq!(s2.program_date_time, later, "the wall clock after a gap");

        // A restart with other parameters (a new init) without restart(): still a discontinuity.
        p.push_event(init(b"init-b"), t0());
        p.push_part(Bytes::from_static(b"k"), ms(200), true, t0());
        let s3 = p.segment(3).unwrap();
        assert!(s3.discontinuity && s3.init == 1);
        assert_eq!(p.init_version(0).map(|b| &b[..]), Some(&b"init-a"[..]));
        assert_eq!(p.init().map(|b| &b[..]), Some(&b"init-b"[..]));

        // The window moves past both: the sequence counts them, the old init goes.
        for i in 0..40u64 {
            p.push_part(Bytes::from_static(b"x"), ms(200), i % 5 == 0, t0());
        }
        assert_eq!(p.discontinuity_sequence(), 2);
        assert!(p.segments().all(|s| !s.discontinuity && s.init == 1));
        assert_eq!(p.init_version(0), None);

        // Ended, then a publisher comes back: the playlist goes on.
        p.end();
        p.restart();
        assert!(!p.ended());
    }
}
