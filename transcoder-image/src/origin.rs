//! The ingest pod as its stream's HLS origin when roles are split. Transcode pods upload their
//! renditions here with ffmpeg's HLS muxer over HTTP (`PUT` playlists and segments, `DELETE`
//! the ones that slid out), report what they run every few seconds, and viewers get one master
//! playlist merged from the parts that are still live (made in `playlists.rs`).

use std::collections::HashSet;
use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::response::IntoResponse as _;
use http::{HeaderMap, StatusCode};
use onair_domain::StreamId;
use onair_web::HttpError;

use crate::guard::internal_stream;
use crate::playlists;
use crate::state::WorkerState;
use crate::transcoders::{TRANSCODER_PART_HEADER, is_part_name, is_rendition_name};
use onair_domain::contracts::media::{Assignment, Parts, TranscoderReport};

/// The largest upload: a 1 s segment of a 20 Mbps rendition is about 2.5 MB.
pub const MAX_UPLOAD_BYTES: usize = 32 << 20;

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
    onair_web::RawBody(body): onair_web::RawBody,
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
    onair_web::RawBody(body): onair_web::RawBody,
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
pub async fn put_assignment(
    State(state): State<WorkerState>,
    Path(stream_id): Path<String>,
    headers: HeaderMap,
    onair_web::RawBody(body): onair_web::RawBody,
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
    for gone in state.transcoders.replace_assignment(stream, parts) {
        tracing::info!(stream_id = %stream, rendition = %gone, "rendition taken away; its playlist ends");
        state.ll.end_renditions(stream, std::slice::from_ref(&gone));
        playlists::end_playlist(&dir.join(&gone).join("index.m3u8")).await;
    }
    Ok(StatusCode::NO_CONTENT)
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
}
