//! The HLS origin: playlists and segments with the headers a CDN and players need, and
//! viewer counting from playlist requests.

use std::path::{Component, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http::{HeaderValue, StatusCode, header};
use onair_domain::StreamId;
use onair_domain::contracts::redis_keys;
use onair_web::HttpError;
use serde::Deserialize;

use crate::config::Role;
use crate::state::WorkerState;

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

fn not_found() -> HttpError {
    HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such playlist or segment")
}

/// `GET /hls/{stream_id}/{*path}`: a stream's playlists and media. A path inside the stream's
/// directory that starts `t/{token}/` is a signed link: the token is checked against
/// `--playback-keys` for this stream, then what follows it is served (the playlists' relative
/// URIs keep the token in front of them). A plain path plays streams whose channel does not ask
/// for signed links (403 `playback_token_required` otherwise).
pub async fn serve(
    State(state): State<WorkerState>,
    Path((stream_id, path)): Path<(String, String)>,
    Query(q): Query<PlaybackQuery>,
    RawQuery(raw): RawQuery,
) -> Result<Response, HttpError> {
    if let Some((token, rest)) = onair_playback_token::split_in_stream(&path) {
        let stream = verify_token(&state, &stream_id, token)?;
        return serve_stream(&state, stream, rest, q, raw).await;
    }
    let stream: StreamId = stream_id.parse().map_err(|_| not_found())?;
    if state.signed_only(stream) {
        state.metrics.playback_tokens_refused.inc();
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "playback_token_required",
            "this channel plays only from signed links: ask the API for one",
        ));
    }
    serve_stream(&state, stream, &path, q, raw).await
}

/// The stream a signed link opens, or 403 `invalid_playback_token`.
fn verify_token(state: &WorkerState, stream_id: &str, token: &str) -> Result<StreamId, HttpError> {
    let refused = |why: onair_playback_token::TokenError| {
        state.metrics.playback_tokens_refused.inc();
        // The id as asked (unchecked, so Debug-escaped).
        tracing::debug!(stream_id = ?stream_id, reason = %why, "playback token refused");
        HttpError::new(StatusCode::FORBIDDEN, "invalid_playback_token", "this playback link is not valid (or expired)")
    };
    let keys = state.playback_keys.as_ref().ok_or_else(|| refused(onair_playback_token::TokenError::NoKeys))?;
    // Tokens sign the canonical id (lowercase, hyphenated): any other spelling of it is refused,
    // so one stream has one signed path (and one cached copy at an edge).
    let stream = stream_id
        .parse::<StreamId>()
        .ok()
        .filter(|s| s.to_string() == stream_id)
        .ok_or_else(|| refused(onair_playback_token::TokenError::Malformed))?;
    keys.verify(token, stream_id, Utc::now().timestamp()).map_err(refused)?;
    Ok(stream)
}

async fn serve_stream(
    state: &WorkerState,
    stream: StreamId,
    path: &str,
    q: PlaybackQuery,
    raw: Option<String>,
) -> Result<Response, HttpError> {
    // The rewind window: recorded segments, from the recordings store.
    if let Some(rest) = path.strip_prefix("dvr/") {
        if rest == "master.m3u8"
            && let Some(session) = q.session.as_deref().filter(|s| onair_domain::contracts::viewer_session::is_valid(s))
        {
            record_viewer(state, stream, session).await;
        }
        return serve_dvr(state, stream, rest).await;
    }
    // The thumbnail stays a file in either mode.
    if state.config.low_latency() && path != "thumb.jpg" {
        let req = crate::ll::parse(path).ok_or_else(not_found)?;
        if matches!(req, crate::ll::Request::Master)
            && let Some(session) = q.session.as_deref().filter(|s| onair_domain::contracts::viewer_session::is_valid(s))
        {
            record_viewer(state, stream, session).await;
        }
        return serve_ll(state, stream, req, raw.as_deref()).await.ok_or_else(not_found);
    }
    let rel = PathBuf::from(path);
    // Only plain names below the stream's folder: no `..`, no absolute paths.
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(not_found());
    }
    let ctype = content_type(path).ok_or_else(not_found)?;
    let playlist = path.ends_with(".m3u8");
    let bytes = match read(state, stream, path).await {
        Some(b) => b,
        // A stream this worker holds (a publisher, or one reconnecting) is about to have it.
        None if playlist && state.holds(stream) => match wait_for_start(state, stream, path).await {
            Some(b) => b,
            None => return Ok(crate::ll::not_yet()),
        },
        // Unknown here, or ended and gone.
        None => return Err(not_found()),
    };
    if playlist
        && let Some(session) = q.session.as_deref().filter(|s| onair_domain::contracts::viewer_session::is_valid(s))
    {
        record_viewer(state, stream, session).await;
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

/// How long a playlist request for a stream whose publisher is connected, but whose first
/// segment is not out yet, is held: the encoder's start and first segment take 1-3 s, and a
/// viewer sent by a "went live" notification arrives exactly then.
const START_HOLD: Duration = Duration::from_secs(6);
const START_POLL: Duration = Duration::from_millis(100);

/// The bytes at `path`, if they exist now.
async fn read(state: &WorkerState, stream: StreamId, path: &str) -> Option<Vec<u8>> {
    let stream_dir = state.config.media_dir.join(stream.to_string());
    // An ingest pod's master playlist is made from the parts that are live right now.
    if path == "master.m3u8" && state.config.role == Role::Ingest {
        let resolution = state.feed(stream).and_then(|f| f.resolution());
        crate::playlists::merged_master(&stream_dir, resolution).await.map(String::into_bytes)
    } else {
        tokio::fs::read(stream_dir.join(path)).await.ok()
    }
}

/// A playlist missing while the stream's publisher is connected is about to exist: hold the
/// request until it does (bounded), so the player's first request already plays.
async fn wait_for_start(state: &WorkerState, stream: StreamId, path: &str) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + START_HOLD;
    while state.publishing(stream) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(START_POLL).await;
        if let Some(b) = read(state, stream, path).await {
            return Some(b);
        }
    }
    None
}

/// LL-HLS from the stream's packager. A stream held here but without media yet is waited for
/// (as the file-based master above): its master once a rendition has its first part, a media
/// playlist by the packager's own blocking rules. `None`: not a stream this worker has.
async fn serve_ll(
    state: &WorkerState,
    stream: StreamId,
    req: crate::ll::Request<'_>,
    query: Option<&str>,
) -> Option<Response> {
    let variants = crate::ll::variants(&state.ladder);
    let variants: Vec<(&str, u64)> = variants.iter().map(|(n, bw)| (n.as_str(), *bw)).collect();
    let deadline = tokio::time::Instant::now() + START_HOLD;
    loop {
        let store = state.ll.get(stream);
        if let Some(store) = &store {
            match req {
                // Rendered once: the check is the answer.
                crate::ll::Request::Master => {
                    if let Some(text) = crate::ll::master(store, &variants) {
                        return Some(crate::ll::master_response(text));
                    }
                }
                // Once the rendition has begun, its playlist follows the packager's own
                // blocking rules.
                crate::ll::Request::Media { rendition, .. } if store.renditions().iter().any(|r| r == rendition) => {
                    return Some(crate::ll::respond(store, req, query, &variants).await);
                }
                crate::ll::Request::Media { .. } => {}
            }
        }
        if !state.holds(stream) {
            // Not held here (any more) and nothing to answer with: not ours.
            return None;
        }
        if tokio::time::Instant::now() >= deadline {
            return Some(crate::ll::not_yet());
        }
        tokio::time::sleep(START_POLL).await;
    }
}

/// `GET /hls/{id}/dvr/…`: the rewind window (`record/dvr.rs`). The master is the live one (its
/// URIs are relative, so they name the window's playlists here); the playlists come from the
/// recorder's index; init and media segments from the store (404 outside the window, 503 with a
/// retry hint when the store does not answer).
async fn serve_dvr(state: &WorkerState, stream: StreamId, path: &str) -> Result<Response, HttpError> {
    use onair_recording::layout::{Rel, Root};
    use onair_recording::object_store::{self, ObjectStoreExt as _};
    let not_found = || HttpError::new(StatusCode::NOT_FOUND, "not_found", "not in this stream's rewind window");
    let recorder = state.recorder.as_ref().ok_or_else(not_found)?;
    if path == "master.m3u8" {
        let store = state.ll.get(stream).ok_or_else(not_found)?;
        let variants = crate::ll::variants(&state.ladder);
        let variants: Vec<(&str, u64)> = variants.iter().map(|(n, bw)| (n.as_str(), *bw)).collect();
        let text = crate::ll::master(&store, &variants).ok_or_else(not_found)?;
        return Ok(crate::ll::master_response(text));
    }
    let rel = Rel::parse(path).map_err(|_| not_found())?;
    if let Rel::Playlist(rendition) = &rel {
        let text = recorder.dvr_playlist(stream, rendition).ok_or_else(not_found)?;
        let mut res = (StatusCode::OK, Body::from(text)).into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(rel.content_type()));
        // A new segment is listed about every second.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=1"));
        return Ok(res);
    }
    if !recorder.dvr_holds(stream, &rel) {
        return Err(not_found());
    }
    let key = onair_recording::store::path(&Root::Recording(stream.0), &rel);
    let bytes = match recorder.store().get(&key).await {
        Ok(got) => got.bytes().await,
        Err(e) => Err(e),
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(object_store::Error::NotFound { .. }) => return Err(not_found()),
        Err(e) => {
            tracing::debug!(stream_id = %stream, key = %key, error = %e, "rewind window: store read failed");
            return Err(
                HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "try again").with_retry_after(1)
            );
        }
    };
    let mut res = (StatusCode::OK, Body::from(bytes)).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(rel.content_type()));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    Ok(res)
}

/// Whether a viewer's first request for the stream's master playlist plays now: it lists a
/// rendition whose media playlist has media.
pub async fn playable(state: &WorkerState, stream: StreamId) -> bool {
    if state.config.low_latency() {
        let variants = crate::ll::variants(&state.ladder);
        let variants: Vec<(&str, u64)> = variants.iter().map(|(n, bw)| (n.as_str(), *bw)).collect();
        return state.ll.get(stream).is_some_and(|s| crate::ll::master(&s, &variants).is_some());
    }
    let Some(master) = read(state, stream, "master.m3u8").await else { return false };
    // The master names its media playlists on the lines that are not tags.
    let first = String::from_utf8_lossy(&master)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned);
    match first {
        Some(media) => read(state, stream, &media).await.is_some_and(|b| b.windows(7).any(|w| w == b"#EXTINF")),
        None => false,
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn no_playlist_yet_is_a_retryable_answer_that_no_cache_keeps() {
        let res = crate::ll::not_yet();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store", "a CDN must not keep it");
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "stream_starting", "{v}");
    }
}
