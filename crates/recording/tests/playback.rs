//! A recording laid out on disk as the recorder will upload it, from two real ffmpeg encodes (two
//! sessions: a replaced pod), planned and rendered by this crate, then read back by ffprobe and
//! decoded by ffmpeg. Skipped when ffmpeg is not installed.

use std::path::Path;
use std::process::Command;

use onair_recording::layout::{InitName, Rel, Rendition, SegmentName, Session};
use onair_recording::plan::{self, Object};
use onair_recording::playlist;

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

const T0: u64 = 1_764_000_000_000;
const SECONDS: u64 = 4;

fn installed(tool: &str) -> bool {
    Command::new(tool).arg("-version").output().is_ok_and(|o| o.status.success())
}

/// One session: `SECONDS` one-second fMP4 segments from ffmpeg's HLS muxer, renamed into the
/// layout under `root` with PDTs from `start_ms`.
fn record_session(root: &Path, rendition: &Rendition, session: Session, start_ms: u64) -> Res {
    let work = tempfile::tempdir()?;
    // coreutils' timeout: a mistake in the arguments must not hang the test run.
    let status = Command::new("timeout")
        .args(["60", "ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=30"])
        .args(["-t", &SECONDS.to_string(), "-c:v", "libx264", "-preset", "ultrafast", "-g", "30"])
        .args(["-keyint_min", "30", "-sc_threshold", "0", "-f", "hls", "-hls_time", "1", "-hls_segment_type", "fmp4"])
        .args(["-hls_playlist_type", "vod", "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename"])
        .arg(work.path().join("seg%d.m4s"))
        .arg(work.path().join("out.m3u8"))
        .status()?;
    assert!(status.success(), "ffmpeg: {status}");

    let put = |rel: Rel, from: &Path| -> Res {
        let to = root.join(rel.to_string());
        std::fs::create_dir_all(to.parent().ok_or("key without a folder")?)?;
        std::fs::copy(from, to)?;
        Ok(())
    };
    put(Rel::Init(rendition.clone(), InitName { session, version: 0 }), &work.path().join("init.mp4"))?;
    for msn in 0..SECONDS {
        let name = SegmentName {
            pdt_ms: start_ms + msn * 1000,
            session,
            msn,
            duration_us: 1_000_000,
            init_version: 0,
            discontinuity: false,
        };
        put(Rel::Segment(rendition.clone(), name), &work.path().join(format!("seg{msn}.m4s")))?;
    }
    Ok(())
}

/// Every file under `dir` as a listing would give it: relative keys with `/`.
fn list(root: &Path, dir: &Path, out: &mut Vec<Object>) -> Res {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            list(root, &path, out)?;
        } else {
            let key = path.strip_prefix(root)?.to_string_lossy().replace('\\', "/");
            out.push(Object { key, size: std::fs::metadata(&path)?.len() });
        }
    }
    Ok(())
}

#[test]
fn a_planned_vod_over_two_sessions_plays_in_ffmpeg() -> Res {
    if !installed("ffmpeg") || !installed("ffprobe") {
        eprintln!("ffmpeg/ffprobe not installed: skipped");
        return Ok(());
    }
    let root = tempfile::tempdir()?;
    let r = Rendition::parse("360p")?;
    record_session(root.path(), &r, Session(T0), T0)?;
    // The replacement pod's session starts 10 s later: a gap and a new init.
    record_session(root.path(), &r, Session(T0 + 14_000), T0 + 14_000)?;

    let mut objects = Vec::new();
    list(root.path(), root.path(), &mut objects)?;
    let plan = plan::vod(&objects);
    assert!(plan.unknown.is_empty(), "{:?}", plan.unknown);
    assert_eq!(plan.discontinuities, 1);
    assert_eq!(plan.duration.as_secs(), 2 * SECONDS);
    for rendition in &plan.renditions {
        let path = root.path().join(Rel::Playlist(rendition.rendition.clone()).to_string());
        std::fs::write(path, playlist::vod_media(&rendition.entries))?;
    }
    let variants: Vec<_> = plan.renditions.iter().map(|r| r.variant(None, Some((160, 90)))).collect();
    let master = root.path().join(Rel::Master.to_string());
    std::fs::write(&master, playlist::vod_master(&variants))?;

    let probe = Command::new("timeout")
        .args(["60", "ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(&master)
        .output()?;
    assert!(probe.status.success(), "ffprobe: {}", String::from_utf8_lossy(&probe.stderr));
    let duration: f64 = String::from_utf8_lossy(&probe.stdout).trim().parse()?;
    assert!((duration - (2 * SECONDS) as f64).abs() < 0.5, "ffprobe duration {duration}");

    // Decoded through both sessions with no complaint (a missing MAP or a bad URI is an error).
    let decode = Command::new("timeout")
        .args(["60", "ffmpeg", "-v", "error", "-nostdin", "-i"])
        .arg(root.path().join("360p/index.m3u8"))
        .args(["-f", "null", "-"])
        .output()?;
    let stderr = String::from_utf8_lossy(&decode.stderr);
    assert!(decode.status.success() && stderr.trim().is_empty(), "ffmpeg decode: {stderr}");
    Ok(())
}
