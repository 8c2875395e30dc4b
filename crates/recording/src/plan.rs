//! What a finished recording becomes (design §4.4): from the listing of `rec/{stream_id}/`, the
//! renditions kept, each one's segments in playback order with its discontinuities, and the
//! figures the `vods` row and the master playlist need. Pure: the caller lists and writes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::layout::{Rel, Rendition, SegmentName};
use crate::playlist::{Entry, VodVariant};

/// A rendition is kept when it covers at least this share of the longest one (percent): one
/// shed mid-broadcast would otherwise end the VOD early for whoever picks it.
pub const MIN_COVERAGE_PERCENT: u128 = 95;

/// One object of a listing: its key relative to the recording's root and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
}

/// A rendition as the VOD will list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionPlan {
    pub rendition: Rendition,
    pub entries: Vec<Entry>,
    pub duration: Duration,
    pub bytes: u64,
    /// `#EXT-X-DISCONTINUITY` tags in its playlist.
    pub discontinuities: u32,
    /// Peak segment bit rate, bits per second.
    pub peak_bandwidth: u64,
    pub average_bandwidth: u64,
}

impl RenditionPlan {
    /// Its master playlist line; codecs and resolution come from the init segment, read by the caller.
    pub fn variant(&self, codecs: Option<String>, resolution: Option<(u32, u32)>) -> VodVariant {
        VodVariant {
            rendition: self.rendition.clone(),
            bandwidth: self.peak_bandwidth,
            average_bandwidth: self.average_bandwidth,
            codecs,
            resolution,
        }
    }
}

/// The VOD to write. No renditions means nothing was recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VodPlan {
    /// Highest peak bandwidth first, as the master lists them.
    pub renditions: Vec<RenditionPlan>,
    /// Renditions below [`MIN_COVERAGE_PERCENT`]: their prefixes are to be deleted.
    pub excluded: Vec<Rendition>,
    /// The longest kept rendition's duration: the VOD's.
    pub duration: Duration,
    /// That rendition's discontinuities (`vods.discontinuities`).
    pub discontinuities: u32,
    /// Bytes of the kept renditions' segments.
    pub bytes: u64,
    /// The earliest kept segment's `PROGRAM-DATE-TIME` (`vods.recorded_at`), Unix ms.
    pub recorded_at_ms: Option<u64>,
    /// Keys that are not recording objects at all (logged, never deleted by the plan).
    pub unknown: Vec<String>,
}

/// Plans the VOD from a listing of the recording's objects (relative keys, any order).
pub fn vod(objects: &[Object]) -> VodPlan {
    let mut unknown = Vec::new();
    let mut by_rendition: BTreeMap<Rendition, Vec<(SegmentName, u64)>> = BTreeMap::new();
    for object in objects {
        match Rel::parse(&object.key) {
            Ok(Rel::Segment(rendition, name)) => by_rendition.entry(rendition).or_default().push((name, object.size)),
            Ok(_) => {}
            Err(_) => unknown.push(object.key.clone()),
        }
    }
    let all: Vec<RenditionPlan> = by_rendition.into_iter().map(|(r, segments)| rendition(r, segments)).collect();

    let anchor = all.iter().map(|r| r.duration).max().unwrap_or_default();
    let (mut kept, shed): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|r| r.duration.as_micros() * 100 >= anchor.as_micros() * MIN_COVERAGE_PERCENT);
    kept.sort_by(|a, b| b.peak_bandwidth.cmp(&a.peak_bandwidth).then_with(|| a.rendition.cmp(&b.rendition)));

    // The anchor is the longest kept rendition; on a tie the first in master order.
    let longest = kept.iter().reduce(|best, r| if r.duration > best.duration { r } else { best });
    VodPlan {
        duration: longest.map(|r| r.duration).unwrap_or_default(),
        discontinuities: longest.map(|r| r.discontinuities).unwrap_or_default(),
        bytes: kept.iter().map(|r| r.bytes).sum(),
        recorded_at_ms: kept.iter().filter_map(|r| r.entries.first()).map(|e| e.name.pdt_ms).min(),
        excluded: shed.into_iter().map(|r| r.rendition).collect(),
        renditions: kept,
        unknown,
    }
}

/// Which part of a recording a clip takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipWindow {
    /// The last `n` seconds recorded (a clip of a live stream).
    Last(Duration),
    /// `len` from `start` into the recording (a clip of a VOD).
    Range { start: Duration, len: Duration },
}

/// A clip to cut: each rendition's segments, whole (no re-encoding: the start snaps down and the
/// end up to segment boundaries), aligned across renditions by wall-clock time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipPlan {
    /// In master order, as the source plan lists them.
    pub renditions: Vec<RenditionPlan>,
    /// Where the clip starts in the recording (the first segment's start).
    pub offset: Duration,
    /// The anchor rendition's clipped duration: the clip's.
    pub duration: Duration,
    pub bytes: u64,
}

/// Plans a clip of `source` (a recording's [`VodPlan`], complete or, for a live stream, so far).
/// `None` when the window holds no segment (a range past the end, nothing recorded yet).
pub fn clip(source: &VodPlan, window: ClipWindow) -> Option<ClipPlan> {
    // The anchor: the longest rendition (the VOD's duration and offsets are its).
    let anchor = source.renditions.iter().reduce(|best, r| if r.duration > best.duration { r } else { best })?;
    let starts: Vec<u64> = anchor
        .entries
        .iter()
        .scan(0u64, |at, e| {
            let start = *at;
            *at += e.name.duration_us;
            Some(start)
        })
        .collect();
    let (first, last) = match window {
        ClipWindow::Last(len) => {
            let last = anchor.entries.len().checked_sub(1)?;
            let mut first = last;
            let mut covered = anchor.entries[last].name.duration_us;
            while first > 0 && u128::from(covered) < len.as_micros() {
                first -= 1;
                covered += anchor.entries[first].name.duration_us;
            }
            (first, last)
        }
        ClipWindow::Range { start, len } => {
            let (start_us, end_us) = (start.as_micros(), (start + len).as_micros());
            let ends = |i: usize| u128::from(starts[i] + anchor.entries[i].name.duration_us);
            let first = (0..anchor.entries.len()).find(|&i| ends(i) > start_us)?;
            let last = (first..anchor.entries.len()).take_while(|&i| u128::from(starts[i]) < end_us).last()?;
            (first, last)
        }
    };
    // The wall-clock span the anchor's chosen segments cover; other renditions take what overlaps it.
    let from_ms = anchor.entries[first].name.pdt_ms;
    let to = &anchor.entries[last].name;
    let to_ms = to.pdt_ms + to.duration_us.div_ceil(1000);
    let renditions: Vec<RenditionPlan> = source
        .renditions
        .iter()
        .map(|r| {
            let picked: Vec<(SegmentName, u64)> = r
                .entries
                .iter()
                .filter(|e| e.name.pdt_ms + e.name.duration_us / 1000 > from_ms && e.name.pdt_ms < to_ms)
                .map(|e| (e.name, e.size))
                .collect();
            rendition(r.rendition.clone(), picked)
        })
        .collect();
    let duration_us: u64 = anchor.entries[first..=last].iter().map(|e| e.name.duration_us).sum();
    // As for the VOD: a rendition shed (or not yet added) for part of the clip would end it early.
    let renditions: Vec<RenditionPlan> = renditions
        .into_iter()
        .filter(|r| r.duration.as_micros() * 100 >= u128::from(duration_us) * MIN_COVERAGE_PERCENT)
        .collect();
    Some(ClipPlan {
        bytes: renditions.iter().map(|r| r.bytes).sum(),
        renditions,
        offset: Duration::from_micros(starts[first]),
        duration: Duration::from_micros(duration_us),
    })
}

/// One rendition's segments in playback order, with a discontinuity wherever playback jumps.
fn rendition(rendition: Rendition, mut segments: Vec<(SegmentName, u64)>) -> RenditionPlan {
    // Name order is key order is playback order (layout: `pdt_ms` leads, zero-padded).
    segments.sort();
    let mut entries: Vec<Entry> = Vec::with_capacity(segments.len());
    for (name, size) in segments {
        let discontinuity = entries.last().is_some_and(|prev| name.jumps_from(&prev.name));
        entries.push(Entry { name, size, discontinuity });
    }
    let duration_us: u64 = entries.iter().map(|e| e.name.duration_us).sum();
    let bytes: u64 = entries.iter().map(|e| e.size).sum();
    RenditionPlan {
        rendition,
        discontinuities: u32::try_from(entries.iter().filter(|e| e.discontinuity).count()).unwrap_or(u32::MAX),
        peak_bandwidth: entries.iter().map(|e| bits_per_second(e.size, e.name.duration_us)).max().unwrap_or(0),
        average_bandwidth: bits_per_second(bytes, duration_us),
        duration: Duration::from_micros(duration_us),
        bytes,
        entries,
    }
}

/// `bytes × 8 / duration`, rounded up so a variant never claims less than it needs.
fn bits_per_second(bytes: u64, duration_us: u64) -> u64 {
    if duration_us == 0 {
        return 0;
    }
    let bps = (u128::from(bytes) * 8 * 1_000_000).div_ceil(u128::from(duration_us));
    u64::try_from(bps).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Session;

    const T0: u64 = 1_764_000_000_000;

    /// A segment name: PDT offset from `T0` and duration in ms.
    fn name(at_ms: u64, session: u64, msn: u64, dur_ms: u64, v: u32, d: bool) -> SegmentName {
        SegmentName {
            pdt_ms: T0 + at_ms,
            session: Session(session),
            msn,
            duration_us: dur_ms * 1000,
            init_version: v,
            discontinuity: d,
        }
    }

    /// A segment object of rendition `r`.
    fn seg(r: &str, name: SegmentName, size: u64) -> Object {
        Object { key: format!("{r}/seg/{name}"), size }
    }

    /// `n` one-second segments of `r` from `from_s`, msns from `msn`, 125 000 bytes (1 Mbit/s).
    fn run(r: &str, session: u64, from_s: u64, msn: u64, n: u64) -> Vec<Object> {
        (0..n).map(|i| seg(r, name((from_s + i) * 1000, session, msn + i, 1000, 0, false), 125_000)).collect()
    }

    fn flags(p: &RenditionPlan) -> Vec<bool> {
        p.entries.iter().map(|e| e.discontinuity).collect()
    }

    fn names(p: &VodPlan) -> Vec<&str> {
        p.renditions.iter().map(|r| r.rendition.as_str()).collect()
    }

    /// A source of two renditions, 10 one-second segments each; 240p starts half a second
    /// later (its own keyframes), as a transcoder's rendition does.
    fn two_renditions() -> VodPlan {
        let mut objects = run("360p", 1, 0, 0, 10);
        objects.extend((0..10).map(|i| seg("240p", name(i * 1000 + 500, 1, i, 1000, 0, false), 60_000)));
        vod(&objects)
    }

    fn msns(p: &RenditionPlan) -> Vec<u64> {
        p.entries.iter().map(|e| e.name.msn).collect()
    }

    #[test]
    fn a_clip_of_a_range_snaps_out_to_whole_segments_in_every_rendition() {
        let source = two_renditions();
        let c = clip(&source, ClipWindow::Range { start: Duration::from_millis(2_500), len: Duration::from_secs(3) })
            .unwrap();
        // 2.5 s..5.5 s of the anchor: its segments 2..=5, so 2 s..6 s.
        assert_eq!((c.offset, c.duration), (Duration::from_secs(2), Duration::from_secs(4)));
        assert_eq!(c.renditions.iter().map(|r| r.rendition.as_str()).collect::<Vec<_>>(), ["360p", "240p"]);
        assert_eq!(msns(&c.renditions[0]), [2, 3, 4, 5]);
        // 240p's segments overlapping 2 s..6 s of wall clock: 1.5-2.5 through 5.5-6.5.
        assert_eq!(msns(&c.renditions[1]), [1, 2, 3, 4, 5]);
        assert_eq!(c.bytes, 4 * 125_000 + 5 * 60_000);
        assert!(c.renditions.iter().all(|r| r.discontinuities == 0));
    }

    #[test]
    fn a_clip_of_the_last_seconds_ends_at_the_newest_segment() {
        let c = clip(&two_renditions(), ClipWindow::Last(Duration::from_millis(2_500))).unwrap();
        assert_eq!(msns(&c.renditions[0]), [7, 8, 9]);
        assert_eq!((c.offset, c.duration), (Duration::from_secs(7), Duration::from_secs(3)));
        // Longer than what was recorded: all of it.
        let all = clip(&two_renditions(), ClipWindow::Last(Duration::from_secs(60))).unwrap();
        assert_eq!((all.offset, all.duration), (Duration::ZERO, Duration::from_secs(10)));
    }

    #[test]
    fn a_rendition_shed_before_the_clip_is_left_out_of_it() {
        // 720p was shed 2 s before the end: 38 of 40 seconds, enough for the VOD to keep it.
        let mut objects = run("360p", 1, 0, 0, 40);
        objects.extend(run("720p", 1, 0, 0, 38));
        let source = vod(&objects);
        let c = clip(&source, ClipWindow::Last(Duration::from_secs(5))).unwrap();
        assert_eq!(c.renditions.iter().map(|r| r.rendition.as_str()).collect::<Vec<_>>(), ["360p"]);
        // Earlier, where both were made, both are in.
        let early = clip(&source, ClipWindow::Range { start: Duration::ZERO, len: Duration::from_secs(5) }).unwrap();
        assert_eq!(early.renditions.len(), 2);
    }

    #[test]
    fn a_clip_outside_the_recording_is_none() {
        let past = ClipWindow::Range { start: Duration::from_secs(10), len: Duration::from_secs(5) };
        assert_eq!(clip(&two_renditions(), past), None);
        assert_eq!(clip(&VodPlan::default(), ClipWindow::Last(Duration::from_secs(30))), None);
        // A range that starts inside and runs past the end is cut at the end.
        let tail = ClipWindow::Range { start: Duration::from_secs(8), len: Duration::from_secs(30) };
        assert_eq!(clip(&two_renditions(), tail).unwrap().duration, Duration::from_secs(2));
    }

    #[test]
    fn nothing_recorded_plans_nothing() {
        let plan = vod(&[Object { key: "master.m3u8".into(), size: 10 }]);
        assert_eq!(plan, VodPlan::default());
    }

    #[test]
    fn one_session_is_one_continuous_run_in_playback_order() {
        let mut objects = run("360p", 1, 0, 0, 5);
        objects.reverse();
        objects.push(Object { key: "360p/init/s1_0.mp4".into(), size: 900 });
        objects.push(Object { key: "thumbs/1764000010000.jpg".into(), size: 5000 });
        let plan = vod(&objects);
        assert_eq!(names(&plan), ["360p"]);
        let r = &plan.renditions[0];
        assert_eq!(r.entries.iter().map(|e| e.name.msn).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert_eq!(flags(r), [false; 5]);
        assert_eq!((plan.duration, plan.discontinuities, plan.bytes), (Duration::from_secs(5), 0, 625_000));
        assert_eq!((r.peak_bandwidth, r.average_bandwidth), (1_000_000, 1_000_000));
        assert_eq!(plan.recorded_at_ms, Some(T0));
        assert!(plan.excluded.is_empty() && plan.unknown.is_empty());
    }

    #[test]
    fn discontinuities_where_playback_jumps() {
        // (name, segments of one rendition, expected flags)
        let cases: Vec<(&str, Vec<Object>, Vec<bool>)> = vec![
            (
                "two sessions (replaced pod)",
                [run("a", 1, 0, 10, 2), run("a", 2, 5, 0, 2)].concat(),
                vec![false, false, true, false],
            ),
            (
                "sessions interleave in time, not in name",
                [run("a", 900, 0, 0, 2), run("a", 1, 2, 0, 2)].concat(),
                vec![false, false, true, false],
            ),
            (
                "msn jump (segments dropped)",
                [run("a", 1, 0, 0, 2), run("a", 1, 4, 4, 2)].concat(),
                vec![false, false, true, false],
            ),
            (
                "encoder restart (_d, new init)",
                vec![
                    seg("a", name(0, 1, 0, 1000, 0, false), 1),
                    seg("a", name(1000, 1, 1, 1000, 1, true), 1),
                    seg("a", name(2000, 1, 2, 1000, 1, false), 1),
                ],
                vec![false, true, false],
            ),
            (
                "new init version without the flag",
                vec![seg("a", name(0, 1, 0, 1000, 0, false), 1), seg("a", name(1000, 1, 1, 1000, 1, false), 1)],
                vec![false, true],
            ),
            ("a leading _d is no discontinuity", vec![seg("a", name(0, 1, 7, 1000, 2, true), 1)], vec![false]),
        ];
        for (what, objects, expected) in cases {
            let plan = vod(&objects);
            assert_eq!(flags(&plan.renditions[0]), expected, "{what}");
            let count = expected.iter().filter(|d| **d).count() as u32;
            assert_eq!(plan.discontinuities, count, "{what}");
        }
    }

    #[test]
    fn renditions_below_95_percent_are_left_out() {
        // (durations in seconds of renditions a, b, c; kept, excluded)
        let cases: [(&[u64], &[&str], &[&str]); 5] = [
            (&[100, 100, 100], &["a", "b", "c"], &[]),
            (&[100, 95, 100], &["a", "b", "c"], &[]),
            (&[100, 94, 100], &["a", "c"], &["b"]),
            (&[100, 20, 0], &["a"], &["b"]),
            (&[40, 100, 97], &["b", "c"], &["a"]),
        ];
        for (durations, kept, excluded) in cases {
            let objects: Vec<Object> =
                ["a", "b", "c"].iter().zip(durations).flat_map(|(r, n)| run(r, 1, 0, 0, *n)).collect();
            let plan = vod(&objects);
            let mut got = names(&plan);
            got.sort();
            assert_eq!(got, kept, "{durations:?}");
            let got: Vec<&str> = plan.excluded.iter().map(Rendition::as_str).collect();
            assert_eq!(got, excluded, "{durations:?}");
            assert_eq!(plan.duration, Duration::from_secs(100), "{durations:?}");
        }
    }

    #[test]
    fn master_order_is_by_bandwidth_and_figures_add_up() {
        let objects = [
            (0..4).map(|i| seg("360p", name(i * 1000, 1, i, 1000, 0, false), 100_000)).collect::<Vec<_>>(),
            // Two 2 s segments: 6 Mbit/s, then 2 Mbit/s.
            vec![
                seg("source", name(0, 1, 0, 2000, 0, false), 1_500_000),
                seg("source", name(2000, 1, 1, 2000, 0, false), 500_000),
            ],
            (0..4).map(|i| seg("720p", name(i * 1000 + 500, 1, i, 1000, 0, false), 375_000)).collect(),
        ]
        .concat();
        let plan = vod(&objects);
        assert_eq!(names(&plan), ["source", "720p", "360p"]);
        let source = &plan.renditions[0];
        assert_eq!((source.peak_bandwidth, source.average_bandwidth), (6_000_000, 4_000_000));
        assert_eq!(plan.bytes, 400_000 + 2_000_000 + 1_500_000);
        assert_eq!(plan.duration, Duration::from_secs(4));
        assert_eq!(plan.recorded_at_ms, Some(T0));
        let v = source.variant(Some("avc1.640028".into()), Some((1920, 1080)));
        assert_eq!((v.bandwidth, v.average_bandwidth), (6_000_000, 4_000_000));
    }

    #[test]
    fn keys_that_are_not_recording_objects_are_reported() {
        let mut objects = run("360p", 1, 0, 0, 2);
        objects.push(Object { key: "360p/seg/garbage.m4s".into(), size: 1 });
        objects.push(Object { key: "../etc".into(), size: 1 });
        let plan = vod(&objects);
        assert_eq!(plan.unknown, ["360p/seg/garbage.m4s", "../etc"]);
        assert_eq!(plan.renditions[0].entries.len(), 2);
    }
}
