//! The whole path with real ffmpeg output: two renditions encoded from one input with the same
//! GOP, read through the store, checked for part/segment timing and alignment, then written out
//! and read back by ffprobe and ffmpeg.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use onair_llhls::fmp4::{self, Event, TrackKind};
use onair_llhls::{Config, Form, Store};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The fMP4 flags the media worker gives ffmpeg (see the README).
const FMP4: &[&str] = &[
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-g",
    "30",
    "-keyint_min",
    "30",
    "-sc_threshold",
    "0",
    "-c:a",
    "aac",
    "-f",
    "mp4",
    "-movflags",
    "empty_moov+default_base_moof+frag_keyframe+cmaf",
    "-frag_duration",
    "200000",
];

const SECONDS: f64 = 6.0;

fn ffmpeg(args: &[&str]) -> Res<Command> {
    // coreutils' timeout: a mistake in the arguments must not hang the test run.
    let mut cmd = Command::new("timeout");
    cmd.args(["120", "ffmpeg", "-v", "error", "-nostdin", "-y"]);
    cmd.args(args);
    Ok(cmd)
}

/// `a.mp4` (640x360) and `b.mp4` (320x180) from one 30 fps test source, 6 s.
fn encode_two(dir: &Path) -> Res<(Vec<u8>, Vec<u8>)> {
    let (a, b) = (dir.join("a.mp4"), dir.join("b.mp4"));
    let (a_s, b_s) = (a.to_string_lossy().into_owned(), b.to_string_lossy().into_owned());
    // `-t` on the inputs: as an output option it would bind to the first output only.
    let mut args = vec![
        "-t",
        "6",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30",
        "-t",
        "6",
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-filter_complex",
        "[0:v]split=2[a][b0];[b0]scale=320:180[b]",
        "-map",
        "[a]",
        "-map",
        "1:a",
    ];
    args.extend_from_slice(FMP4);
    args.extend_from_slice(&[&a_s, "-map", "[b]", "-map", "1:a"]);
    args.extend_from_slice(FMP4);
    args.push(&b_s);
    let status = ffmpeg(&args)?.status()?;
    assert!(status.success(), "ffmpeg failed: {status}");
    Ok((std::fs::read(a)?, std::fs::read(b)?))
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
}

/// Pushes `data` in uneven chunks.
fn feed(w: &mut onair_llhls::Writer, data: &[u8]) -> Res {
    let mut at = 0;
    let mut n = 1;
    while at < data.len() {
        let end = (at + n).min(data.len());
        w.push_at(&data[at..end], t0())?;
        at = end;
        n = n * 7 % 9973 + 1;
    }
    w.end();
    Ok(())
}

#[test]
fn real_ffmpeg_renditions_are_timed_and_aligned() -> Res {
    let dir = tempfile::tempdir()?;
    let (a, b) = encode_two(dir.path())?;
    let store = Store::new(Config { window: 100, ..Config::default() });
    feed(&mut store.writer("a"), &a)?;
    feed(&mut store.writer("b"), &b)?;

    for name in ["a", "b"] {
        let stats = store.stats(name).ok_or("stats")?;
        assert_eq!(stats.parts_over_target, 0, "{name}: {stats:?}");
        assert!(stats.longest_part <= Duration::from_millis(200), "{name}: {stats:?}");
        assert_eq!(stats.dropped_before_keyframe, 0);
        assert_eq!(stats.forced_cuts, 0);
    }

    // Decode times continuous per track, and fragment timing as measured.
    let mut reader = fmp4::Reader::default();
    let events = reader.push(&a)?;
    let tracks = reader.tracks().ok_or("no init")?.to_vec();
    let video = tracks.iter().find(|t| t.kind == TrackKind::Video).ok_or("video")?;
    assert!(tracks.iter().any(|t| t.kind == TrackKind::Audio));
    let mut next = std::collections::HashMap::new();
    let mut video_fragments = 0;
    for e in &events {
        if let Event::Fragment { tracks: frags, .. } = e {
            for f in frags {
                if let Some(want) = next.insert(f.track_id, f.base_decode_time + f.duration) {
                    assert_eq!(f.base_decode_time, want, "track {} decode time jumps", f.track_id);
                }
                if f.track_id == video.id && f.samples > 0 {
                    video_fragments += 1;
                    // 6 frames of 1/30 s: exactly 0.2 s.
                    assert_eq!(f.samples, 6);
                    assert_eq!(f.duration * 5, u64::from(video.timescale));
                }
            }
        }
    }
    assert_eq!(video_fragments, 30);

    let segs = |name: &str| -> Vec<u64> {
        (0..100u64).take_while(|msn| store.get(name, &format!("seg{msn}.m4s")).is_some()).collect()
    };
    assert_eq!(segs("a").len(), 6, "6 s in 1 s segments");
    assert_eq!(segs("a"), segs("b"));

    // Per segment: independent first part, equal durations and part counts across renditions.
    let live_a = rt()?.block_on(store.playlist("a", None, Form::LowLatency))?;
    let live_b = rt()?.block_on(store.playlist("b", None, Form::LowLatency))?;
    let timing = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("#EXTINF") || l.starts_with("#EXT-X-PART:") || l.starts_with("seg"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(timing(&live_a), timing(&live_b), "keyframe-aligned renditions");
    let mut expect_independent = true;
    for line in live_a.lines() {
        if line.starts_with("#EXT-X-PART:") {
            if expect_independent {
                assert!(line.ends_with(",INDEPENDENT=YES"), "segment starts with {line}");
            }
            expect_independent = false;
        } else if line.starts_with("seg") {
            expect_independent = true;
        }
    }
    let extinf: Vec<&str> = live_a.lines().filter(|l| l.starts_with("#EXTINF")).collect();
    let (last, whole) = extinf.split_last().ok_or("no segments")?;
    assert!(whole.iter().all(|l| *l == "#EXTINF:1.00000,"), "{extinf:?}");
    // The last one also holds the audio ffmpeg writes after the last video frame.
    let last: f64 = last.trim_start_matches("#EXTINF:").trim_end_matches(',').parse()?;
    assert!((1.0..1.1).contains(&last), "{last}");
    assert!(live_a.contains("#EXT-X-TARGETDURATION:1\n"));
    Ok(())
}

fn rt() -> Res<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_time().build()?)
}

/// Writes a rendition as a server would serve it.
fn write_out(store: &Store, name: &str, dir: &Path) -> Res {
    std::fs::write(dir.join("init.mp4"), store.get(name, "init.mp4").ok_or("init")?)?;
    // Init segments after encoder restarts that changed them.
    for version in 1..10u32 {
        let uri = format!("init-{version}.mp4");
        let Some(bytes) = store.get(name, &uri) else { break };
        std::fs::write(dir.join(uri), bytes)?;
    }
    for msn in 0..100u64 {
        let Some(seg) = store.get(name, &format!("seg{msn}.m4s")) else { break };
        std::fs::write(dir.join(format!("seg{msn}.m4s")), seg)?;
        for part in 0..100u64 {
            let uri = format!("seg{msn}.{part}.m4s");
            let Some(bytes) = store.get(name, &uri) else { break };
            std::fs::write(dir.join(uri), bytes)?;
        }
    }
    let rt = rt()?;
    std::fs::write(dir.join("index.m3u8"), rt.block_on(store.playlist(name, None, Form::Standard))?)?;
    std::fs::write(dir.join("ll.m3u8"), rt.block_on(store.playlist(name, None, Form::LowLatency))?)?;
    Ok(())
}

fn probe(playlist: &Path) -> Res<serde_json::Value> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration:stream=codec_name,width,height", "-of", "json"])
        .arg(playlist)
        .output()?;
    assert!(out.status.success(), "ffprobe {}: {}", playlist.display(), String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[test]
fn ffprobe_and_ffmpeg_read_what_the_store_serves() -> Res {
    let dir = tempfile::tempdir()?;
    let (a, _) = encode_two(dir.path())?;
    let store = Store::new(Config { window: 100, ..Config::default() });
    feed(&mut store.writer("a"), &a)?;
    let out = dir.path().join("a");
    std::fs::create_dir(&out)?;
    write_out(&store, "a", &out)?;

    for playlist in ["index.m3u8", "ll.m3u8"] {
        let path = out.join(playlist);
        let json = probe(&path)?;
        let streams = json["streams"].as_array().ok_or("streams")?;
        let codecs: Vec<&str> = streams.iter().filter_map(|s| s["codec_name"].as_str()).collect();
        assert!(codecs.contains(&"h264") && codecs.contains(&"aac"), "{playlist}: {json}");
        let video = streams.iter().find(|s| s["codec_name"] == "h264").ok_or("h264")?;
        assert_eq!((video["width"].as_u64(), video["height"].as_u64()), (Some(640), Some(360)));
        let duration: f64 = json["format"]["duration"].as_str().ok_or("duration")?.parse()?;
        assert!((duration - SECONDS).abs() <= 0.3, "{playlist}: duration {duration}");

        let decode = ffmpeg(&["-i"])?.arg(&path).args(["-f", "null", "-"]).output()?;
        assert!(decode.status.success(), "{playlist}: {}", String::from_utf8_lossy(&decode.stderr));
        assert!(decode.stderr.is_empty(), "{playlist}: {}", String::from_utf8_lossy(&decode.stderr));
    }
    Ok(())
}

/// An encoder restart with other parameters (the worker's ladder change, a crash, a publisher
/// reconnecting): the same rendition continues after `#EXT-X-DISCONTINUITY` with a new
/// `#EXT-X-MAP`, and ffmpeg and ffprobe play straight through both.
#[test]
fn an_encoder_restart_continues_the_rendition_and_plays_through() -> Res {
    let dir = tempfile::tempdir()?;
    let (a, b) = encode_two(dir.path())?;
    let store = Store::new(Config { window: 100, ..Config::default() });
    feed(&mut store.writer("r"), &a)?;
    feed(&mut store.writer("r"), &b)?;
    let out = dir.path().join("r");
    std::fs::create_dir(&out)?;
    write_out(&store, "r", &out)?;

    let text = std::fs::read_to_string(out.join("index.m3u8"))?;
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    assert!(text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n"), "{text}");
    let msns: Vec<u64> =
        text.lines().filter_map(|l| l.strip_prefix("seg")?.strip_suffix(".m4s")?.parse().ok()).collect();
    assert!(msns.windows(2).all(|w| w[1] == w[0] + 1), "media sequence numbers go on: {msns:?}");
    for playlist in ["index.m3u8", "ll.m3u8"] {
        let path = out.join(playlist);
        let json = probe(&path)?;
        let duration: f64 = json["format"]["duration"].as_str().ok_or("duration")?.parse()?;
        assert!((duration - 2.0 * SECONDS).abs() <= 0.6, "{playlist}: both runs play: {duration}");
        let decode = ffmpeg(&["-i"])?.arg(&path).args(["-f", "null", "-"]).output()?;
        assert!(decode.status.success(), "{playlist}: {}", String::from_utf8_lossy(&decode.stderr));
    }
    Ok(())
}

/// ffmpeg writing to a pipe, read as the media worker would: whatever `read` returns.
#[test]
fn live_pipe_from_ffmpeg() -> Res {
    let mut args =
        vec!["-t", "3", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30", "-t", "3", "-f", "lavfi", "-i", "sine"];
    args.extend_from_slice(FMP4);
    args.push("pipe:1");
    let mut child = ffmpeg(&args)?.stdout(Stdio::piped()).spawn()?;
    let mut stdout = child.stdout.take().ok_or("stdout")?;
    let store = Store::default();
    let mut w = store.writer("pipe");
    let mut buf = vec![0u8; 4096];
    loop {
        let n = stdout.read(&mut buf)?;
        if n == 0 {
            break;
        }
        w.push(&buf[..n])?;
    }
    assert!(child.wait()?.success());
    w.end();
    let stats = w.stats();
    assert_eq!((stats.segments, stats.parts_over_target), (3, 0), "{stats:?}");
    // The audio left over after the last video frame is one more (short) part.
    assert!(stats.parts >= 15, "{stats:?}");
    let text = rt()?.block_on(store.playlist("pipe", Some("_HLS_msn=2"), Form::LowLatency))?;
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0\n") && text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    let codecs = store.variant("pipe", 1, None).ok_or("variant")?.codecs;
    assert!(codecs.starts_with("avc1.64") && codecs.ends_with(",mp4a.40.2"), "{codecs}");
    Ok(())
}
