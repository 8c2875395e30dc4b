//! Media playlists (LL-HLS, delta update, standard HLS) from a [`Packager`], and the master
//! playlist. URIs are relative: `init.mp4`, `seg{msn}.m4s`, parts `seg{msn}.{part}.m4s`.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::SecondsFormat;

use crate::fmp4::{Track, TrackKind};
use crate::packager::{Packager, Segment};

/// Which playlist a client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Parts, preload hint, server control, rendition reports (version 9).
    LowLatency,
    /// Complete segments only (version 7), for players without LL-HLS.
    Standard,
}

/// `#EXT-X-RENDITION-REPORT` for another rendition of the same stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionReport {
    /// Relative to this playlist, e.g. `../720p/index.m3u8`.
    pub uri: String,
    pub last_msn: u64,
    pub last_part: u64,
}

/// One `#EXT-X-STREAM-INF` entry of the master playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Relative to the master playlist, e.g. `720p/index.m3u8`.
    pub uri: String,
    /// Peak bits per second.
    pub bandwidth: u64,
    pub resolution: Option<(u16, u16)>,
    /// RFC 6381, e.g. `avc1.64001f,mp4a.40.2` (see [`codecs`]).
    pub codecs: String,
    pub frame_rate: Option<f64>,
}

pub const INIT_URI: &str = "init.mp4";

/// The init segment of `version`: `init.mp4` for the first, `init-{n}.mp4` after an encoder
/// restart changed it.
pub fn init_uri(version: u32) -> String {
    if version == 0 { INIT_URI.to_string() } else { format!("init-{version}.mp4") }
}

pub fn segment_uri(msn: u64) -> String {
    format!("seg{msn}.m4s")
}

pub fn part_uri(msn: u64, part: u64) -> String {
    format!("seg{msn}.{part}.m4s")
}

/// The `CODECS` value for an init segment's tracks (`avc1.PPCCLL`, `mp4a.40.2`), video first.
pub fn codecs(tracks: &[Track]) -> String {
    let mut sorted: Vec<&Track> = tracks.iter().collect();
    sorted.sort_by_key(|t| match t.kind {
        TrackKind::Video => 0,
        TrackKind::Audio => 1,
        TrackKind::Other => 2,
    });
    sorted.iter().filter_map(|t| t.codec.as_deref()).collect::<Vec<_>>().join(",")
}

/// Seconds with five decimals, as durations are written everywhere here.
fn secs(d: Duration) -> String {
    format!("{:.5}", d.as_secs_f64())
}

/// The playlist's skip boundary and part hold back follow from these.
pub fn part_hold_back(part_target: Duration) -> Duration {
    part_target * 3
}

pub fn can_skip_until(target_duration: u64) -> Duration {
    Duration::from_secs(target_duration * 6)
}

/// Renders a media playlist. `skip` asks for a delta update (LL form only); `reports` are the
/// other renditions.
pub fn media_playlist(p: &Packager, form: Form, skip: bool, reports: &[RenditionReport]) -> String {
    let ll = form == Form::LowLatency;
    let target = p.target_duration();
    let part_target = p.config().part_target;
    let segments: Vec<&Segment> = p.segments().filter(|s| ll && !s.parts.is_empty() || s.complete).collect();
    let mut out = String::with_capacity(4096);
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:{}", if ll { 9 } else { 7 });
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    if ll {
        let _ = writeln!(
            out,
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={},CAN-SKIP-UNTIL={}",
            secs(part_hold_back(part_target)),
            secs(can_skip_until(target))
        );
        let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", secs(part_target));
    }
    let first_msn = segments.first().map_or(p.config().first_msn, |s| s.msn);
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first_msn}");
    if p.discontinuity_sequence() > 0 {
        let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", p.discontinuity_sequence());
    }

    let total: Duration = segments.iter().map(|s| s.duration).sum();
    // Start of each segment relative to the playlist's end.
    let mut from_end = Vec::with_capacity(segments.len());
    let mut acc = total;
    for s in &segments {
        from_end.push(acc);
        acc = acc.saturating_sub(s.duration);
    }
    let skipped = if ll && skip {
        let boundary = can_skip_until(target);
        segments.iter().zip(&from_end).take_while(|(s, start)| s.complete && **start > boundary).count()
    } else {
        0
    };
    if skipped > 0 {
        let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
    }
    let parts_window = Duration::from_secs(target * 3);
    // `#EXT-X-MAP` before the first segment printed and wherever the init segment changes.
    let mut map: Option<u32> = None;
    if segments.len() == skipped
        && let Some(version) = p.segments().last().map(|s| s.init).or(p.init().map(|_| 0))
    {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", init_uri(version));
    }
    for (s, start) in segments.iter().zip(&from_end).skip(skipped) {
        if s.discontinuity {
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY");
        }
        if map != Some(s.init) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", init_uri(s.init));
            map = Some(s.init);
        }
        let _ = writeln!(
            out,
            "#EXT-X-PROGRAM-DATE-TIME:{}",
            s.program_date_time.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        // Parts of the segments that end within three target durations of the playlist's end.
        if ll && start.saturating_sub(s.duration) < parts_window {
            for (i, part) in s.parts.iter().enumerate() {
                let independent = if part.independent { ",INDEPENDENT=YES" } else { "" };
                let _ = writeln!(
                    out,
                    "#EXT-X-PART:DURATION={},URI=\"{}\"{independent}",
                    secs(part.duration),
                    part_uri(s.msn, i as u64)
                );
            }
        }
        if s.complete {
            let _ = writeln!(out, "#EXTINF:{},", secs(s.duration));
            let _ = writeln!(out, "{}", segment_uri(s.msn));
        }
    }
    if ll {
        if let Some((msn, part)) = p.next_part() {
            let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"", part_uri(msn, part));
        }
        for r in reports {
            let _ = writeln!(
                out,
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={},LAST-PART={}",
                r.uri, r.last_msn, r.last_part
            );
        }
    }
    if p.ended() {
        let _ = writeln!(out, "#EXT-X-ENDLIST");
    }
    out
}

/// The master playlist over `variants` (highest bandwidth first is the caller's choice).
pub fn master_playlist(variants: &[Variant]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in variants {
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth);
        if !v.codecs.is_empty() {
            let _ = write!(out, ",CODECS=\"{}\"", v.codecs);
        }
        if let Some((w, h)) = v.resolution {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some(fps) = v.frame_rate {
            let _ = write!(out, ",FRAME-RATE={fps:.3}");
        }
        let _ = writeln!(out, "\n{}", v.uri);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packager::Config;
    use bytes::Bytes;
    use chrono::{DateTime, Utc};

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap_or_default()
    }

    /// Segments of 5 × 200 ms parts, keyframe every 5th fragment, window of 8.
    fn state(fragments: u64) -> Packager {
        let mut p = Packager::new(Config { window: 8, ..Config::default() });
        for i in 0..fragments {
            p.push_part(Bytes::from_static(b"x"), Duration::from_millis(200), i % 5 == 0, t(200 * i as i64));
        }
        p
    }

    fn reports() -> Vec<RenditionReport> {
        vec![RenditionReport { uri: "../360p/index.m3u8".into(), last_msn: 9, last_part: 1 }]
    }

    fn parts(msn: u64) -> String {
        (0..5)
            .map(|i| {
                let ind = if i == 0 { ",INDEPENDENT=YES" } else { "" };
                format!("#EXT-X-PART:DURATION=0.20000,URI=\"seg{msn}.{i}.m4s\"{ind}\n")
            })
            .collect()
    }

    fn pdt(msn: u64) -> String {
        format!("#EXT-X-PROGRAM-DATE-TIME:{}\n", t(1000 * msn as i64).to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    #[test]
    fn low_latency_playlist() {
        let p = state(52);
        let text = media_playlist(&p, Form::LowLatency, false, &reports());
        let mut want = String::from(
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.60000,CAN-SKIP-UNTIL=6.00000\n\
             #EXT-X-PART-INF:PART-TARGET=0.20000\n#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-MAP:URI=\"init.mp4\"\n",
        );
        for msn in 2..10 {
            want += &pdt(msn);
            // Segments 7..9 end within 3 s of the end (0.4 s into segment 10).
            if msn >= 7 {
                want += &parts(msn);
            }
            want += &format!("#EXTINF:1.00000,\nseg{msn}.m4s\n");
        }
        want += &pdt(10);
        want += "#EXT-X-PART:DURATION=0.20000,URI=\"seg10.0.m4s\",INDEPENDENT=YES\n\
                 #EXT-X-PART:DURATION=0.20000,URI=\"seg10.1.m4s\"\n\
                 #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg10.2.m4s\"\n\
                 #EXT-X-RENDITION-REPORT:URI=\"../360p/index.m3u8\",LAST-MSN=9,LAST-PART=1\n";
        assert_eq!(text, want);
    }

    #[test]
    fn delta_update_skips_what_is_older_than_the_skip_boundary() {
        let p = state(52);
        let text = media_playlist(&p, Form::LowLatency, true, &[]);
        // 8.4 s in the playlist; segments 2, 3 and 4 start more than 6 s before its end.
        let head = "#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n#EXT-X-MAP:URI=\"init.mp4\"\n";
        assert!(text.contains(&format!("{head}{}#EXTINF:1.00000,\nseg5.m4s\n", pdt(5))), "{text}");
        assert!(!text.contains("seg4.m4s"));
        let full = media_playlist(&p, Form::LowLatency, false, &[]);
        assert!(!full.contains("EXT-X-SKIP"));
        assert!(!media_playlist(&p, Form::Standard, true, &[]).contains("EXT-X-SKIP"));
    }

    #[test]
    fn standard_playlist_and_end() {
        let mut p = state(17);
        let live = media_playlist(&p, Form::Standard, false, &reports());
        let mut want = String::from(
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n",
        );
        for msn in 0..3 {
            want += &pdt(msn);
            want += &format!("#EXTINF:1.00000,\nseg{msn}.m4s\n");
        }
        assert_eq!(live, want);
        p.end();
        want += &pdt(3);
        want += "#EXTINF:0.40000,\nseg3.m4s\n#EXT-X-ENDLIST\n";
        assert_eq!(media_playlist(&p, Form::Standard, false, &[]), want);
        let ll = media_playlist(&p, Form::LowLatency, false, &[]);
        assert!(ll.ends_with("#EXTINF:0.40000,\nseg3.m4s\n#EXT-X-ENDLIST\n"), "{ll}");
        assert!(!ll.contains("PRELOAD-HINT"));
    }

    #[test]
    fn hold_back_and_skip_boundary_follow_the_targets() {
        for part_ms in [100, 200, 333, 1000] {
            let hold = part_hold_back(Duration::from_millis(part_ms));
            assert!(hold >= Duration::from_millis(part_ms) * 3);
        }
        for target in 1..10 {
            assert!(can_skip_until(target) >= Duration::from_secs(6 * target));
        }
        let text = media_playlist(&state(3), Form::LowLatency, false, &[]);
        assert!(text.contains("PART-HOLD-BACK=0.60000,CAN-SKIP-UNTIL=6.00000\n#EXT-X-PART-INF:PART-TARGET=0.20000\n"));
        assert!(text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg0.3.m4s\"\n"));
    }

    #[test]
    fn master_playlist_lines() {
        let text = master_playlist(&[
            Variant {
                uri: "720p/index.m3u8".into(),
                bandwidth: 3_000_000,
                resolution: Some((1280, 720)),
                codecs: "avc1.64001f,mp4a.40.2".into(),
                frame_rate: Some(30.0),
            },
            Variant {
                uri: "audio/index.m3u8".into(),
                bandwidth: 128_000,
                resolution: None,
                codecs: "mp4a.40.2".into(),
                frame_rate: None,
            },
        ]);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3000000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30.000\n720p/index.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=128000,CODECS=\"mp4a.40.2\"\naudio/index.m3u8\n"
        );
    }

    #[test]
    fn a_discontinuity_is_tagged_with_its_map_and_counted_once_it_leaves() {
        let mut p = Packager::new(Config { window: 8, ..Config::default() });
        let init = |b: &'static [u8]| crate::fmp4::Event::Init { bytes: Bytes::from_static(b), tracks: Vec::new() };
        p.push_event(init(b"old"), t(0));
        for i in 0..12u64 {
            // msn 0, 1 complete; msn 2 open with 2 parts
            p.push_part(Bytes::from_static(b"x"), Duration::from_millis(200), i % 5 == 0, t(200 * i as i64));
        }
        p.restart();
        p.push_event(init(b"new"), t(10_000));
        for i in 0..6u64 {
            p.push_part(Bytes::from_static(b"x"), Duration::from_millis(200), i % 5 == 0, t(10_000 + 200 * i as i64));
        }
        let text = media_playlist(&p, Form::Standard, false, &[]);
        let lines: Vec<&str> = text.lines().collect();
        let at = |l: &str| lines.iter().position(|x| *x == l).unwrap_or_else(|| panic!("{l} in\n{text}"));
        assert!(at("#EXT-X-MAP:URI=\"init.mp4\"") < at("seg0.m4s"));
        assert!(at("seg2.m4s") < at("#EXT-X-DISCONTINUITY"));
        assert_eq!(at("#EXT-X-DISCONTINUITY") + 1, at("#EXT-X-MAP:URI=\"init-1.mp4\""));
        assert!(at("#EXT-X-MAP:URI=\"init-1.mp4\"") < at("seg3.m4s"));
        assert!(!text.contains("DISCONTINUITY-SEQUENCE"), "nothing has left the window yet");

        // Once the discontinuity's segment leaves the window, the header counts it.
        for i in 6..60u64 {
            p.push_part(Bytes::from_static(b"x"), Duration::from_millis(200), i % 5 == 0, t(10_000 + 200 * i as i64));
        }
        let text = media_playlist(&p, Form::LowLatency, false, &[]);
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
        assert!(!text.contains("#EXT-X-DISCONTINUITY\n"));
        assert_eq!(text.matches("#EXT-X-MAP:URI=\"init-1.mp4\"").count(), 1);
    }
}
