//! The source relay between split roles. The ingest pod republishes its publisher's FLV tags to
//! the stream's transcode pods as one long HTTP response (HTTP-FLV, as SRS and nginx-http-flv
//! relay): codec configuration first, then the tags since the last keyframe (so a transcoder's
//! encoder starts at once instead of waiting up to a GOP), then live tags as they arrive.
//!
//! A transcode pod reads that response, parses the tags back and feeds its encoder exactly as a
//! publisher would; the publisher leaving ends the response and the pod waits for the next one.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use onair_domain::StreamId;
use onair_web::HttpError;

use crate::feed::FlvReader;
use crate::guard::internal_stream;
use crate::state::WorkerState;
use onair_domain::contracts::media::{Assignment, TranscoderReport};
use onair_flv as flv;

/// Response headers carrying what the transcoder needs before the first tag.
pub const SOURCE_HEIGHT: &str = "x-onair-source-height";
pub const HAS_AUDIO: &str = "x-onair-has-audio";
pub const QUALITY_CAP: &str = "x-onair-quality-cap";
pub const TIER: &str = "x-onair-tier";

/// `GET /internal/streams/{id}/source` (internal token): the stream's source as one endless
/// FLV response, for its transcode pods. 404 `not_publishing` until a publisher has sent a
/// keyframe.
pub async fn serve(
    State(state): State<WorkerState>,
    Path(stream_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let stream = internal_stream(&state, &headers, &stream_id)?;
    let not_publishing =
        || HttpError::new(StatusCode::NOT_FOUND, "not_publishing", "no publisher with a keyframe on this stream yet");
    let feed = state.feed(stream).ok_or_else(not_publishing)?;
    let sub = feed.subscribe().ok_or_else(not_publishing)?;
    tracing::info!(stream_id = %stream, "transcoder subscribed to the source");
    let mut head = flv::header(sub.has_audio, true);
    for t in &sub.preamble {
        head.extend(flv::tag(t.kind, t.ts, &t.data));
    }
    let live = futures::stream::unfold(sub.rx, move |mut rx| async move {
        match rx.recv().await {
            Ok(t) => Some((Ok::<_, std::io::Error>(Bytes::from(flv::tag(t.kind, t.ts, &t.data))), rx)),
            // Fell behind (or the publisher left): end here; the transcoder reconnects at the
            // next keyframe rather than decoding a stream with a hole in it.
            Err(e) => {
                tracing::info!(stream_id = %stream, error = %e, "source relay ended");
                None
            }
        }
    });
    let body = futures::StreamExt::chain(futures::stream::once(async move { Ok(Bytes::from(head)) }), live);
    let mut res = (StatusCode::OK, Body::from_stream(body)).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/x-flv"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let text = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    if let Some(height) = sub.source_height {
        h.insert(SOURCE_HEIGHT, height.into());
    }
    h.insert(HAS_AUDIO, text(if sub.has_audio { "true" } else { "false" }));
    h.insert(TIER, text(&feed.tier));
    h.insert(QUALITY_CAP, text(&feed.quality));
    Ok(res)
}

/// The client `follow` uses: a connect timeout, no overall one (the source streams for as long
/// as the publisher does). Built before serving, so a failure stops the pod at start-up.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(onair_http::builder().connect_timeout(Duration::from_secs(3)).build()?)
}

/// A transcode pod's life: follow the ingest pod's source, encode this pod's renditions while
/// it flows, wait and reconnect when it stops (the publisher reconnecting, the ingest pod
/// replaced), and report what runs to the origin every few seconds.
pub async fn follow(state: WorkerState, stream: StreamId, source_url: String, http: reqwest::Client) {
    use secrecy::ExposeSecret as _;
    let token = state.config.internal_token.expose_secret().to_owned();
    let base = source_url.trim_end_matches('/').to_owned();
    // Reports stop with the relay (the pod shutting down; a JoinSet aborts its tasks when
    // dropped): the origin then lets this part go.
    let mut reports = tokio::task::JoinSet::new();
    reports.spawn(report_loop(state.clone(), stream, base.clone(), token.clone(), http.clone()));
    let mut waited = Duration::from_millis(250);
    loop {
        match relay_once(&state, stream, &base, &token, &http).await {
            Ok(()) => waited = Duration::from_millis(250),
            Err(e) => {
                tracing::debug!(stream_id = %stream, error = %e, "source not available");
                waited = (waited * 2).min(Duration::from_secs(2));
            }
        }
        tokio::time::sleep(waited).await;
    }
}

/// One source response, start to end.
async fn relay_once(
    state: &WorkerState,
    stream: StreamId,
    base: &str,
    token: &str,
    http: &reqwest::Client,
) -> anyhow::Result<()> {
    let mut res = http
        .get(format!("{base}/internal/streams/{stream}/source"))
        .header(onair_domain::contracts::http::INTERNAL_TOKEN_HEADER, token)
        .send()
        .await?
        .error_for_status()?;
    let h = res.headers();
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (tier, quality) = (text(TIER).unwrap_or_else(|| "free".into()), text(QUALITY_CAP).unwrap_or_default());
    let mut p = state.begin_relay(stream, &tier, &quality);
    p.encoder.source_height = text(SOURCE_HEIGHT).and_then(|v| v.parse().ok());
    p.encoder.has_audio = text(HAS_AUDIO).is_none_or(|v| v == "true");
    tracing::info!(stream_id = %stream, source_height = ?p.encoder.source_height, "following the source");
    let mut reader = FlvReader::default();
    let result = async {
        // A source that goes quiet without closing (a stalled ingest pod) is dropped too.
        while let Some(chunk) =
            tokio::time::timeout(Duration::from_secs(state.config.rtmp_read_timeout_secs.max(1)), res.chunk()).await??
        {
            reader.extend(&chunk);
            while let Some(t) = reader.next_tag().map_err(|e| anyhow::anyhow!(e))? {
                p.write(state, t.kind, t.ts, &t.data).await?;
            }
        }
        anyhow::Ok(())
    }
    .await;
    state.publisher_left(p).await;
    result
}

/// Every 2 s, tell the origin what this transcoder runs and how fast (the operator reads it
/// from the ingest pod, one call per stream); the answer says what it should run.
async fn report_loop(state: WorkerState, stream: StreamId, base: String, token: String, http: reqwest::Client) {
    let url = format!("{base}/internal/streams/{stream}/transcoders/{}", state.config.part);
    loop {
        let s = state.local_state(stream);
        let report = TranscoderReport { renditions: s.renditions, encode_speed: s.encode_speed };
        let sent = http
            .post(&url)
            .header(onair_domain::contracts::http::INTERNAL_TOKEN_HEADER, &token)
            .timeout(Duration::from_secs(2))
            .json(&report)
            .send()
            .await;
        match sent.and_then(|r| r.error_for_status()) {
            Ok(r) if r.status() == http::StatusCode::OK => match r.json::<Assignment>().await {
                Ok(a) => state.set_assigned(a.renditions),
                Err(e) => tracing::warn!(stream_id = %stream, error = %e, "unreadable assignment"),
            },
            Ok(_) => {}
            Err(e) => tracing::debug!(stream_id = %stream, error = %e, "could not report to the origin"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
