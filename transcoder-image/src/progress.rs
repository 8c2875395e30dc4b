//! ffmpeg's `-progress` output (on stderr, between its log lines) turned into the encoder's
//! health: `speed=` (under 1.0 the encoder falls behind real time) and dropped frames, exported
//! as metrics and reported to the apiserver (the streamer's dashboard, the autoscaler).

use std::time::Duration;

use onair_domain::StreamId;
use tokio::io::AsyncBufReadExt as _;

use crate::metrics::StreamLabels;
use crate::shed::Shedder;
use crate::state::WorkerState;

/// One line of ffmpeg's stderr.
#[derive(Debug, PartialEq)]
enum Line<'a> {
    /// `speed=1.02x`
    Speed(f64),
    /// `drop_frames=3`
    DroppedFrames(i64),
    /// `out_time_us=1234567`: how much it has encoded.
    OutTime(u64),
    /// A log line (not a `key=value` progress line): worth a warning.
    Log(&'a str),
    /// Any other progress key, or a value that does not parse.
    Other,
}

fn parse(line: &str) -> Line<'_> {
    if let Some(v) = line.strip_prefix("speed=") {
        v.trim().trim_end_matches('x').parse::<f64>().map_or(Line::Other, Line::Speed)
    } else if let Some(v) = line.strip_prefix("out_time_us=") {
        v.trim().parse::<u64>().map_or(Line::Other, Line::OutTime)
    } else if let Some(v) = line.strip_prefix("drop_frames=") {
        v.trim().parse::<i64>().map_or(Line::Other, Line::DroppedFrames)
    } else if !line.contains('=') && !line.trim().is_empty() {
        Line::Log(line)
    } else {
        Line::Other
    }
}

/// ffmpeg warnings that say nothing is wrong with the stream, kept out of WARN: a full-range
/// (JPEG) source scaled for the ladder (`yuvj420p` is "deprecated" but converted correctly), no
/// SIMD path for one scaler conversion, and the input queue filling while the encoder works
/// through a keyframe (the pipe from the publisher is bounded by design; real stalls are
/// caught by the encoder's own checks and logged there).
const HARMLESS: &[&str] =
    &["deprecated pixel format used", "No accelerated colorspace conversion found", "Thread message queue blocking"];

fn harmless(line: &str) -> bool {
    HARMLESS.iter().any(|h| line.contains(h))
}

/// Read ffmpeg's `-progress` output: export encode speed and dropped frames.
pub async fn watch(state: WorkerState, stream: StreamId, stderr: tokio::process::ChildStderr) {
    let labels = StreamLabels { stream_id: stream.to_string() };
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    // None: nothing reported yet, so the first speed goes out at once. (An Instant 60 s in the
    // past would underflow on a machine up for less than that.)
    let (mut dropped, mut last_report) = (0i64, None::<std::time::Instant>);
    // One machine sheds its own ladder; on Kubernetes the operator decides (it sees the pods).
    let after = if state.config.role == crate::config::Role::All { state.config.shed_after_secs } else { 0 };
    let mut shedder = Shedder::new(Duration::from_secs(after));
    while let Ok(Some(line)) = lines.next_line().await {
        match parse(&line) {
            Line::Speed(speed) => {
                state.metrics.encode_speed.get_or_create(&labels).set(speed);
                // The apiserver hears about it every 5 s (the streamer's dashboard, the autoscaler).
                if last_report.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
                    last_report = Some(std::time::Instant::now());
                    let (api, s) = (state.api.clone(), speed);
                    tokio::spawn(async move { api.report_health(stream, s, dropped).await });
                }
            }
            Line::OutTime(us) => {
                let now = std::time::Instant::now();
                if let Some(speed) = shedder.observe(now, us) {
                    shed_if_slow(&state, stream, &mut shedder, now, speed);
                }
            }
            Line::DroppedFrames(n) => {
                dropped = n;
                state.metrics.dropped_frames.get_or_create(&labels).set(n);
            }
            Line::Log(line) if harmless(line) => tracing::debug!(stream_id = %stream, ffmpeg = %line, "ffmpeg"),
            Line::Log(line) => tracing::warn!(stream_id = %stream, ffmpeg = %line, "ffmpeg"),
            Line::Other => {}
        }
    }
    state.metrics.encode_speed.remove(&labels);
}

/// One level less for a stream whose encoder stays under real time; the encoder switches at the
/// next keyframe (its successor starts a new spell).
fn shed_if_slow(state: &WorkerState, stream: StreamId, shedder: &mut Shedder, now: std::time::Instant, speed: f64) {
    let (cell, backed_up) = {
        let mut slots = state.slots.lock();
        let slot = slots.entry(stream).or_default();
        (slot.level(state.config.initial_level), slot.backed_up)
    };
    let speed = crate::shed::effective_speed(speed, backed_up, now);
    if let Some(to) = shedder.decide(now, speed, cell.get()) {
        cell.set(to);
        state.metrics.sheds.inc();
        tracing::warn!(stream_id = %stream, speed, level = ?to, "encoder under real time: ladder shed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_harmless_ffmpeg_warnings_are_told_from_real_ones() {
        assert!(harmless("[swscaler @ 0x55d1] deprecated pixel format used, make sure you did set range correctly"));
        assert!(harmless("[swscaler @ 0x1] No accelerated colorspace conversion found from yuv420p to rgb24."));
        assert!(!harmless("[h264 @ 0x1] error while decoding MB 10 20, bytestream -5"));
        assert!(!harmless("[flv @ 0x1] Packet mismatch 1234 11 4567"));
    }

    /// ffmpeg's own wording, from a full-range source scaled as the ladder does (the warning
    /// every webcam or phone publisher caused at WARN).
    #[test]
    fn a_full_range_source_scaled_for_the_ladder_logs_nothing_at_warn() {
        let out = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "warning", "-f", "lavfi", "-i"])
            .args(["testsrc2=size=320x240:rate=10,format=yuvj420p", "-t", "1", "-vf", "scale=160:120"])
            .args(["-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast", "-f", "null", "-"])
            .output()
            .expect("ffmpeg runs");
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let logs: Vec<&str> = stderr.lines().filter(|l| matches!(parse(l), Line::Log(_))).collect();
        assert!(!logs.is_empty(), "ffmpeg warned about the full-range source");
        assert!(logs.iter().all(|l| harmless(l)), "{logs:?}");
    }

    #[test]
    fn progress_lines_give_speed_and_dropped_frames_and_log_lines_stand_out() {
        assert_eq!(parse("speed=1.02x"), Line::Speed(1.02));
        assert_eq!(parse("speed= 0.5x"), Line::Speed(0.5));
        assert_eq!(parse("speed=N/A"), Line::Other);
        assert_eq!(parse("drop_frames=3"), Line::DroppedFrames(3));
        assert_eq!(parse("out_time_us=2000000"), Line::OutTime(2_000_000));
        assert_eq!(parse("out_time_us=N/A"), Line::Other);
        assert_eq!(parse("frame=120"), Line::Other);
        assert_eq!(parse("   "), Line::Other);
        assert_eq!(
            parse("[libx264 @ 0x1] using cpu capabilities"),
            Line::Log("[libx264 @ 0x1] using cpu capabilities")
        );
    }
}
