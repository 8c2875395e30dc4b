//! The worker's listeners: the RTMP accept loop, and one HTTP server with every route (HLS for
//! players, the internal routes, health and metrics). A transcode pod also follows its ingest
//! pod's source here, for as long as the server runs.

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use onair_domain::StreamId;
use tokio::net::TcpListener;

use crate::config::Role;
use crate::state::WorkerState;
use crate::{accept, hls, internal, origin, relay, rtmp};

/// How long a stopping worker keeps storing recorded segments (Kubernetes' default grace
/// period is 30 s).
const RECORDING_DRAIN: std::time::Duration = std::time::Duration::from_secs(20);
/// How long requests in flight get when the worker stops: 3 s + `RECORDING_DRAIN` stay within
/// Kubernetes' default 30 s grace period.
const HTTP_DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Serve RTMP and HTTP until `shutdown` resolves.
pub async fn run(
    rtmp: TcpListener,
    http: TcpListener,
    state: WorkerState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // `MediaWorker::build` stored the addresses really bound.
    let (rtmp_addr, http_addr) = (state.config.rtmp_listen, state.config.http_listen);
    let accept = {
        let state = state.clone();
        let limits = accept::Limits { max: state.config.rtmp_max_connections, per_ip: state.config.rtmp_max_per_ip };
        let counted = state.clone();
        let refused = move |peer: std::net::SocketAddr| {
            tracing::debug!(%peer, "rtmp connection refused: too many from its address");
            counted.metrics.refused("too_many_from_address");
        };
        tokio::spawn(accept::serve(rtmp, limits, refused, move |tcp, peer| rtmp::handle(state.clone(), tcp, peer)))
    };
    let config = &state.config;
    let follow = match (config.role, config.only_stream, config.source_url.clone()) {
        (Role::Transcode, Some(stream), Some(url)) => {
            Some(tokio::spawn(relay::follow(state.clone(), StreamId(stream), url, relay::client()?)))
        }
        _ => None,
    };
    // Encoders' LL-HLS uploads last as long as they encode: outside the request timeout and body
    // limit every other route has (`ll::ingest` bounds them by idleness instead).
    let ll_uploads = Router::new()
        .route("/internal/streams/{stream_id}/ll/{rendition}", axum::routing::put(crate::ll::ingest))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state.clone());
    // What an earlier run left in the media folder goes once its retention is up.
    let sweep = tokio::spawn(crate::sweep::run(state.clone()));
    let uploads = state.recorder.as_ref().map(|r| r.start());
    let reports = state.recorder.clone().map(|r| tokio::spawn(crate::record::report::run(r, state.api.clone())));
    let recorder = state.recorder.clone();
    let router = onair_web::finish_router(router(state), onair_web::Limits::default()).merge(ll_uploads);
    tracing::info!(rtmp = %rtmp_addr, http = %http_addr, "media worker listening");
    // A short drain: while a stream is live its encoders' uploads and relays never end, and the
    // recorder's last flush below needs the rest of the pod's grace period (30 s by default).
    let result = onair_web::serve_draining(http, router, shutdown, HTTP_DRAIN).await;
    accept.abort();
    sweep.abort();
    // A transcode pod going away kills its encoder with it (the child dies on drop).
    if let Some(f) = follow {
        f.abort();
    }
    // What was recorded and not stored yet gets a last chance (the pod's grace period).
    if let (Some(recorder), Some(tasks)) = (recorder, uploads) {
        recorder.stop(tasks, RECORDING_DRAIN).await;
    }
    if let Some(r) = reports {
        r.abort();
    }
    Ok(result?)
}

/// Every HTTP route of the worker.
fn router(state: WorkerState) -> Router {
    // Players on other origins (the web app) read playlists, and the 404 a player gets
    // before the first segment exists must be readable too. Every answer, refusals included,
    // says it is the origin's (`playback::FROM_HEADER`), readable across origins.
    use onair_domain::contracts::playback::{FROM_HEADER, FROM_ORIGIN};
    use tower_http::set_header::SetResponseHeaderLayer;
    let hls = Router::new()
        .route("/hls/{stream_id}/{*path}", get(hls::serve))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::metering::meter))
        .layer(SetResponseHeaderLayer::overriding(
            http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
            http::HeaderValue::from_static("*"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            http::HeaderName::from_static(FROM_HEADER),
            http::HeaderValue::from_static(FROM_ORIGIN),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            http::HeaderValue::from_static(FROM_HEADER),
        ));
    // Transcode pods upload segments: larger bodies than any other internal route.
    let uploads = Router::new()
        .route("/internal/streams/{stream_id}/hls/{*path}", axum::routing::put(origin::upload).delete(origin::remove))
        .layer(axum::extract::DefaultBodyLimit::max(origin::MAX_UPLOAD_BYTES));
    Router::new()
        .merge(hls)
        .merge(uploads)
        .route("/internal/streams/{stream_id}/source", get(relay::serve))
        .route("/internal/streams/{stream_id}/transcoders", axum::routing::put(origin::put_assignment))
        .route("/internal/streams/{stream_id}/transcoders/{part}", axum::routing::post(origin::report))
        .route("/internal/streams/{stream_id}/stop", axum::routing::post(internal::stop))
        .route("/internal/streams/{stream_id}", get(internal::stream_state))
        .route("/internal/streams/{stream_id}/level", axum::routing::put(internal::set_level))
        .route("/healthz", get(onair_web::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Ready when Redis (viewer counting) answers: a pod that cannot count viewers still serves
/// video, so this gates traffic only at start.
async fn readyz(State(state): State<WorkerState>) -> http::StatusCode {
    let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut state.redis.clone()).await;
    if pong.is_ok() { http::StatusCode::OK } else { http::StatusCode::SERVICE_UNAVAILABLE }
}

async fn metrics(State(state): State<WorkerState>) -> impl IntoResponse {
    onair_web::metrics_response(&state.registry)
}
