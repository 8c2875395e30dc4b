//! The adaptive ladder: which renditions to encode and the ffmpeg arguments that make them.

use onair_domain::LadderLevel;

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

/// The renditions encoded at `level` from a (source-fitted) ladder; empty for passthrough.
/// (One machine's `Reduced` is the lowest rendition alone: there is no separate source pod.)
pub fn pick(level: LadderLevel, fitted: &[Rendition]) -> Vec<Rendition> {
    match level {
        LadderLevel::Passthrough => Vec::new(),
        LadderLevel::Reduced => fitted.iter().min_by_key(|r| r.height).cloned().into_iter().collect(),
        LadderLevel::Full => fitted.to_vec(),
    }
}

/// The name of the passthrough variant (the source, remuxed).
pub const SOURCE: &str = "source";

/// Where an encoder's HLS goes: the worker's own media dir, or (a transcode pod) its ingest
/// pod's origin over HTTP.
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    /// A folder, or the origin's upload URL for the stream.
    pub dir: &'a str,
    pub upload: Option<Upload<'a>>,
    /// Keep the publisher's timestamps (`-copyts`): variants made by different processes (split
    /// roles) then share one timeline, so players switch between them cleanly.
    pub shared_clock: bool,
    /// Also write `thumb.jpg` (the discovery thumbnail) next to the playlists.
    pub thumbnail: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    /// The transcoder's name: its master playlist is `master-{part}.m3u8`.
    pub part: &'a str,
    pub token: &'a str,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The input half every encoder shares: progress on stderr, FLV on stdin.
fn input_args(out: &Output, decode_keyframes_only: bool) -> Vec<String> {
    let mut a = strings(&["-hide_banner", "-loglevel", "warning", "-stats_period", "1", "-progress", "pipe:2"]);
    // A restarted encoder overwrites the thumbnail its predecessor left (without `-y` ffmpeg
    // refuses to start).
    a.push("-y".into());
    if decode_keyframes_only {
        // Passthrough decodes only for the thumbnail, and a keyframe every few seconds is enough.
        a.extend(strings(&["-skip_frame", "nokey"]));
    }
    if out.shared_clock {
        a.push("-copyts".into());
    }
    a.extend(strings(&["-fflags", "+genpts", "-f", "flv", "-i", "pipe:0"]));
    a
}

/// The discovery thumbnail: the first frame at once, then one every 10 s, 360 px high.
const THUMB_SELECT: &str = "select='isnan(prev_selected_t)+gte(t-prev_selected_t,10)',scale=-2:360";

/// `thumb.jpg` from `source`: a filter graph output already selected and scaled, or the
/// input's video (selected and scaled here).
fn thumbnail_output(dir: &str, source: &str) -> Vec<String> {
    let mut a = strings(&["-map", source]);
    if source == "0:v:0" {
        a.extend(["-vf".into(), THUMB_SELECT.into()]);
    }
    a.extend(strings(&["-fps_mode", "vfr", "-c:v", "mjpeg", "-q:v", "5", "-f", "image2", "-update", "1"]));
    a.extend(strings(&["-atomic_writing", "1"]));
    a.push(format!("{dir}/thumb.jpg"));
    a
}

/// ffmpeg arguments for passthrough: FLV on stdin -> the source's own H.264/AAC in HLS, no
/// encode (segments cut at the publisher's keyframes); only keyframes are decoded, for the
/// thumbnail.
pub fn passthrough_args(out: &Output, has_audio: bool) -> Vec<String> {
    let mut a = input_args(out, out.thumbnail);
    a.extend(strings(&["-map", "0:v:0"]));
    if has_audio {
        a.extend(strings(&["-map", "0:a:0"]));
    }
    a.extend(strings(&["-c", "copy"]));
    a.extend(hls_output(out, if has_audio { format!("v:0,a:0,name:{SOURCE}") } else { format!("v:0,name:{SOURCE}") }));
    if out.thumbnail {
        a.extend(thumbnail_output(out.dir, "0:v:0"));
    }
    a
}

/// The HLS muxer settings every ladder shares, writing `{dir}/{variant}/index.m3u8`.
fn hls_output(out: &Output, var_stream_map: String) -> Vec<String> {
    let flags = match out.upload {
        // Over HTTP a temporary file cannot be renamed; the origin writes atomically instead.
        Some(_) => "independent_segments+program_date_time+delete_segments",
        None => "independent_segments+program_date_time+delete_segments+temp_file",
    };
    let mut a = strings(&["-f", "hls", "-hls_time", "1", "-hls_list_size", "6", "-hls_delete_threshold", "4"]);
    a.extend(strings(&["-hls_flags", flags, "-hls_segment_type", "mpegts"]));
    match out.upload {
        Some(up) => {
            a.extend(["-master_pl_name".into(), format!("master-{}.m3u8", up.part)]);
            // Numbered from the clock: a restarted transcoder starts a new playlist (ffmpeg cannot
            // read one back through the origin's token check) without reusing a segment name.
            a.extend(strings(&["-hls_start_number_source", "epoch"]));
            a.extend(strings(&["-method", "PUT", "-http_persistent", "1", "-ignore_io_errors", "1"]));
            let token = onair_domain::contracts::http::INTERNAL_TOKEN_HEADER;
            let part = crate::transcoders::TRANSCODER_PART_HEADER;
            a.extend(["-headers".into(), format!("{token}: {}\r\n{part}: {}\r\n", up.token, up.part)]);
        }
        None => a.extend(strings(&["-master_pl_name", "master.m3u8"])),
    }
    a.extend(["-var_stream_map".into(), var_stream_map]);
    let dir = out.dir;
    let segment = match out.upload {
        Some(up) => format!("{dir}/%v/seg_{}_%05d.ts", up.part),
        None => format!("{dir}/%v/seg_%05d.ts"),
    };
    a.extend(["-hls_segment_filename".into(), segment, format!("{dir}/%v/index.m3u8")]);
    a
}

/// The source split once per rendition and scaled (`[v0]`, `[v1]`, ...), plus one more branch
/// for the discovery thumbnail (`[thumb]`) when wanted.
fn scale_graph(ladder: &[Rendition], thumbnail: bool) -> String {
    let n = ladder.len();
    let splits: String = (0..n).map(|i| format!("[s{i}]")).collect();
    let thumb = if thumbnail { "[th]" } else { "" };
    let mut filter = format!("[0:v]split={}{splits}{thumb}", n + usize::from(thumbnail));
    for (i, r) in ladder.iter().enumerate() {
        filter.push_str(&format!(";[s{i}]scale=-2:{}[v{i}]", r.height));
    }
    if thumbnail {
        filter.push_str(&format!(";[th]{THUMB_SELECT}[thumb]"));
    }
    filter
}

/// The encoder every rendition uses.
fn x264(preset: &str) -> Vec<String> {
    let mut a = strings(&["-c:v", "libx264", "-preset"]);
    a.push(preset.to_string());
    a.extend(strings(&[
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
    ]));
    a
}

const AAC: &[&str] = &["-c:a", "aac", "-ac", "2", "-ar", "48000"];

/// Where an encoder's LL-HLS renditions go: one chunked PUT of fragmented MP4 each, to the
/// stream's origin (`ll.rs`), on one machine or from a transcode pod to its ingest pod.
#[derive(Debug, Clone, Copy)]
pub struct LlTarget<'a> {
    /// `http://{origin}/internal/streams/{id}/ll`: a rendition PUTs to `{base}/{name}`.
    pub base: &'a str,
    pub token: &'a str,
    /// A transcode pod's part, sent as on its HLS uploads.
    pub part: Option<&'a str>,
}

/// CMAF fragments, the moov written with the first one (`delay_moov`: AAC's priming delay then
/// goes into an edit list instead of a warning per rendition per start).
const LL_MOVFLAGS: &str = "empty_moov+delay_moov+default_base_moof+frag_keyframe+cmaf";

/// One rendition as fragmented MP4 (a fragment every 200 ms and at every keyframe: the LL-HLS
/// parts), flushed as each fragment is cut, streamed in one chunked PUT.
fn ll_output(target: &LlTarget, name: &str) -> Vec<String> {
    let mut a = strings(&["-f", "mp4", "-movflags", LL_MOVFLAGS]);
    a.extend(strings(&["-frag_duration", "200000", "-flush_packets", "1"]));
    a.extend(strings(&["-method", "PUT", "-chunked_post", "1"]));
    let token = onair_domain::contracts::http::INTERNAL_TOKEN_HEADER;
    let mut headers = format!("{token}: {}\r\n", target.token);
    if let Some(part) = target.part {
        headers.push_str(&format!("{}: {part}\r\n", crate::transcoders::TRANSCODER_PART_HEADER));
    }
    a.extend(["-headers".into(), headers, format!("{}/{name}", target.base.trim_end_matches('/'))]);
    a
}

/// LL-HLS passthrough: the source's own H.264/AAC as fragmented MP4, no encode.
pub fn ll_passthrough_args(out: &Output, target: &LlTarget, has_audio: bool) -> Vec<String> {
    let mut a = input_args(out, out.thumbnail);
    a.extend(strings(&["-map", "0:v:0"]));
    if has_audio {
        a.extend(strings(&["-map", "0:a:0"]));
    }
    a.extend(strings(&["-c", "copy"]));
    a.extend(ll_output(target, SOURCE));
    if out.thumbnail {
        a.extend(thumbnail_output(out.dir, "0:v:0"));
    }
    a
}

/// LL-HLS ladder: the same split, scale and keyframe instants as the HLS ladder, each rendition
/// its own output (so its own encoder options) streamed to the origin.
pub fn ll_ffmpeg_args(
    ladder: &[Rendition],
    preset: &str,
    out: &Output,
    target: &LlTarget,
    has_audio: bool,
) -> Vec<String> {
    let mut a = input_args(out, false);
    a.extend(["-filter_complex".into(), scale_graph(ladder, out.thumbnail)]);
    for (i, r) in ladder.iter().enumerate() {
        a.extend(["-map".into(), format!("[v{i}]")]);
        if has_audio {
            a.extend(strings(&["-map", "0:a:0"]));
        }
        a.extend(x264(preset));
        a.extend([
            "-b:v".into(),
            format!("{}k", r.video_kbps),
            "-maxrate:v".into(),
            format!("{}k", r.video_kbps * 107 / 100),
            "-bufsize:v".into(),
            format!("{}k", r.video_kbps * 3 / 2),
        ]);
        if has_audio {
            a.extend(strings(AAC));
            a.extend(["-b:a".into(), format!("{}k", r.audio_kbps)]);
        }
        a.extend(ll_output(target, &r.name));
    }
    if out.thumbnail {
        a.extend(thumbnail_output(out.dir, "[thumb]"));
    }
    a
}

/// ffmpeg arguments: FLV on stdin -> keyframe-aligned HLS ladder, 1 s segments.
pub fn ffmpeg_args(ladder: &[Rendition], preset: &str, out: &Output, has_audio: bool) -> Vec<String> {
    let mut a = input_args(out, false);
    a.extend(["-filter_complex".into(), scale_graph(ladder, out.thumbnail)]);
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
    a.extend(x264(preset));
    if has_audio {
        a.extend(strings(AAC));
    }
    let map: Vec<String> = ladder
        .iter()
        .enumerate()
        .map(|(i, r)| if has_audio { format!("v:{i},a:{i},name:{}", r.name) } else { format!("v:{i},name:{}", r.name) })
        .collect();
    a.extend(hls_output(out, map.join(" ")));
    if out.thumbnail {
        a.extend(thumbnail_output(out.dir, "[thumb]"));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_pick_renditions_and_passthrough_copies_the_source() {
        let l = parse_ladder("720p,480p,360p").unwrap();
        assert_eq!(pick(LadderLevel::Full, &l).len(), 3);
        assert_eq!(pick(LadderLevel::Reduced, &l).iter().map(|r| r.height).collect::<Vec<_>>(), [360]);
        assert!(pick(LadderLevel::Passthrough, &l).is_empty());
        let a = passthrough_args(&local("/m/s"), true).join(" ");
        assert!(a.contains("-c copy") && a.contains("name:source") && !a.contains("libx264"), "{a}");
        assert!(a.contains("/m/s/%v/index.m3u8") && a.ends_with("/m/s/thumb.jpg"), "{a}");
        assert!(a.contains("-y -skip_frame nokey -fflags"), "decodes keyframes only, overwrites: {a}");
        assert!(!a.contains("-copyts"), "one process makes every variant on one machine");
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
        let args = ffmpeg_args(&l, "veryfast", &local("/tmp/x"), true).join(" ");
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
        assert!(args.contains("temp_file") && args.contains("-master_pl_name master.m3u8"));
        let silent = ffmpeg_args(&l, "veryfast", &local("/tmp/x"), false).join(" ");
        assert!(silent.contains("-var_stream_map v:0,name:720p v:1,name:360p") && !silent.contains("0:a:0"));
    }

    #[test]
    fn ll_renditions_are_fragmented_mp4_streamed_to_the_origin() {
        let l = parse_ladder("720p,360p").unwrap();
        let target = LlTarget { base: "http://127.0.0.1:8090/internal/streams/s/ll", token: "tok", part: None };
        let args = ll_ffmpeg_args(&l, "veryfast", &local("/tmp/x"), &target, true);
        let joined = args.join(" ");
        assert!(joined.contains("split=3[s0][s1][th]") && joined.ends_with("/tmp/x/thumb.jpg"), "{joined}");
        // Each rendition: its own encoder with aligned keyframes, fMP4 in 200 ms fragments, a PUT.
        for (i, name) in ["720p", "360p"].iter().enumerate() {
            let url = format!("http://127.0.0.1:8090/internal/streams/s/ll/{name}");
            let at = args.iter().position(|a| *a == url).unwrap_or_else(|| panic!("{url} in {joined}"));
            let map = args.iter().position(|a| *a == format!("[v{i}]")).unwrap();
            let own = args[map..at].join(" ");
            assert!(own.contains("-c:v libx264") && own.contains("-force_key_frames expr:gte(t,n_forced*1)"), "{own}");
            assert!(own.contains("-frag_duration 200000 -flush_packets 1 -method PUT -chunked_post 1"), "{own}");
            assert!(own.contains(LL_MOVFLAGS) && own.contains("-c:a aac"));
            assert_eq!(args[at - 1], "x-onair-internal-token: tok\r\n");
        }
        assert!(!joined.contains("-f hls"));
        let pass = ll_passthrough_args(&local("/tmp/x"), &target, false).join(" ");
        assert!(pass.contains("-c copy -f mp4") && pass.contains("/ll/source") && !pass.contains("0:a:0"), "{pass}");
        let pod = LlTarget { part: Some("t1"), ..target };
        let args = ll_ffmpeg_args(&l, "veryfast", &local("/tmp/x"), &pod, false);
        assert!(args.iter().any(|a| a == "x-onair-internal-token: tok\r\nx-onair-transcoder-part: t1\r\n"));
    }

    fn local(dir: &str) -> Output<'_> {
        Output { dir, upload: None, shared_clock: false, thumbnail: true }
    }

    #[test]
    fn a_transcode_pod_uploads_its_part_on_the_shared_clock_without_a_thumbnail() {
        let l = parse_ladder("480p").unwrap();
        let out = Output {
            dir: "http://ingest:8090/internal/streams/s/hls",
            upload: Some(Upload { part: "t1", token: "tok" }),
            shared_clock: true,
            thumbnail: false,
        };
        let args = ffmpeg_args(&l, "superfast", &out, true);
        let joined = args.join(" ");
        assert!(joined.contains("-copyts -fflags +genpts"));
        assert!(joined.contains("split=1[s0];[s0]scale=-2:480[v0]") && !joined.contains("thumb"), "{joined}");
        assert!(joined.contains("-master_pl_name master-t1.m3u8 -hls_start_number_source epoch -method PUT"));
        assert!(!joined.contains("temp_file"), "no renames over HTTP");
        assert!(args.iter().any(|a| a == "x-onair-internal-token: tok\r\nx-onair-transcoder-part: t1\r\n"), "{joined}");
        assert!(joined.contains("/s/hls/%v/seg_t1_%05d.ts"), "{joined}");
        assert!(joined.ends_with("http://ingest:8090/internal/streams/s/hls/%v/index.m3u8"));
    }
}
