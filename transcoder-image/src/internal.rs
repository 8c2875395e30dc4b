//! The media worker's own internal routes (internal token): stop a stream, read its state for
//! the operator, set its ladder level; and the token check every internal route shares
//! (`relay.rs` and `origin.rs` serve the split-roles ones).

use std::time::Duration;

use axum::extract::State;
use onair_domain::LadderLevel as Level;
use onair_domain::StreamId;
use onair_domain::contracts::media::StreamState;

use crate::state::WorkerState;

/// The internal token check and the stream id of an internal route.
pub fn internal_stream(
    state: &WorkerState,
    headers: &http::HeaderMap,
    stream_id: &str,
) -> Result<StreamId, onair_web::HttpError> {
    use secrecy::ExposeSecret as _;
    let presented =
        headers.get(onair_domain::contracts::http::INTERNAL_TOKEN_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    let expected = state.config.internal_token.expose_secret().as_bytes();
    if !onair_web::constant_time_eq(presented, expected) {
        return Err(onair_web::HttpError::new(
            http::StatusCode::UNAUTHORIZED,
            "invalid_token",
            "internal routes need the internal token",
        ));
    }
    let stream: StreamId = stream_id
        .parse()
        .map_err(|_| onair_web::HttpError::new(http::StatusCode::BAD_REQUEST, "invalid_path", "not a stream id"))?;
    // A per-stream pod knows one stream: nothing is made or kept for any other.
    if state.config.only_stream.is_some_and(|only| only != stream.0) {
        return Err(onair_web::HttpError::new(http::StatusCode::NOT_FOUND, "unknown_stream", "not this pod's stream"));
    }
    Ok(stream)
}

/// `POST /internal/streams/{id}/stop` (internal token): what the orchestrators call when a
/// streamer presses stop (local) or a LiveStream is suspended or deleted (the operator).
pub async fn stop(
    State(state): State<WorkerState>,
    axum::extract::Path(stream_id): axum::extract::Path<String>,
    headers: http::HeaderMap,
) -> Result<http::StatusCode, onair_web::HttpError> {
    let stream = internal_stream(&state, &headers, &stream_id)?;
    state.stop_stream(stream).await;
    Ok(http::StatusCode::NO_CONTENT)
}

/// `GET /internal/streams/{id}` (internal token): publisher, renditions and viewers, for the
/// operator's status.
pub async fn stream_state(
    State(state): State<WorkerState>,
    axum::extract::Path(stream_id): axum::extract::Path<String>,
    headers: http::HeaderMap,
) -> Result<axum::Json<StreamState>, onair_web::HttpError> {
    let stream = internal_stream(&state, &headers, &stream_id)?;
    let mut s = state.local_state(stream);
    // `None` when Redis does not answer: the operator keeps its last count instead of reading
    // "nobody is watching" and stepping the ladder down.
    let window = Duration::from_secs(state.config.viewer_window_secs);
    s.viewers =
        onair_infra::current_viewers(&mut state.redis.clone(), &state.config.redis.redis_prefix, stream, window)
            .await
            .ok();
    // An ingest pod speaks for its stream: the source plus what its transcoders run.
    s.transcoders = state.transcoders.live(stream);
    s.playable = crate::hls::playable(&state, stream).await;
    s.source_height = state.feed(stream).and_then(|f| f.resolution()).map(|(_, h)| h);
    let mut all: Vec<String> = s.transcoders.iter().flat_map(|t| t.renditions.iter().cloned()).collect();
    all.sort_by_key(|r| std::cmp::Reverse(r.trim_end_matches('p').parse::<u32>().unwrap_or(0)));
    all.dedup();
    s.renditions.extend(all);
    Ok(axum::Json(s))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelBody {
    level: Level,
}

/// `PUT /internal/streams/{id}/level` (internal token): the operator's autoscaler changes the
/// ladder; a running encoder switches at the next keyframe, under the same publisher.
pub async fn set_level(
    State(state): State<WorkerState>,
    axum::extract::Path(stream_id): axum::extract::Path<String>,
    headers: http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<http::StatusCode, onair_web::HttpError> {
    let stream = internal_stream(&state, &headers, &stream_id)?;
    let body: LevelBody = serde_json::from_slice(&body).map_err(|_| {
        onair_web::HttpError::new(
            http::StatusCode::BAD_REQUEST,
            "invalid_level",
            "expected {\"level\": \"Passthrough\" | \"Reduced\" | \"Full\"}",
        )
    })?;
    let cell = state.slots.lock().entry(stream).or_default().level(state.config.initial_level);
    cell.set(body.level);
    tracing::info!(stream_id = %stream, level = ?body.level, "ladder level set");
    Ok(http::StatusCode::NO_CONTENT)
}
