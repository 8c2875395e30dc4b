//! The ingest pod as its stream's HLS origin when roles are split. Transcode pods upload their
//! renditions here with ffmpeg's HLS muxer over HTTP (`PUT` playlists and segments, `DELETE`
//! the ones that slid out), report what they run every few seconds, and viewers get one master
//! playlist merged from the parts that are still live.

use std::collections::{HashMap, HashSet};
use std::path::{Path as FsPath, PathBuf};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::response::IntoResponse as _;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use onair_domain::StreamId;
use onair_web::HttpError;

use crate::worker::{WorkerState, internal_stream};
use onair_domain::contracts::media::{Assignment, Parts, TranscoderReport, TranscoderState};

/// Which transcode pod an upload comes from (ffmpeg sends it with the internal token).
pub const TRANSCODER_PART_HEADER: &str = "x-onair-transcoder-part";

/// A transcoder that has not reported for this long is gone (crashed, or removed by the
/// operator): its renditions leave the merged master playlist.
pub const REPORT_TTL: Duration = Duration::from_secs(15);
/// A variant whose playlist has not changed for this long is not offered to new players.
const STALE_VARIANT: Duration = Duration::from_secs(8);
/// The largest upload: a 1 s segment of a 20 Mbps rendition is about 2.5 MB.
pub const MAX_UPLOAD_BYTES: usize = 32 << 20;

/// An ingest pod's transcoders by stream: what each reported (and when), what the operator
/// assigned each, and the renditions it took away (ended: their uploads are refused, so a
/// transcoder still finishing cannot reopen a playlist players were told is over).
#[derive(Default)]
pub struct Transcoders(std::sync::Mutex<HashMap<StreamId, StreamTranscoders>>);

#[derive(Default)]
struct StreamTranscoders {
    reports: HashMap<String, (Instant, TranscoderReport)>,
    assignment: Option<Parts>,
    ended: HashSet<String>,
    /// Held while a playlist is uploaded and while renditions are ended, so an upload that
    /// passed the checks cannot land after the end marker.
    gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Transcoders {
    /// For writes: the stream's entry, made if absent.
    fn with<T>(&self, stream: StreamId, f: impl FnOnce(&mut StreamTranscoders) -> T) -> T {
        f(self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(stream).or_default())
    }

    /// For reads: nothing is made for a stream nobody wrote about.
    fn read<T>(&self, stream: StreamId, f: impl FnOnce(&mut StreamTranscoders) -> T) -> Option<T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&stream).map(f)
    }

    /// Record a report; the part's assignment, when the operator gave one.
    fn record(&self, stream: StreamId, part: String, report: TranscoderReport) -> Option<Vec<String>> {
        self.with(stream, |s| {
            let assigned = s.assignment.as_ref().map(|a| a.get(&part).cloned().unwrap_or_default());
            s.reports.insert(part, (Instant::now(), report));
            assigned
        })
    }

    /// The operator's assignment; what it no longer has, it returns (to be ended).
    fn assign(&self, stream: StreamId, parts: Parts) -> Vec<String> {
        self.with(stream, |s| {
            let now: HashSet<&String> = parts.values().flatten().collect();
            let gone: Vec<String> = match &s.assignment {
                Some(old) => old.values().flatten().filter(|r| !now.contains(r)).cloned().collect(),
                None => Vec::new(),
            };
            s.ended.retain(|r| !now.contains(r));
            s.ended.extend(gone.iter().cloned());
            s.assignment = Some(parts);
            gone
        })
    }

    /// The stream's gate (see `StreamTranscoders::gate`).
    pub fn gate(&self, stream: StreamId) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        self.with(stream, |s| s.gate.clone())
    }

    /// The stream is over: every rendition is ended, so a transcoder still flushing cannot
    /// reopen a playlist players were told is finished.
    pub fn end_all(&self, stream: StreamId, variants: impl IntoIterator<Item = String>) {
        self.with(stream, |s| s.ended.extend(variants));
    }

    fn is_ended(&self, stream: StreamId, variant: &str) -> bool {
        self.read(stream, |s| s.ended.contains(variant)).unwrap_or(false)
    }

    /// Whether `part` may write `file` (a path below the stream): its own master part, or a
    /// rendition the assignment gives it (any, before there is an assignment).
    fn may_write(&self, stream: StreamId, part: &str, file: &str) -> bool {
        let variant = file.split('/').next().unwrap_or_default();
        if !is_rendition_name(variant) {
            return file == format!("master-{part}.m3u8");
        }
        self.read(stream, |s| match &s.assignment {
            None => true,
            Some(a) => a.get(part).is_some_and(|r| r.iter().any(|r| r == variant)),
        })
        .unwrap_or(true)
    }

    /// The live transcoders of a stream, by part name.
    pub fn live(&self, stream: StreamId) -> Vec<TranscoderState> {
        self.read(stream, |s| {
            s.reports.retain(|_, (at, _)| at.elapsed() < REPORT_TTL);
            let mut out: Vec<TranscoderState> = s
                .reports
                .iter()
                .map(|(part, (_, r))| TranscoderState {
                    part: part.clone(),
                    renditions: r.renditions.clone(),
                    encode_speed: r.encode_speed,
                })
                .collect();
            out.sort_by(|a, b| a.part.cmp(&b.part));
            out
        })
        .unwrap_or_default()
    }

    pub fn forget(&self, stream: StreamId) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&stream);
    }
}

fn is_part_name(s: &str) -> bool {
    (1..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A rendition a transcoder may write: `720p`, never `source` (the ingest pod's own).
fn is_rendition_name(s: &str) -> bool {
    s.len() >= 4 && s.len() <= 5 && s.ends_with('p') && s[..s.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

/// Where an upload may land below the stream's folder: a part's master playlist, or a
/// rendition's playlist or segment. Anything else is refused (no `..`, no other files).
pub fn upload_path(path: &str) -> Option<PathBuf> {
    let mut parts = path.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(file), None, None) => {
            let part = file.strip_prefix("master-")?.strip_suffix(".m3u8")?;
            is_part_name(part).then(|| PathBuf::from(file))
        }
        (Some(variant), Some(file), None) if is_rendition_name(variant) => {
            // `seg_{part}_{n}.ts`: two pods that both made a rendition (one taking it over)
            // never write the same segment name.
            let number = |n: &str| !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit());
            let segment = file
                .strip_prefix("seg_")
                .and_then(|f| f.strip_suffix(".ts"))
                .and_then(|f| f.split_once('_'))
                .is_some_and(|(part, n)| is_part_name(part) && number(n));
            (file == "index.m3u8" || segment).then(|| PathBuf::from(variant).join(file))
        }
        _ => None,
    }
}

fn bad_path() -> HttpError {
    HttpError::new(StatusCode::BAD_REQUEST, "invalid_path", "not a rendition playlist, segment or master part")
}

fn stream_file(state: &WorkerState, stream: StreamId, path: &str) -> Result<PathBuf, HttpError> {
    let rel = upload_path(path).ok_or_else(bad_path)?;
    Ok(state.config.media_dir.join(stream.to_string()).join(rel))
}

/// `PUT /internal/streams/{id}/hls/{*path}`: a transcoder's playlist or segment. Written to a
/// temporary name and renamed, so a viewer never reads half a segment.
pub async fn upload(
    State(state): State<WorkerState>,
    Path((stream_id, path)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, HttpError> {
    let gate = state.transcoders.gate(internal_stream(&state, &headers, &stream_id)?);
    // Playlists are checked and written under the gate; segments need not be.
    let _held = if path.ends_with(".m3u8") { Some(gate.lock().await) } else { None };
    let (stream, file) = writable(&state, &headers, &stream_id, &path)?;
    let io = |e: std::io::Error| {
        tracing::warn!(stream_id = %stream, error = %e, "upload failed");
        HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "could not store the upload")
    };
    if let Some(dir) = file.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    let tmp = file.with_extension(format!("{}.part", uuid::Uuid::new_v4().simple()));
    tokio::fs::write(&tmp, &body).await.map_err(io)?;
    tokio::fs::rename(&tmp, &file).await.map_err(io)?;
    Ok(StatusCode::CREATED)
}

/// `DELETE /internal/streams/{id}/hls/{*path}`: a segment that slid out of its playlist.
pub async fn remove(
    State(state): State<WorkerState>,
    Path((stream_id, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, HttpError> {
    let (_, file) = writable(&state, &headers, &stream_id, &path)?;
    let _ = tokio::fs::remove_file(file).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The checks every upload and delete passes: the token, the path, the part (a header ffmpeg
/// sends), a rendition not taken away, and (while one moves between pods) only the part it is
/// assigned to.
fn writable(
    state: &WorkerState,
    headers: &HeaderMap,
    stream_id: &str,
    path: &str,
) -> Result<(StreamId, PathBuf), HttpError> {
    let stream = internal_stream(state, headers, stream_id)?;
    let file = stream_file(state, stream, path)?;
    let part = headers.get(TRANSCODER_PART_HEADER).and_then(|v| v.to_str().ok()).filter(|p| is_part_name(p));
    let Some(part) = part else {
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "missing_part",
            "uploads name their transcoder part in x-onair-transcoder-part",
        ));
    };
    if state.transcoders.is_ended(stream, path.split('/').next().unwrap_or_default()) {
        return Err(HttpError::new(StatusCode::GONE, "rendition_ended", "this rendition was taken away"));
    }
    if !state.transcoders.may_write(stream, part, path) {
        return Err(HttpError::new(StatusCode::CONFLICT, "not_assigned", "this part may not write that file"));
    }
    Ok((stream, file))
}

/// `POST /internal/streams/{id}/transcoders/{part}`: a transcoder's renditions and speed. The
/// answer carries its assignment (204: the operator has not given one yet).
pub async fn report(
    State(state): State<WorkerState>,
    Path((stream_id, part)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::response::Response, HttpError> {
    let stream = internal_stream(&state, &headers, &stream_id)?;
    if !is_part_name(&part) {
        return Err(bad_path());
    }
    let report: TranscoderReport = serde_json::from_slice(&body).map_err(|_| {
        HttpError::new(StatusCode::BAD_REQUEST, "invalid_report", "expected {\"renditions\": [..], \"encodeSpeed\": n}")
    })?;
    if report.renditions.len() > 16 || !report.renditions.iter().all(|r| is_rendition_name(r)) {
        return Err(HttpError::new(StatusCode::BAD_REQUEST, "invalid_report", "renditions are names like 720p"));
    }
    Ok(match state.transcoders.record(stream, part, report) {
        Some(renditions) => axum::Json(Assignment { renditions }).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `PUT /internal/streams/{id}/transcoders` (the operator): which part encodes which
/// renditions, `{"t0": ["720p"], "t1": ["480p", "360p"]}`. Renditions no longer assigned are
/// ended for their players.
pub async fn assign(
    State(state): State<WorkerState>,
    Path(stream_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, HttpError> {
    let stream = internal_stream(&state, &headers, &stream_id)?;
    let bad = || HttpError::new(StatusCode::BAD_REQUEST, "invalid_assignment", "expected {\"t0\": [\"720p\"], ...}");
    let parts: Parts = serde_json::from_slice(&body).map_err(|_| bad())?;
    let all: Vec<&String> = parts.values().flatten().collect();
    let unique = all.iter().collect::<HashSet<_>>().len() == all.len();
    if parts.len() > 16
        || !unique
        || !parts.iter().all(|(p, r)| is_part_name(p) && r.len() <= 16 && r.iter().all(|r| is_rendition_name(r)))
    {
        return Err(bad());
    }
    let dir = state.config.media_dir.join(stream.to_string());
    let gate = state.transcoders.gate(stream);
    let _held = gate.lock().await;
    for gone in state.transcoders.assign(stream, parts) {
        tracing::info!(stream_id = %stream, rendition = %gone, "rendition taken away; its playlist ends");
        end_playlist(&dir.join(&gone).join("index.m3u8")).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Append `#EXT-X-ENDLIST` to a media playlist, once (written aside and renamed: a player never
/// reads half a playlist).
pub async fn end_playlist(playlist: &FsPath) {
    if let Ok(mut text) = tokio::fs::read_to_string(playlist).await
        && !text.contains("#EXT-X-ENDLIST")
    {
        text.push_str("#EXT-X-ENDLIST\n");
        let tmp = playlist.with_extension("m3u8.end");
        if tokio::fs::write(&tmp, text).await.is_ok() {
            let _ = tokio::fs::rename(&tmp, playlist).await;
        }
    }
}

/// One `#EXT-X-STREAM-INF` entry of a master playlist.
#[derive(Debug, Clone, PartialEq)]
struct Variant {
    attributes: String,
    uri: String,
    bandwidth: u64,
}

fn parse_master(text: &str) -> Vec<Variant> {
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    while let Some(line) = lines.next() {
        if let Some(attributes) = line.strip_prefix("#EXT-X-STREAM-INF:")
            && let Some(uri) = lines.next()
        {
            let bandwidth = attribute(attributes, "BANDWIDTH").and_then(|b| b.parse().ok()).unwrap_or(0);
            out.push(Variant { attributes: attributes.to_owned(), uri: uri.to_owned(), bandwidth });
        }
    }
    out
}

fn attribute<'a>(attributes: &'a str, name: &str) -> Option<&'a str> {
    split_attributes(attributes).into_iter().find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
}

/// `A=1,B="x,y"` into its items; quoted values (CODECS) may hold commas.
fn split_attributes(attributes: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in attributes.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&attributes[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&attributes[start..]);
    out
}

/// The peak bitrate of a variant's recent segments, from their sizes and `#EXTINF` durations:
/// a remuxed source's master entry carries only what ffmpeg guessed (often the audio alone).
async fn measured_bandwidth(variant_dir: &FsPath) -> Option<u64> {
    let text = tokio::fs::read_to_string(variant_dir.join("index.m3u8")).await.ok()?;
    let mut peak = 0f64;
    let mut duration = None;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = d.trim_end_matches(',').split(',').next().and_then(|d| d.parse::<f64>().ok());
        } else if !line.starts_with('#')
            && !line.trim().is_empty()
            && let Some(d) = duration.take().filter(|d| *d > 0.1)
            && let Ok(meta) = tokio::fs::metadata(variant_dir.join(line.trim())).await
        {
            peak = peak.max(meta.len() as f64 * 8.0 / d);
        }
    }
    (peak > 0.0).then_some((peak * 1.1) as u64)
}

/// Whether a media playlist is still being written: not ended, and changed within the
/// longer of `STALE_VARIANT` and three target durations (a source with long keyframe intervals
/// has long segments).
async fn live_playlist(playlist: &FsPath) -> bool {
    let Ok(text) = tokio::fs::read_to_string(playlist).await else { return false };
    let target = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
        .and_then(|d| d.trim().parse::<u64>().ok())
        .unwrap_or(1);
    let window = STALE_VARIANT.max(Duration::from_secs(target.saturating_mul(3)));
    let age = tokio::fs::metadata(playlist).await.and_then(|m| m.modified()).ok().and_then(|m| m.elapsed().ok());
    !text.contains("#EXT-X-ENDLIST") && age.is_some_and(|a| a < window)
}

/// The master playlist viewers get from an ingest pod: the source it remuxes plus every
/// uploaded part's renditions whose playlists are live (updated lately, not ended), best first.
/// The source's entry is made here: ffmpeg cannot know a remuxed stream's bitrate, so it is
/// measured from the segments, and the size comes from the publisher's metadata.
pub async fn merged_master(stream_dir: &FsPath, source_resolution: Option<(u32, u32)>) -> Option<String> {
    let mut variants: Vec<Variant> = Vec::new();
    let mut version = 3;
    let source_dir = stream_dir.join(crate::ladder::SOURCE);
    if live_playlist(&source_dir.join("index.m3u8")).await
        && let Some(bandwidth) = measured_bandwidth(&source_dir).await
    {
        let mut attributes = format!("BANDWIDTH={bandwidth}");
        if let Some((w, h)) = source_resolution {
            attributes.push_str(&format!(",RESOLUTION={w}x{h}"));
        }
        variants.push(Variant { attributes, uri: format!("{}/index.m3u8", crate::ladder::SOURCE), bandwidth });
    }
    let mut entries = tokio::fs::read_dir(stream_dir).await.ok()?;
    while let Ok(Some(e)) = entries.next_entry().await {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("master-") && name.ends_with(".m3u8")) {
            continue;
        }
        let Ok(text) = tokio::fs::read_to_string(e.path()).await else { continue };
        if let Some(v) =
            text.lines().find_map(|l| l.strip_prefix("#EXT-X-VERSION:")).and_then(|v| v.trim().parse().ok())
        {
            version = version.max(v);
        }
        for v in parse_master(&text) {
            let Some(variant) = v.uri.strip_suffix("/index.m3u8").filter(|d| is_rendition_name(d)) else { continue };
            if variants.iter().any(|o| o.uri == v.uri)
                || !live_playlist(&stream_dir.join(variant).join("index.m3u8")).await
            {
                continue;
            }
            variants.push(v);
        }
    }
    if variants.is_empty() {
        return None;
    }
    variants.sort_by_key(|v| std::cmp::Reverse(v.bandwidth));
    let mut out = format!("#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in variants {
        out.push_str(&format!("#EXT-X-STREAM-INF:{}\n{}\n", v.attributes, v.uri));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_land_only_on_renditions_and_master_parts() {
        assert_eq!(upload_path("720p/index.m3u8"), Some(PathBuf::from("720p/index.m3u8")));
        assert_eq!(upload_path("720p/seg_t1_1795490920.ts"), Some(PathBuf::from("720p/seg_t1_1795490920.ts")));
        assert_eq!(upload_path("master-t1.m3u8"), Some(PathBuf::from("master-t1.m3u8")));
        for bad in [
            "master.m3u8",
            "source/index.m3u8",
            "../x/index.m3u8",
            "720p/../../etc",
            "720p/seg_.ts",
            "720p/seg_t1_.ts",
            "720p/seg_1795490920.ts",
            "720p/seg_T1_1.ts",
            "720p/seg_1.ts/x",
            "720p/evil.sh",
            "thumb.jpg",
            "master-../x.m3u8",
            "master-T1.m3u8",
            "",
        ] {
            assert_eq!(upload_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn master_attributes_parse_with_quoted_commas() {
        let v = parse_master(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=515900,RESOLUTION=426x240,CODECS=\"avc1.42c015,mp4a.40.2\"\n240p/index.m3u8\n",
        );
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].bandwidth, v[0].uri.as_str()), (515_900, "240p/index.m3u8"));
        assert_eq!(attribute(&v[0].attributes, "CODECS"), Some("\"avc1.42c015,mp4a.40.2\""));
        assert_eq!(attribute(&v[0].attributes, "RESOLUTION"), Some("426x240"));
    }

    #[tokio::test]
    async fn the_merged_master_offers_live_parts_best_first_and_measures_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |p: &str, s: &[u8]| {
            let p = d.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, s).unwrap();
        };
        // ffmpeg's own master for the remuxed source is ignored (it has no bitrate to offer).
        write("master.m3u8", b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=75900,RESOLUTION=1280x720\nsource/index.m3u8\n");
        write("source/index.m3u8", b"#EXTM3U\n#EXTINF:1.000000,\nseg_00001.ts\n#EXTINF:2.000000,\nseg_00002.ts\n");
        write("source/seg_00001.ts", &vec![0u8; 500_000]); // 4 Mbps
        write("source/seg_00002.ts", &vec![0u8; 250_000]); // 1 Mbps
        write(
            "master-t0.m3u8",
            b"#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360\n360p/index.m3u8\n",
        );
        write("360p/index.m3u8", b"#EXTM3U\n#EXTINF:1.0,\nseg_1.ts\n");
        write(
            "master-t1.m3u8",
            b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720\n720p/index.m3u8\n\n#EXT-X-STREAM-INF:BANDWIDTH=1500000\n480p/index.m3u8\n",
        );
        write("720p/index.m3u8", b"#EXTM3U\n#EXTINF:1.0,\nseg_1.ts\n#EXT-X-ENDLIST\n"); // taken away
        // 480p's part never uploaded its playlist (its pod died before the first segment).
        let m = merged_master(d, Some((1280, 720))).await.unwrap();
        let uris: Vec<&str> = m.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(uris, ["source/index.m3u8", "360p/index.m3u8"], "{m}");
        assert!(m.contains("#EXT-X-VERSION:6"));
        assert!(m.contains("BANDWIDTH=4400000,RESOLUTION=1280x720\nsource/"), "peak of the source's segments: {m}");
        assert!(!m.contains("75900"));
        assert_eq!(merged_master(&d.join("nothing"), None).await, None);
    }
}
