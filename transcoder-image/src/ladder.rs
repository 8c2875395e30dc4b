//! The adaptive ladder: which renditions to encode and the ffmpeg arguments that make them.

/// One rendition: its height and target bitrates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendition {
    pub name: String,
    pub height: u32,
    pub video_kbps: u32,
    pub audio_kbps: u32,
}

/// Bitrates per height (H.264, 30 fps, roughly what the large platforms use).
fn kbps_for(height: u32) -> u32 {
    match height {
        h if h >= 1080 => 5000,
        h if h >= 720 => 2800,
        h if h >= 480 => 1400,
        h if h >= 360 => 800,
        h if h >= 240 => 400,
        _ => 250,
    }
}

/// Parse `720p,480p,360p` into renditions, top first. A rendition may name its video bitrate,
/// `720p:3000k` (what a LiveStream's explicit ladder asks for); otherwise it gets the default for
/// its height.
pub fn parse_ladder(spec: &str) -> Result<Vec<Rendition>, String> {
    let mut out: Vec<Rendition> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (part, kbps) = match item.split_once(':') {
            Some((p, b)) => {
                let kbps: u32 =
                    b.trim_end_matches('k').parse().map_err(|_| format!("{b:?} is not a bitrate like 3000k"))?;
                if !(100..=20_000).contains(&kbps) {
                    return Err(format!("{item}: bitrate outside 100k-20000k"));
                }
                (p, Some(kbps))
            }
            None => (item, None),
        };
        let h: u32 = part.trim_end_matches('p').parse().map_err(|_| format!("{part:?} is not a height like 720p"))?;
        if !(144..=2160).contains(&h) {
            return Err(format!("{part} is outside 144p-2160p"));
        }
        if out.iter().any(|r| r.height == h) {
            continue;
        }
        out.push(Rendition {
            name: format!("{h}p"),
            height: h,
            video_kbps: kbps.unwrap_or_else(|| kbps_for(h)),
            audio_kbps: if h >= 480 { 128 } else { 96 },
        });
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.height));
    if out.is_empty() {
        return Err("the ladder is empty".into());
    }
    Ok(out)
}

/// Never upscale: keep renditions at or below the source; if all are above it, one rendition at
/// the source height.
pub fn fit_to_source(ladder: &[Rendition], source_height: Option<u32>) -> Vec<Rendition> {
    let Some(src) = source_height else { return ladder.to_vec() };
    let fitting: Vec<Rendition> = ladder.iter().filter(|r| r.height <= src).cloned().collect();
    if fitting.is_empty() {
        let h = src - src % 2;
        vec![Rendition { name: format!("{h}p"), height: h, video_kbps: kbps_for(h), audio_kbps: 128 }]
    } else {
        fitting
    }
}

/// How much of the ladder a stream runs (the operator's autoscaler sets it; one machine runs
/// `Full`). Names match the LiveStream status's `ladderLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Level {
    /// The source remuxed into HLS, no encode.
    Passthrough,
    /// The lowest rendition only.
    Reduced,
    /// Every rendition.
    Full,
}

impl Level {
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Passthrough,
            1 => Self::Reduced,
            _ => Self::Full,
        }
    }

    /// The renditions encoded at this level from a (source-fitted) ladder; empty for passthrough.
    pub fn pick(self, fitted: &[Rendition]) -> Vec<Rendition> {
        match self {
            Self::Passthrough => Vec::new(),
            Self::Reduced => fitted.iter().min_by_key(|r| r.height).cloned().into_iter().collect(),
            Self::Full => fitted.to_vec(),
        }
    }
}

/// The name of the passthrough variant (the source, remuxed).
pub const SOURCE: &str = "source";

/// ffmpeg arguments for passthrough: FLV on stdin -> the source's own H.264/AAC in HLS, no
/// decode, no encode (segments cut at the publisher's keyframes).
pub fn passthrough_args(dir: &str, has_audio: bool) -> Vec<String> {
    let mut a: Vec<String> = ["-hide_banner", "-loglevel", "warning", "-stats_period", "1", "-progress", "pipe:2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(["-fflags", "+genpts", "-f", "flv", "-i", "pipe:0", "-map", "0:v:0"].iter().map(|s| s.to_string()));
    if has_audio {
        a.extend(["-map".into(), "0:a:0".into()]);
    }
    a.extend(["-c".into(), "copy".into()]);
    a.extend(hls_output(dir, if has_audio { format!("v:0,a:0,name:{SOURCE}") } else { format!("v:0,name:{SOURCE}") }));
    a
}

/// The HLS muxer settings every ladder shares, writing `{dir}/{variant}/index.m3u8`.
fn hls_output(dir: &str, var_stream_map: String) -> Vec<String> {
    let mut a: Vec<String> = [
        "-f",
        "hls",
        "-hls_time",
        "1",
        "-hls_list_size",
        "6",
        "-hls_delete_threshold",
        "4",
        "-hls_flags",
        "independent_segments+program_date_time+delete_segments+temp_file",
        "-hls_segment_type",
        "mpegts",
        "-master_pl_name",
        "master.m3u8",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(["-var_stream_map".into(), var_stream_map]);
    a.extend(["-hls_segment_filename".into(), format!("{dir}/%v/seg_%05d.ts"), format!("{dir}/%v/index.m3u8")]);
    a
}

/// ffmpeg arguments: FLV on stdin -> keyframe-aligned HLS ladder in `dir`, 1 s segments.
pub fn ffmpeg_args(ladder: &[Rendition], preset: &str, dir: &str, has_audio: bool) -> Vec<String> {
    let n = ladder.len();
    let mut a: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "warning",
        "-stats_period",
        "1",
        "-progress",
        "pipe:2",
        "-fflags",
        "+genpts",
        "-f",
        "flv",
        "-i",
        "pipe:0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let splits: String = (0..n).map(|i| format!("[s{i}]")).collect();
    // One more branch of the source for the discovery thumbnail (a JPEG every 10 s).
    let mut filter = format!("[0:v]split={}{splits}[th]", n + 1);
    for (i, r) in ladder.iter().enumerate() {
        filter.push_str(&format!(";[s{i}]scale=-2:{}[v{i}]", r.height));
    }
    // The first frame at once, then one every 10 s.
    filter.push_str(";[th]select='isnan(prev_selected_t)+gte(t-prev_selected_t,10)',scale=-2:360[thumb]");
    a.extend(["-filter_complex".into(), filter]);
    for (i, r) in ladder.iter().enumerate() {
        a.extend(["-map".into(), format!("[v{i}]")]);
        if has_audio {
            a.extend(["-map".into(), "0:a:0".into()]);
        }
        a.extend([
            format!("-b:v:{i}"),
            format!("{}k", r.video_kbps),
            format!("-maxrate:v:{i}"),
            format!("{}k", r.video_kbps * 107 / 100),
            format!("-bufsize:v:{i}"),
            format!("{}k", r.video_kbps * 3 / 2),
        ]);
        if has_audio {
            a.extend([format!("-b:a:{i}"), format!("{}k", r.audio_kbps)]);
        }
    }
    a.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            preset,
            "-tune",
            "zerolatency",
            "-profile:v",
            "main",
            "-pix_fmt",
            "yuv420p",
            // A keyframe every second in every rendition, at the same instants: segments line up
            // across the ladder, so players switch cleanly.
            "-force_key_frames",
            "expr:gte(t,n_forced*1)",
            "-sc_threshold",
            "0",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    if has_audio {
        a.extend(["-c:a", "aac", "-ac", "2", "-ar", "48000"].iter().map(|s| s.to_string()));
    }
    let map: Vec<String> = ladder
        .iter()
        .enumerate()
        .map(|(i, r)| if has_audio { format!("v:{i},a:{i},name:{}", r.name) } else { format!("v:{i},name:{}", r.name) })
        .collect();
    a.extend(hls_output(dir, map.join(" ")));
    a.extend(
        [
            "-map",
            "[thumb]",
            "-fps_mode",
            "vfr",
            "-c:v",
            "mjpeg",
            "-q:v",
            "5",
            "-f",
            "image2",
            "-update",
            "1",
            "-atomic_writing",
            "1",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    a.push(format!("{dir}/thumb.jpg"));
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_pick_renditions_and_passthrough_copies_the_source() {
        let l = parse_ladder("720p,480p,360p").unwrap();
        assert_eq!(Level::Full.pick(&l).len(), 3);
        assert_eq!(Level::Reduced.pick(&l).iter().map(|r| r.height).collect::<Vec<_>>(), [360]);
        assert!(Level::Passthrough.pick(&l).is_empty());
        for lv in [Level::Passthrough, Level::Reduced, Level::Full] {
            assert_eq!(Level::from_u8(lv.as_u8()), lv);
        }
        let a = passthrough_args("/m/s", true).join(" ");
        assert!(a.contains("-c copy") && a.contains("name:source") && !a.contains("libx264"), "{a}");
        assert!(a.ends_with("/m/s/%v/index.m3u8"));
    }

    #[test]
    fn ladders_parse_sort_and_never_upscale() {
        let l = parse_ladder("360p, 720p,480p,720p").unwrap();
        assert_eq!(l.iter().map(|r| r.height).collect::<Vec<_>>(), vec![720, 480, 360]);
        assert!(parse_ladder("").is_err());
        assert!(parse_ladder("huge").is_err());
        assert!(parse_ladder("99999p").is_err());
        let custom = parse_ladder("720p:3500k,360p").unwrap();
        assert_eq!(custom.iter().map(|r| r.video_kbps).collect::<Vec<_>>(), vec![3500, kbps_for(360)]);
        assert!(parse_ladder("720p:fast").is_err());
        assert!(parse_ladder("720p:50k").is_err(), "bitrates are bounded like the CRD's");
        let fit = fit_to_source(&l, Some(480));
        assert_eq!(fit.iter().map(|r| r.height).collect::<Vec<_>>(), vec![480, 360]);
        let tiny = fit_to_source(&l, Some(241));
        assert_eq!(tiny.iter().map(|r| r.height).collect::<Vec<_>>(), vec![240]);
        assert_eq!(fit_to_source(&l, None).len(), 3);
    }

    #[test]
    fn ffmpeg_args_align_keyframes_and_map_every_rendition() {
        let l = parse_ladder("720p,360p").unwrap();
        let args = ffmpeg_args(&l, "veryfast", "/tmp/x", true).join(" ");
        assert!(args.contains("split=3[s0][s1][th]"));
        assert!(
            args.contains("gte(t-prev_selected_t,10)") && args.ends_with("/tmp/x/thumb.jpg"),
            "a thumbnail every 10 s"
        );
        assert!(args.contains("-force_key_frames expr:gte(t,n_forced*1) -sc_threshold 0"));
        assert!(args.contains("-var_stream_map v:0,a:0,name:720p v:1,a:1,name:360p"));
        assert!(args.contains("-tune zerolatency"));
        assert!(args.contains("-hls_time 1"));
        assert!(args.contains("independent_segments+program_date_time"));
        let silent = ffmpeg_args(&l, "veryfast", "/tmp/x", false).join(" ");
        assert!(silent.contains("-var_stream_map v:0,name:720p v:1,name:360p") && !silent.contains("0:a:0"));
    }
}
