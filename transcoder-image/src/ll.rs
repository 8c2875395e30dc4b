//! The LL-HLS origin: each stream's packaged renditions (`onair_llhls::Store`), fed by encoders
//! over one long chunked HTTP PUT per rendition, served as Low-Latency HLS.
//!
//! ffmpeg writes each rendition as fragmented MP4 (`-f mp4 -movflags
//! empty_moov+default_base_moof+frag_keyframe+cmaf -frag_duration 200000 -flush_packets 1`) to
//! `PUT /internal/streams/{id}/ll/{rendition}`; every 200 ms fragment arrives as it is cut (a
//! chunk per fragment, measured), becomes a part, and is served at once. The same route serves
//! one machine (ffmpeg PUTs to its own worker over loopback) and split roles (transcode pods PUT
//! to their ingest pod), so there is one path to test. An encoder that restarts opens a new PUT:
//! the rendition goes on after a discontinuity. A PUT ending is not the end of a rendition: the
//! worker ends renditions when the stream ends or the ladder drops them.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use http::{HeaderValue, StatusCode, header};
use onair_llhls::{Form, Resource, Store};
use onair_web::HttpError;

/// Why an encoder's upload stopped early.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("not fragmented MP4: {0}")]
    Media(#[from] onair_llhls::fmp4::Error),
    #[error("a newer upload took this rendition over")]
    Superseded,
    #[error("the upload broke off: {0}")]
    Body(String),
    #[error("no bytes for {0:?}: the encoder stalled or hung up")]
    Idle(Duration),
    #[error("this rendition is no longer this part's to write")]
    Withdrawn,
}

impl FeedError {
    pub fn into_http(self) -> HttpError {
        match self {
            Self::Media(e) => HttpError::new(StatusCode::BAD_REQUEST, "bad_media", e.to_string()),
            Self::Body(e) => HttpError::new(StatusCode::BAD_REQUEST, "upload_broken", e),
            Self::Idle(_) => HttpError::new(StatusCode::REQUEST_TIMEOUT, "upload_idle", self.to_string()),
            Self::Withdrawn => HttpError::new(StatusCode::CONFLICT, "not_assigned", self.to_string()),
            Self::Superseded => HttpError::new(StatusCode::CONFLICT, "superseded", self.to_string()),
        }
    }
}

/// Feeds one encoder's upload into `rendition` until the body ends (`Ok` with the bytes read),
/// turns out not to be fMP4, sends nothing for `idle` (a hung socket is not held forever), or
/// is no longer `allowed` (its rendition was moved to another transcode pod or taken away).
pub async fn feed(
    store: &Store,
    rendition: &str,
    body: Body,
    idle: Duration,
    allowed: impl Fn() -> bool,
) -> Result<u64, FeedError> {
    let mut writer = store.writer(rendition);
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Err(_) => return Err(FeedError::Idle(idle)),
            Ok(None) => return Ok(total),
            Ok(Some(Err(e))) => return Err(FeedError::Body(e.to_string())),
            Ok(Some(Ok(_))) if !allowed() => return Err(FeedError::Withdrawn),
            Ok(Some(Ok(chunk))) => {
                writer.push(&chunk).map_err(|e| match e {
                    onair_llhls::WriteError::Media(m) => FeedError::Media(m),
                    onair_llhls::WriteError::Superseded => FeedError::Superseded,
                })?;
                total += chunk.len() as u64;
            }
        }
    }
}

/// How long an encoder's upload may send nothing before it is cut off (ffmpeg sends a fragment
/// every 200 ms; a stalled one restarts).
const UPLOAD_IDLE: Duration = Duration::from_secs(15);

/// `PUT /internal/streams/{id}/ll/{rendition}`: one encoder's rendition, for as long as it
/// runs. Mounted outside the request timeout every other route has: the body is the stream.
pub async fn ingest(
    axum::extract::State(state): axum::extract::State<crate::state::WorkerState>,
    axum::extract::Path((stream_id, rendition)): axum::extract::Path<(String, String)>,
    headers: http::HeaderMap,
    body: Body,
) -> Result<StatusCode, HttpError> {
    let stream = crate::guard::internal_stream(&state, &headers, &stream_id)?;
    if !valid_rendition(&rendition) {
        return Err(HttpError::invalid("rendition", "1-16 lowercase letters and digits"));
    }
    if !state.config.low_latency() || state.config.role == crate::config::Role::Transcode {
        return Err(HttpError::new(StatusCode::CONFLICT, "not_low_latency", "this worker does not package LL-HLS"));
    }
    // From a transcode pod: the same rules as its segment uploads (origin.rs): it names its part,
    // may write only what it is assigned, and never a rendition taken away.
    let part = match headers.get(crate::transcoders::TRANSCODER_PART_HEADER) {
        None => None,
        Some(p) => Some(
            p.to_str()
                .ok()
                .filter(|p| crate::transcoders::is_part_name(p))
                .ok_or_else(|| HttpError::invalid("x-onair-transcoder-part", "a transcoder part name"))?
                .to_owned(),
        ),
    };
    let file = format!("{rendition}/index.m3u8");
    let allowed = |part: &str| {
        !state.transcoders.is_ended(stream, &rendition) && state.transcoders.may_write(stream, part, &file)
    };
    if let Some(part) = part.as_deref() {
        if state.transcoders.is_ended(stream, &rendition) {
            return Err(HttpError::new(StatusCode::GONE, "rendition_ended", "this rendition was taken away"));
        }
        if !allowed(part) {
            return Err(HttpError::new(StatusCode::CONFLICT, "not_assigned", "this part may not write that rendition"));
        }
    } else if state.config.role == crate::config::Role::Ingest && rendition != crate::ladder::SOURCE {
        // Only the ingest pod's own encoder (the source) writes without a part.
        return Err(HttpError::new(
            StatusCode::BAD_REQUEST,
            "missing_part",
            "uploads name their transcoder part in x-onair-transcoder-part",
        ));
    }
    // Only while the stream is held here: a late upload must not reopen an ended stream (or
    // bring back a store retention already dropped).
    if !state.holds(stream) {
        return Err(HttpError::new(StatusCode::GONE, "stream_ended", "this stream is not live here"));
    }
    let store = state.ll.store(stream, || state.recording_sink(stream));
    tracing::info!(stream_id = %stream, %rendition, "encoder upload started");
    // Checked again as it streams: the operator may move the rendition meanwhile.
    let still = || part.as_deref().is_none_or(allowed);
    match feed(&store, &rendition, body, UPLOAD_IDLE, still).await {
        Ok(bytes) => {
            tracing::info!(stream_id = %stream, %rendition, bytes, "encoder upload ended");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(e) => {
            tracing::info!(stream_id = %stream, %rendition, error = %e, "encoder upload refused or broken");
            Err(e.into_http())
        }
    }
}

/// The variants of a stream's master playlist: the ladder's renditions (peak video + audio) and
/// the source (passthrough, bitrate unknown up front).
pub fn variants(ladder: &[crate::ladder::Rendition]) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> =
        ladder.iter().map(|r| (r.name.clone(), u64::from(r.video_kbps * 107 / 100 + r.audio_kbps) * 1000)).collect();
    v.push((crate::ladder::SOURCE.to_string(), 6_000_000));
    v
}

/// A rendition's name as it appears in URLs (`720p`, `source`): short, lowercase alphanumerics.
pub fn valid_rendition(name: &str) -> bool {
    (1..=16).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// What a player asked for below `/hls/{stream}/`.
#[derive(Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Master,
    Media { rendition: &'a str, file: &'a str },
}

pub fn parse(path: &str) -> Option<Request<'_>> {
    if path == "master.m3u8" {
        return Some(Request::Master);
    }
    let (rendition, file) = path.split_once('/')?;
    (valid_rendition(rendition) && Resource::parse(file).is_some()).then_some(Request::Media { rendition, file })
}

/// The stream's master playlist, once it lists a rendition (one with its first part).
pub fn master(store: &Store, variants: &[(&str, u64)]) -> Option<String> {
    let list: Vec<(&str, u64, Option<f64>)> = variants.iter().map(|(n, bw)| (*n, *bw, None)).collect();
    Some(store.master(&list)).filter(|text| text.contains("#EXT-X-STREAM-INF"))
}

/// A master playlist changes as renditions come and go: revalidated on every request.
pub fn master_response(text: String) -> Response {
    let mut res = (StatusCode::OK, Body::from(text)).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(Resource::Playlist.content_type()));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// The answer to a player's request, with the cache rules LL-HLS needs: a plain playlist
/// changes every part (`no-cache`); a blocking request names a future state in its URL, so a CDN
/// may keep it briefly; parts, segments and init segments never change.
pub async fn respond(store: &Store, req: Request<'_>, query: Option<&str>, variants: &[(&str, u64)]) -> Response {
    let (body, ctype, cache) = match req {
        Request::Master => return master(store, variants).map_or_else(not_yet, master_response),
        Request::Media { rendition, file } => match Resource::parse(file) {
            Some(Resource::Playlist) => match store.playlist(rendition, query, Form::LowLatency).await {
                Ok(text) => {
                    let blocking = query.is_some_and(|q| q.contains("_HLS_msn"));
                    (
                        Body::from(text),
                        Resource::Playlist.content_type(),
                        if blocking { "public, max-age=6" } else { "no-cache" },
                    )
                }
                Err(e) => return status(e.status(), "playlist_unavailable", &e.to_string()),
            },
            Some(r) => match store.fetch(rendition, file).await {
                // An init segment's name repeats across encoder sessions; parts and segments never.
                Ok(bytes) if matches!(r, Resource::Init(_)) => (Body::from(bytes), r.content_type(), "no-cache"),
                Ok(bytes) => (Body::from(bytes), r.content_type(), "public, max-age=31536000, immutable"),
                Err(e) => return status(e.status(), "media_unavailable", &e.to_string()),
            },
            None => return status(404, "not_found", "no such playlist or segment"),
        },
    };
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

/// The packager's answers as the one JSON error shape; 503s say when to retry and are not kept.
fn status(code: u16, error: &'static str, message: &str) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if code == StatusCode::SERVICE_UNAVAILABLE {
        return not_yet();
    }
    HttpError::new(code, error, message.to_string()).into_response()
}

/// Nothing to play yet (no playlist, or no rendition with its first part) for a stream that is
/// starting: a retryable answer, never a 404 that a CDN would cache (negative caching) or a
/// player would give up on.
pub fn not_yet() -> Response {
    let mut res =
        HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "stream_starting", "the stream has no media yet; retry")
            .with_retry_after(1)
            .into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use onair_llhls::Config;

    #[test]
    fn only_renditions_and_packager_uris_are_requests() {
        assert_eq!(parse("master.m3u8"), Some(Request::Master));
        assert_eq!(parse("720p/index.m3u8"), Some(Request::Media { rendition: "720p", file: "index.m3u8" }));
        assert_eq!(parse("360p/seg12.3.m4s"), Some(Request::Media { rendition: "360p", file: "seg12.3.m4s" }));
        assert_eq!(parse("source/init-2.mp4"), Some(Request::Media { rendition: "source", file: "init-2.mp4" }));
        for bad in ["../x/index.m3u8", "720p/../../etc/passwd", "720P/index.m3u8", "720p/seg_1.ts", "720p", ""] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn a_garbage_upload_is_refused_and_an_idle_one_times_out() {
        let store = Store::new(Config::default());
        let err = feed(
            &store,
            "360p",
            Body::from(vec![0u8, 0, 0, 3, b'm', b'o', b'o', b'f']),
            Duration::from_secs(1),
            || true,
        )
        .await
        .unwrap_err();
        assert_eq!(err.into_http().status, StatusCode::BAD_REQUEST);

        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
        let body = Body::from_stream(tokio_stream_from(rx));
        let err = feed(&store, "240p", body, Duration::from_millis(50), || true).await.unwrap_err();
        assert!(matches!(err, FeedError::Idle(_)), "{err}");
        drop(tx);
    }

    fn tokio_stream_from<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    #[tokio::test]
    async fn before_any_part_the_master_says_retry_and_nothing_keeps_it() {
        let store = Store::new(Config::default());
        let res = respond(&store, Request::Master, None, &[("360p", 800_000)]).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
    }

    /// The whole LL path but the worker's wiring: real ffmpeg with the worker's arguments PUTs
    /// each rendition into `feed` behind axum; the stream is then read back over HTTP by the
    /// tools a viewer's player stands in for (ffprobe reading the master playlist).
    #[tokio::test]
    async fn real_ffmpeg_renditions_stream_in_and_play_back_over_http() {
        use axum::extract::{Path, RawQuery, State};
        use axum::routing::{get, put};
        let dir = tempfile::tempdir().unwrap();
        let flv = dir.path().join("in.flv");
        let made = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi"])
            .args(["-i", "sine=sample_rate=48000", "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "60"])
            .args(["-c:a", "aac", "-f", "flv"])
            .arg(&flv)
            .status()
            .unwrap();
        assert!(made.success());

        let store = Store::new(Config::default());
        let app = axum::Router::new()
            .route(
                "/internal/streams/s/ll/{rendition}",
                put(|State(store): State<Store>, Path(r): Path<String>, body: Body| async move {
                    feed(&store, &r, body, Duration::from_secs(10), || true)
                        .await
                        .map(|_| StatusCode::NO_CONTENT)
                        .map_err(FeedError::into_http)
                }),
            )
            .route(
                "/hls/s/{*path}",
                get(|State(store): State<Store>, Path(path): Path<String>, RawQuery(q): RawQuery| async move {
                    match parse(&path) {
                        Some(req) => respond(&store, req, q.as_deref(), &[("360p", 900_000), ("240p", 500_000)]).await,
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                }),
            )
            .with_state(store.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let ladder = crate::ladder::parse_ladder("360p,240p").unwrap();
        let base = format!("http://{addr}/internal/streams/s/ll");
        let target = crate::ladder::LlTarget { base: &base, token: "tok", part: None };
        let dir_s = dir.path().to_string_lossy().into_owned();
        let out = crate::ladder::Output { dir: &dir_s, upload: None, shared_clock: false, thumbnail: false };
        let args = crate::ladder::ll_ffmpeg_args(&ladder, "ultrafast", &out, &target, true);
        let encode = tokio::process::Command::new("ffmpeg")
            .args(&args)
            .stdin(std::fs::File::open(&flv).unwrap())
            .stderr(std::process::Stdio::piped())
            .output();
        let done = tokio::time::timeout(Duration::from_secs(60), encode).await.unwrap().unwrap();
        assert!(done.status.success(), "{}", args.join(" "));
        // ffmpeg has nothing to warn about these outputs (the worker logs its warnings).
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert!(!stderr.contains("[mp4 @"), "{stderr}");
        for r in ["360p", "240p"] {
            let stats = store.stats(r).unwrap();
            assert!(stats.segments >= 4 && stats.parts_over_target == 0, "{r}: {stats:?}");
        }
        store.end_all();

        let http = onair_http::client();
        let master = http.get(format!("http://{addr}/hls/s/master.m3u8")).send().await.unwrap().text().await.unwrap();
        assert!(master.contains("RESOLUTION=640x360") && master.contains("CODECS=\"avc1."), "{master}");
        let media = http.get(format!("http://{addr}/hls/s/240p/index.m3u8")).send().await.unwrap();
        assert_eq!(media.headers()[header::CACHE_CONTROL], "no-cache");
        let media = media.text().await.unwrap();
        assert!(media.contains("#EXT-X-PART:DURATION=0.20000") && media.contains("#EXT-X-ENDLIST"), "{media}");
        assert!(media.contains("#EXT-X-RENDITION-REPORT:URI=\"../360p/index.m3u8\""), "{media}");
        // A blocking reload on an ended stream answers at once.
        let started = std::time::Instant::now();
        let last: u64 =
            media.lines().filter_map(|l| l.strip_prefix("seg")?.strip_suffix(".m4s")?.parse().ok()).max().unwrap();
        let blocked =
            http.get(format!("http://{addr}/hls/s/240p/index.m3u8?_HLS_msn={}", last + 1)).send().await.unwrap();
        assert_eq!(blocked.status(), StatusCode::OK, "an ended stream answers a blocking reload");
        assert!(started.elapsed() < Duration::from_millis(500), "at once: {:?}", started.elapsed());

        let probe = tokio::process::Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "format=duration:stream=codec_name,height", "-of", "json"])
            .arg(format!("http://{addr}/hls/s/master.m3u8"))
            .output()
            .await
            .unwrap();
        assert!(probe.status.success(), "{}", String::from_utf8_lossy(&probe.stderr));
        let json: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
        let codecs: Vec<&str> =
            json["streams"].as_array().unwrap().iter().filter_map(|s| s["codec_name"].as_str()).collect();
        assert!(codecs.contains(&"h264") && codecs.contains(&"aac"), "{json}");
        let duration: f64 = json["format"]["duration"].as_str().unwrap().parse().unwrap();
        assert!((duration - 4.0).abs() < 0.5, "{json}");
    }
}
