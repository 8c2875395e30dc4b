//! The HLS origin: playlists and segments with the headers a CDN and players need, and
//! viewer counting from playlist requests.

use std::path::{Component, PathBuf};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http::{HeaderValue, StatusCode, header};
use onair_domain::StreamId;
use onair_domain::contracts::redis_keys;
use onair_web::HttpError;
use serde::Deserialize;

use crate::config::Role;
use crate::worker::WorkerState;

#[derive(Deserialize)]
pub struct PlaybackQuery {
    /// The player's viewer session id; each playlist request counts it as watching.
    pub session: Option<String>,
}

fn content_type(path: &str) -> Option<&'static str> {
    match path.rsplit('.').next()? {
        "m3u8" => Some("application/vnd.apple.mpegurl"),
        "ts" => Some("video/mp2t"),
        "m4s" => Some("video/iso.segment"),
        "mp4" => Some("video/mp4"),
        "jpg" => Some("image/jpeg"),
        _ => None,
    }
}

/// `GET /hls/{stream_id}/{*path}`.
pub async fn serve(
    State(state): State<WorkerState>,
    Path((stream_id, path)): Path<(String, String)>,
    Query(q): Query<PlaybackQuery>,
) -> Result<Response, HttpError> {
    let not_found = || HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such playlist or segment");
    let stream: StreamId = stream_id.parse().map_err(|_| not_found())?;
    let rel = PathBuf::from(&path);
    // Only plain names below the stream's folder: no `..`, no absolute paths.
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(not_found());
    }
    let ctype = content_type(&path).ok_or_else(not_found)?;
    let stream_dir = state.config.media_dir.join(stream.to_string());
    // An ingest pod's master playlist is made from the parts that are live right now.
    let bytes = if path == "master.m3u8" && state.config.role == Role::Ingest {
        let resolution = state.feed(stream).and_then(|f| f.resolution());
        crate::origin::merged_master(&stream_dir, resolution).await.map(String::into_bytes).ok_or_else(not_found)?
    } else {
        tokio::fs::read(stream_dir.join(&rel)).await.map_err(|_| not_found())?
    };
    let playlist = path.ends_with(".m3u8");
    if playlist && let Some(session) = q.session.as_deref().filter(|s| valid_session(s)) {
        record_viewer(&state, stream, session).await;
    }
    let mut res = (StatusCode::OK, Body::from(bytes)).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    // Playlists change every segment; segments never change once written.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if playlist { "public, max-age=1" } else { "public, max-age=31536000, immutable" }),
    );
    Ok(res)
}

fn valid_session(s: &str) -> bool {
    (8..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The same presence records the apiserver's heartbeat writes (see `onair-domain` contracts).
async fn record_viewer(state: &WorkerState, stream: StreamId, session: &str) {
    let prefix = &state.config.redis.redis_prefix;
    let sessions = redis_keys::viewer_sessions(prefix, stream);
    let uniq = redis_keys::unique_viewers(prefix, stream);
    let res: redis::RedisResult<()> = redis::pipe()
        .zadd(&sessions, session, Utc::now().timestamp_millis())
        .ignore()
        .expire(&sessions, 86_400)
        .ignore()
        .pfadd(&uniq, session)
        .ignore()
        .expire(&uniq, 86_400)
        .ignore()
        .query_async(&mut state.redis.clone())
        .await;
    if let Err(e) = res {
        tracing::warn!(stream_id = %stream, error = %e, "could not record viewer");
    }
}
