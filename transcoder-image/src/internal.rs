//! The media worker's own internal routes (internal token): stop a stream, read its state for
//! the operator, set its ladder level; and the token check every internal route shares
//! (`relay.rs` and `origin.rs` serve the split-roles ones).

use std::time::Duration;

use axum::extract::State;
use onair_domain::LadderLevel as Level;
use onair_domain::contracts::media::StreamState;

use crate::guard::internal_stream;
use crate::state::WorkerState;

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
    onair_web::RawBody(body): onair_web::RawBody,
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
