//! The guard of every internal route: the internal token, compared in constant time, and a
//! stream id this worker may serve. Its own module so the routes that need it (the media
//! uploads, the relay, the state and control routes) do not depend on one another.

use onair_domain::StreamId;

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
