//! The source relay between split roles. The ingest pod republishes its publisher's FLV tags to
//! the stream's transcode pods as one long HTTP response (HTTP-FLV, as SRS and nginx-http-flv
//! relay): codec configuration first, then the tags since the last keyframe (so a transcoder's
//! encoder starts at once instead of waiting up to a GOP), then live tags as they arrive.
//!
//! A transcode pod reads that response, parses the tags back and feeds its encoder exactly as a
//! publisher would; the publisher leaving ends the response and the pod waits for the next one.

use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use onair_domain::StreamId;
use onair_web::HttpError;
use tokio::sync::broadcast;

use crate::flv;
use crate::worker::{WorkerState, internal_stream};
use onair_domain::contracts::media::{Assignment, TranscoderReport};

/// Live tags a slow subscriber may fall behind by before it is cut off (and reconnects at the
/// next keyframe): about 15 s of 30 fps video with audio.
const BACKLOG: usize = 1024;
/// The keyframe cache stops growing here (a publisher sending no keyframes for minutes).
const MAX_GOP_BYTES: usize = 32 << 20;

/// Response headers carrying what the transcoder needs before the first tag.
pub const SOURCE_HEIGHT: &str = "x-onair-source-height";
pub const HAS_AUDIO: &str = "x-onair-has-audio";
pub const QUALITY_CAP: &str = "x-onair-quality-cap";
pub const TIER: &str = "x-onair-tier";

#[derive(Clone, Debug)]
pub struct Tag {
    pub kind: u8,
    pub ts: u32,
    pub data: Bytes,
}

/// One publishing stream's relay, owned by its publisher: dropping it ends every subscriber.
pub struct Feed {
    tx: broadcast::Sender<Tag>,
    cache: Mutex<Cache>,
    /// What the transcoders need from the key check: the encoder preset and the quality cap.
    pub tier: String,
    pub quality: String,
}

#[derive(Default)]
struct Cache {
    video_config: Option<Tag>,
    audio_config: Option<Tag>,
    gop: Vec<Tag>,
    gop_bytes: usize,
    source_height: Option<u32>,
    source_width: Option<u32>,
    has_audio: bool,
}

/// What a new subscriber starts with.
pub struct Subscription {
    pub rx: broadcast::Receiver<Tag>,
    pub preamble: Vec<Tag>,
    pub source_height: Option<u32>,
    pub has_audio: bool,
}

impl Feed {
    pub fn new(tier: &str, quality: &str) -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
            cache: Mutex::new(Cache { has_audio: true, ..Cache::default() }),
            tier: tier.to_owned(),
            quality: quality.to_owned(),
        }
    }

    /// The publisher's metadata (its `onMetaData`).
    pub fn set_metadata(&self, width: Option<u32>, height: Option<u32>, has_audio: bool) {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        (c.source_width, c.source_height, c.has_audio) = (width, height, has_audio);
    }

    /// The source's picture size, when the publisher said.
    pub fn resolution(&self) -> Option<(u32, u32)> {
        let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.source_width.zip(c.source_height)
    }

    pub fn push(&self, kind: u8, ts: u32, data: &[u8]) {
        let tag = Tag { kind, ts, data: Bytes::copy_from_slice(data) };
        {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if kind == flv::VIDEO && flv::is_avc_config(data) {
                c.video_config = Some(tag.clone());
            } else if kind == flv::AUDIO && flv::is_aac_config(data) {
                c.audio_config = Some(tag.clone());
            } else {
                if kind == flv::VIDEO && flv::is_keyframe(data) {
                    c.gop.clear();
                    c.gop_bytes = 0;
                }
                // Until the first keyframe there is nothing a decoder could start from.
                let started = c.gop.first().is_some_and(|t| t.kind == flv::VIDEO)
                    || (kind == flv::VIDEO && flv::is_keyframe(data));
                if started && c.gop_bytes + data.len() <= MAX_GOP_BYTES {
                    c.gop_bytes += data.len();
                    c.gop.push(tag.clone());
                } else if started {
                    // Too long a GOP to hold: a subscriber would get it with a hole. Nothing
                    // until the next keyframe instead.
                    c.gop.clear();
                    c.gop_bytes = 0;
                }
            }
        }
        // No subscriber is not an error: transcoders come and go.
        let _ = self.tx.send(tag);
    }

    /// Subscribe under the cache lock, so no tag falls between the preamble and the live tags.
    /// `None` until the first keyframe: there is nothing a decoder could start from.
    pub fn subscribe(&self) -> Option<Subscription> {
        let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.gop.first()?;
        let rx = self.tx.subscribe();
        let preamble = c.video_config.iter().chain(c.audio_config.iter()).chain(c.gop.iter()).cloned().collect();
        Some(Subscription { rx, preamble, source_height: c.source_height, has_audio: c.has_audio })
    }
}

/// Incremental FLV parser for the transcoder side: bytes in, tags out.
#[derive(Default)]
pub struct FlvReader {
    buf: Vec<u8>,
    header_done: bool,
}

impl FlvReader {
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete tag, `Ok(None)` when more bytes are needed, `Err` on a stream that is
    /// not FLV.
    pub fn next_tag(&mut self) -> Result<Option<Tag>, &'static str> {
        if !self.header_done {
            if self.buf.len() < 13 {
                return Ok(None);
            }
            if &self.buf[..3] != b"FLV" {
                return Err("not an FLV stream");
            }
            let header_len = u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]) as usize;
            if !(9..=64).contains(&header_len) {
                return Err("bad FLV header");
            }
            if self.buf.len() < header_len + 4 {
                return Ok(None);
            }
            self.buf.drain(..header_len + 4);
            self.header_done = true;
        }
        if self.buf.len() < 11 {
            return Ok(None);
        }
        let kind = self.buf[0];
        let size = u32::from_be_bytes([0, self.buf[1], self.buf[2], self.buf[3]]) as usize;
        let ts = u32::from_be_bytes([self.buf[7], self.buf[4], self.buf[5], self.buf[6]]);
        if self.buf.len() < 11 + size + 4 {
            return Ok(None);
        }
        let data = Bytes::copy_from_slice(&self.buf[11..11 + size]);
        self.buf.drain(..11 + size + 4);
        Ok(Some(Tag { kind, ts, data }))
    }
}

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

/// A transcode pod's life: follow the ingest pod's source, encode this pod's renditions while
/// it flows, wait and reconnect when it stops (the publisher reconnecting, the ingest pod
/// replaced), and report what runs to the origin every few seconds.
pub async fn follow(state: WorkerState, stream: StreamId, source_url: String) {
    use secrecy::ExposeSecret as _;
    let token = state.config.internal_token.expose_secret().to_owned();
    let base = source_url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(3)).build().unwrap_or_default();
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
    p.source_height = text(SOURCE_HEIGHT).and_then(|v| v.parse().ok());
    p.has_audio = text(HAS_AUDIO).is_none_or(|v| v == "true");
    tracing::info!(stream_id = %stream, source_height = ?p.source_height, "following the source");
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
                Ok(a) => state.assign(a.renditions),
                Err(e) => tracing::warn!(stream_id = %stream, error = %e, "unreadable assignment"),
            },
            Ok(_) => {}
            Err(e) => tracing::debug!(stream_id = %stream, error = %e, "could not report to the origin"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(feed_bytes: &[u8]) -> Vec<Tag> {
        let mut r = FlvReader::default();
        let mut out = Vec::new();
        // Byte by byte: a tag split across reads must come out whole.
        for b in feed_bytes {
            r.extend(&[*b]);
            while let Some(t) = r.next_tag().unwrap() {
                out.push(t);
            }
        }
        out
    }

    #[test]
    fn tags_survive_the_round_trip_through_flv() {
        let mut bytes = flv::header(true, true);
        bytes.extend(flv::tag(flv::VIDEO, 0x0102_0304, &[0x17, 0, 1, 2]));
        bytes.extend(flv::tag(flv::AUDIO, 7, &[0xaf, 1, 9]));
        let tags = drain(&bytes);
        assert_eq!(tags.len(), 2);
        assert_eq!((tags[0].kind, tags[0].ts, &tags[0].data[..]), (flv::VIDEO, 0x0102_0304, &[0x17, 0, 1, 2][..]));
        assert_eq!((tags[1].kind, tags[1].ts, &tags[1].data[..]), (flv::AUDIO, 7, &[0xaf, 1, 9][..]));
        let mut bad = FlvReader::default();
        bad.extend(b"GET / HTTP/1.1\r\n\r\n");
        assert!(bad.next_tag().is_err());
    }

    #[test]
    fn a_late_subscriber_starts_at_the_last_keyframe_with_the_codec_config() {
        let feed = Feed::new("free", "source");
        assert!(feed.subscribe().is_none(), "nothing to start a decoder from yet");
        feed.push(flv::AUDIO, 0, &[0xaf, 1, 0]); // before any keyframe: useless to a decoder
        feed.push(flv::VIDEO, 0, &[0x17, 0, 0xcf]); // AVC config
        feed.push(flv::AUDIO, 0, &[0xaf, 0, 0x12]); // AAC config
        feed.push(flv::VIDEO, 10, &[0x17, 1, 1]); // keyframe
        feed.push(flv::VIDEO, 43, &[0x27, 1, 2]);
        feed.push(flv::VIDEO, 1000, &[0x17, 1, 3]); // next keyframe: the cache restarts here
        feed.push(flv::AUDIO, 1010, &[0xaf, 1, 4]);
        let mut sub = feed.subscribe().unwrap();
        let ts: Vec<u32> = sub.preamble.iter().map(|t| t.ts).collect();
        assert_eq!(ts, [0, 0, 1000, 1010]);
        assert!(flv::is_avc_config(&sub.preamble[0].data) && flv::is_aac_config(&sub.preamble[1].data));
        feed.push(flv::VIDEO, 1033, &[0x27, 1, 5]);
        assert_eq!(sub.rx.try_recv().unwrap().ts, 1033, "live tags follow the preamble, none lost");
        drop(feed);
        assert!(
            matches!(sub.rx.try_recv(), Err(broadcast::error::TryRecvError::Closed)),
            "the publisher leaving ends it"
        );

        // A GOP too long to hold is dropped whole: no subscriber starts mid-GOP.
        let long = Feed::new("free", "source");
        long.push(flv::VIDEO, 0, &[0x17, 1]);
        let big = vec![0x27; MAX_GOP_BYTES / 2 + 1];
        long.push(flv::VIDEO, 33, &big);
        assert!(long.subscribe().is_some());
        long.push(flv::VIDEO, 66, &big);
        assert!(long.subscribe().is_none(), "over the limit: wait for the next keyframe");
        long.push(flv::VIDEO, 99, &[0x17, 1]);
        assert_eq!(long.subscribe().unwrap().preamble.len(), 1);
    }
}
