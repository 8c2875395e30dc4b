//! VOD playlists (RFC 8216 §4.3.3.5 `PLAYLIST-TYPE:VOD`): a rendition's media playlist from its
//! segments, and the master over the renditions. Clips use the same renderers: their copies keep
//! the source names.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat};

use crate::layout::{InitName, Rendition, SegmentName};

/// A segment as a playlist lists it: its name, size and whether playback jumps before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub name: SegmentName,
    pub size: u64,
    /// `#EXT-X-DISCONTINUITY` before it: new session, encoder restart, init change or lost segments.
    pub discontinuity: bool,
}

/// `#EXT-X-TARGETDURATION`: the longest segment rounded up, so no EXTINF exceeds it (at least 1).
pub fn target_duration(entries: &[Entry]) -> u64 {
    let longest_us = entries.iter().map(|e| e.name.duration_us).max().unwrap_or(0);
    longest_us.div_ceil(1_000_000).max(1)
}

/// A rendition's VOD media playlist, with URIs relative to `{rendition}/index.m3u8`.
pub fn vod_media(entries: &[Entry]) -> String {
    let mut out = String::with_capacity(128 + entries.len() * 160);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    // `write!` into a String cannot fail; the results are ignored as llhls does.
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", target_duration(entries));
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:0");
    segments(&mut out, entries);
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// A rendition's rewind window while live (design §4.5): a plain live playlist (no
/// PLAYLIST-TYPE: RFC 8216 §4.3.3.5 forbids removing segments from an EVENT one) whose head
/// slides. `target` is the longest segment the window ever held, rounded up (RFC 8216 §6.2.1:
/// it must not change between reloads); `media_sequence` is the first entry's number and
/// `discontinuity_sequence` the discontinuity tags no longer written; `ended` closes it.
pub fn sliding(
    entries: &[Entry],
    target: u64,
    media_sequence: u64,
    discontinuity_sequence: u64,
    ended: bool,
) -> String {
    let mut out = String::with_capacity(160 + entries.len() * 160);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", target.max(target_duration(entries)));
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{media_sequence}");
    let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}");
    segments(&mut out, entries);
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// The segment lines: a discontinuity where playback jumps, a MAP at each init change, the
/// wall-clock date of each (players seek by it).
fn segments(out: &mut String, entries: &[Entry]) {
    let mut map: Option<InitName> = None;
    for (i, e) in entries.iter().enumerate() {
        // The first segment has nothing to be discontinuous with.
        if i > 0 && e.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let init = e.name.init();
        if map != Some(init) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"init/{init}\"");
            map = Some(init);
        }
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", pdt(e.name.pdt_ms));
        let _ = writeln!(out, "#EXTINF:{},\nseg/{}", secs(e.name.duration_us), e.name);
    }
}

/// One rendition in the VOD master playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VodVariant {
    pub rendition: Rendition,
    /// Peak segment bit rate (bits per second).
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    /// From the init segment (`onair_llhls::playlist::codecs`); left out when unknown.
    pub codecs: Option<String>,
    pub resolution: Option<(u32, u32)>,
}

/// The VOD master playlist, with URIs relative to `master.m3u8`.
pub fn vod_master(variants: &[VodVariant]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in variants {
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={}", v.bandwidth, v.average_bandwidth);
        if let Some(codecs) = v.codecs.as_deref().filter(|c| !c.is_empty()) {
            let _ = write!(out, ",CODECS=\"{codecs}\"");
        }
        if let Some((w, h)) = v.resolution {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        let _ = writeln!(out, "\n{}/index.m3u8", v.rendition);
    }
    out
}

/// Exact seconds from microseconds: `1.001000`.
fn secs(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// RFC 3339 UTC with milliseconds, as llhls writes it.
fn pdt(ms: u64) -> String {
    // Past the year 262143 chrono has no date; a key that parsed has 13 digits, far below that.
    let t = i64::try_from(ms).ok().and_then(DateTime::from_timestamp_millis).unwrap_or_default();
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Session;

    const T0: u64 = 1_764_000_000_000;

    fn entry(pdt_ms: u64, session: u64, msn: u64, duration_us: u64, v: u32, discontinuity: bool) -> Entry {
        let name = SegmentName { pdt_ms, session: Session(session), msn, duration_us, init_version: v, discontinuity };
        Entry { name, size: 1000, discontinuity }
    }

    #[test]
    fn target_duration_is_the_longest_segment_rounded_up() {
        for (durations, target) in [
            (&[][..], 1),
            (&[400_000][..], 1),
            (&[1_000_000, 1_000_000][..], 1),
            (&[1_000_000, 1_000_001][..], 2),
            (&[2_000_000, 1_500_000][..], 2),
            (&[2_400_000][..], 3),
        ] {
            let entries: Vec<Entry> = durations
                .iter()
                .enumerate()
                .map(|(i, d)| entry(T0 + i as u64 * 3000, 1, i as u64, *d, 0, false))
                .collect();
            assert_eq!(target_duration(&entries), target, "{durations:?}");
        }
    }

    #[test]
    fn the_rewind_window_is_a_live_playlist_with_its_sequences() {
        let entries = [entry(T0, 7, 40, 1_000_000, 0, false), entry(T0 + 1000, 8, 0, 1_000_000, 0, true)];
        let text = sliding(&entries, 1, 40, 3, false);
        assert!(text.starts_with(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:1\n\
             #EXT-X-MEDIA-SEQUENCE:40\n#EXT-X-DISCONTINUITY-SEQUENCE:3\n#EXT-X-MAP:URI=\"init/s7_0.mp4\"\n"
        ));
        assert!(text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init/s8_0.mp4\"\n"), "{text}");
        assert!(!text.contains("PLAYLIST-TYPE") && !text.contains("ENDLIST"), "{text}");
        assert!(sliding(&entries, 1, 40, 3, true).ends_with("#EXT-X-ENDLIST\n"));
        // The target stays what the window once needed, never below what it holds now.
        assert!(sliding(&entries, 4, 40, 3, false).contains("#EXT-X-TARGETDURATION:4\n"));
    }

    #[test]
    fn one_session_plays_straight_through() {
        let entries = [entry(T0, 7, 0, 1_000_000, 0, false), entry(T0 + 1000, 7, 1, 1_001_000, 0, false)];
        assert_eq!(
            vod_media(&entries),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-MAP:URI=\"init/s7_0.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2025-11-24T16:00:00.000Z\n\
             #EXTINF:1.000000,\nseg/1764000000000_s7_000000000000_1000000_0.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2025-11-24T16:00:01.000Z\n\
             #EXTINF:1.001000,\nseg/1764000001000_s7_000000000001_1001000_0.m4s\n\
             #EXT-X-ENDLIST\n"
        );
    }

    #[test]
    fn a_new_session_or_init_version_gets_a_discontinuity_and_a_map() {
        let entries = [
            entry(T0, 7, 0, 1_000_000, 0, false),
            // Encoder restart within the session: new init version.
            entry(T0 + 1000, 7, 1, 1_000_000, 1, true),
            // Segments lost (msn jump): same init, so no new MAP.
            entry(T0 + 5000, 7, 5, 1_000_000, 1, true),
            // Replaced pod.
            entry(T0 + 9000, 9, 0, 1_000_000, 0, true),
        ];
        let text = vod_media(&entries);
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 3, "{text}");
        let maps: Vec<&str> = text.lines().filter(|l| l.starts_with("#EXT-X-MAP")).collect();
        assert_eq!(
            maps,
            [
                "#EXT-X-MAP:URI=\"init/s7_0.mp4\"",
                "#EXT-X-MAP:URI=\"init/s7_1.mp4\"",
                "#EXT-X-MAP:URI=\"init/s9_0.mp4\""
            ]
        );
        // The tag order within a segment: DISCONTINUITY, MAP, PDT, EXTINF.
        let at = text.find("#EXT-X-MAP:URI=\"init/s9_0.mp4\"").unwrap_or(0);
        assert!(text[..at].ends_with("#EXT-X-DISCONTINUITY\n"), "{text}");
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn a_leading_discontinuity_flag_is_not_written() {
        let text = vod_media(&[entry(T0, 7, 3, 1_000_000, 2, true)]);
        assert!(!text.contains("DISCONTINUITY"), "{text}");
    }

    #[test]
    fn master_lists_each_rendition() {
        let variants = [
            VodVariant {
                rendition: Rendition::parse("720p").expect("valid"),
                bandwidth: 3_200_000,
                average_bandwidth: 2_800_000,
                codecs: Some("avc1.64001f,mp4a.40.2".into()),
                resolution: Some((1280, 720)),
            },
            VodVariant {
                rendition: Rendition::parse("audio").expect("valid"),
                bandwidth: 130_000,
                average_bandwidth: 128_000,
                codecs: None,
                resolution: None,
            },
        ];
        assert_eq!(
            vod_master(&variants),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3200000,AVERAGE-BANDWIDTH=2800000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720\n\
             720p/index.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=130000,AVERAGE-BANDWIDTH=128000\n\
             audio/index.m3u8\n"
        );
    }
}
