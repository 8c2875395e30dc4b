//! The playback routes' metering: what reaches the origin, from edges and from viewers directly
//! (counted), and the direct viewers' share held to the origin's capacity (`capacity.rs`).
//!
//! Edges are not metered: they present `--edge-secret` in [`EDGE_HEADER`] (set by the edge's
//! proxy config, never seen by players), and their requests are what the CDN coalesces.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use onair_domain::StreamId;
use onair_web::HttpError;
use secrecy::ExposeSecret as _;

use crate::state::WorkerState;

/// The header an edge proves itself with.
pub const EDGE_HEADER: &str = "x-onair-edge";

/// What a refused player is told to wait.
const RETRY_AFTER_SECS: u64 = 2;

/// The stream a playback path names: `/hls/{id}/…` (a signed link's token is inside it).
fn stream_of(path: &str) -> Option<StreamId> {
    path.strip_prefix("/hls/")?.split('/').next()?.parse().ok()
}

/// Whether the request comes from an edge (constant time: the comparison must not tell how
/// much of a guess was right).
fn from_edge(state: &WorkerState, req: &Request) -> bool {
    let (Some(secret), Some(given)) = (state.config.origin.edge_secret.as_ref(), req.headers().get(EDGE_HEADER)) else {
        return false;
    };
    let secret = secret.expose_secret().as_bytes();
    let given = given.as_bytes();
    given.len() == secret.len() && given.iter().zip(secret).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The playback routes' middleware: counts what reaches the origin (from edges, from viewers
/// directly), meters direct viewers, lets edges through.
pub async fn meter(State(state): State<WorkerState>, req: Request, next: Next) -> Response {
    let edge = from_edge(&state, &req);
    let from = if edge { "edge" } else { "direct" };
    // Per-stream buckets for the streams this worker holds only: a request naming any other
    // (answered 404) must not grow the table.
    let stream = stream_of(req.uri().path()).filter(|s| state.holds(*s));
    let metered = !edge && state.capacity.limited();
    if metered && let Err(refusal) = state.capacity.admit(stream, Instant::now()) {
        state.metrics.origin_refused(refusal);
        tracing::debug!(stream_id = ?stream, scope = refusal.scope, kind = refusal.kind, "direct viewer over the origin's capacity");
        return busy();
    }
    let res = next.run(req).await;
    // Playlists and parts are answered whole (their length is known); a body of unknown length
    // is counted as nothing rather than held to be measured.
    let bytes = axum::body::HttpBody::size_hint(res.body()).exact().unwrap_or(0);
    state.metrics.origin_served(from, bytes);
    if metered {
        state.capacity.charge(stream, bytes);
    }
    res
}

/// 503 that players back off from and no cache keeps.
fn busy() -> Response {
    let mut res = HttpError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "origin_busy",
        "the origin is serving all the direct viewers it can; retry shortly",
    )
    .with_retry_after(RETRY_AFTER_SECS)
    .into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0192f3a0-0000-7000-8000-000000000001";

    #[test]
    fn the_stream_is_read_from_plain_and_signed_paths() {
        let a = Some(A.parse::<StreamId>().unwrap());
        assert_eq!(stream_of(&format!("/hls/{A}/master.m3u8")), a);
        assert_eq!(stream_of(&format!("/hls/{A}/t/k.1.viewer01.sig/720p/index.m3u8")), a);
        assert_eq!(stream_of("/hls/not-a-stream/master.m3u8"), None);
        assert_eq!(stream_of("/metrics"), None);
    }
}
