//! Recording (issue 15, design §4.3): every segment the LL-HLS packager completes is stored in the
//! recordings store (`onair_recording`: a directory on one machine, S3 on Kubernetes) while the
//! stream is live, so losing this process loses only what was still queued.
//!
//! The packager hands segments to a [`StreamSink`] outside its lock; the sink queues them without
//! blocking (`record/queue.rs`, bounded by bytes); upload tasks store the oldest first and retry
//! each one, with backoff, for as long as it is queued. Keys never change content, so a late or
//! repeated PUT is harmless. Transcode pods stream their renditions into the ingest pod's store,
//! so the ingest pod (or `all`) is the only one that records.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use onair_domain::StreamId;
use onair_domain::contracts::media::RecordingState;
use onair_llhls::{CompletedSegment, SegmentSink};
use onair_recording::layout::Session;
use onair_recording::object_store::path::Path;
use onair_recording::object_store::{ObjectStoreExt as _, PutPayload};
use onair_recording::{Store, object_store};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

use crate::metrics::ReasonLabels;

pub mod dvr;
pub mod pick;
pub mod queue;
pub mod report;

use dvr::Dvr;
use onair_recording::layout::{Rel, Rendition, Root, SegmentName};
use queue::{Item, Pushed, Queue};

/// What the media worker's flags say about recording.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub queue_bytes: u64,
    pub concurrency: usize,
    /// A stream whose oldest unstored segment is this old is `behind`.
    pub behind: Duration,
    /// How far back viewers can rewind a live stream (zero: not at all).
    pub dvr_window: Duration,
}

/// Our retry loop around object_store's own short one (`onair_recording::store`): 0.5 s doubling
/// to 15 s, ±20 %, for as long as the item is queued.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(15);

#[derive(Debug)]
pub struct Recorder {
    store: Store,
    config: RecorderConfig,
    queue: Mutex<Queue>,
    /// Each stream's rewind window: what was queued, listed once stored.
    dvr: Mutex<Dvr>,
    /// Streams whose end task is done (poster stored): only then is "stored" reported, since
    /// the apiserver makes the VOD on it.
    finished: Mutex<std::collections::HashSet<StreamId>>,
    /// An item was queued.
    work: Notify,
    /// An item was stored.
    stored: Notify,
    metrics: RecorderMetrics,
}

#[derive(Debug, Default)]
struct RecorderMetrics {
    uploaded_bytes: Counter,
    uploaded_segments: Counter,
    dropped_segments: Counter,
    queue_bytes: Gauge,
    failures: Family<ReasonLabels, Counter>,
}

impl RecorderMetrics {
    fn set_queue_bytes(&self, bytes: u64) {
        self.queue_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

impl Recorder {
    pub fn new(store: Store, config: RecorderConfig, registry: &mut Registry) -> Arc<Self> {
        let metrics = RecorderMetrics::default();
        registry.register(
            "recording_uploaded_bytes",
            "Bytes stored in the recordings store",
            metrics.uploaded_bytes.clone(),
        );
        registry.register(
            "recording_uploaded_segments",
            "Segments stored in the recordings store",
            metrics.uploaded_segments.clone(),
        );
        registry.register(
            "recording_segments_dropped",
            "Segments not recorded: the upload queue was full",
            metrics.dropped_segments.clone(),
        );
        registry.register("recording_queue_bytes", "Bytes waiting to be stored", metrics.queue_bytes.clone());
        registry.register(
            "recording_upload_failures",
            "Failed attempts to store an object, by reason (each is retried)",
            metrics.failures.clone(),
        );
        let queue = Mutex::new(Queue::new(config.queue_bytes, config.behind));
        let dvr = Mutex::new(Dvr::new(config.dvr_window));
        Arc::new(Self {
            store,
            config,
            queue,
            dvr,
            finished: Mutex::default(),
            work: Notify::new(),
            stored: Notify::new(),
            metrics,
        })
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn dvr(&self) -> MutexGuard<'_, Dvr> {
        self.dvr.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store recordings go to (the rewind window's segments are read from it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The rewind window's playlist of a stream's rendition, once something is stored.
    pub fn dvr_playlist(&self, stream: StreamId, rendition: &Rendition) -> Option<String> {
        self.dvr().playlist(stream, rendition)
    }

    /// Whether the stream's rewind window holds `rel` (an init of a rendition it has, or a
    /// stored segment still in the window).
    pub fn dvr_holds(&self, stream: StreamId, rel: &Rel) -> bool {
        let dvr = self.dvr();
        match rel {
            Rel::Segment(r, name) => dvr.holds(stream, r, name),
            Rel::Init(r, _) => dvr.renditions(stream).contains(r),
            _ => false,
        }
    }

    /// Start recording `stream`: the sink its LL-HLS store hands completed segments to. One
    /// session per store, so a worker restarted mid-stream starts a new one (a discontinuity).
    /// `keep` (when given) says which renditions are recorded (`pick`): it is asked under the
    /// packager's lock, so it must only read plain data.
    pub fn sink(self: &Arc<Self>, stream: StreamId, keep: Option<Keep>) -> Arc<dyn SegmentSink> {
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let session = Session(u64::try_from(now_ms.as_millis()).unwrap_or(0));
        self.queue().begin(stream, session);
        tracing::info!(stream_id = %stream, %session, top_and_lowest = keep.is_some(), "recording");
        Arc::new(StreamSink { recorder: Arc::downgrade(self), stream, keep })
    }

    fn push(&self, stream: StreamId, segment: &CompletedSegment) {
        let (pushed, bytes) = {
            let mut q = self.queue();
            let pushed = q.push(stream, segment, Instant::now());
            // Into the rewind window before the queue lock goes: an upload task could otherwise
            // store the segment before its slot exists, and the window would wait for it forever.
            // (Lock order: queue, then window; nothing takes them the other way round.)
            if let (Pushed::Queued(name), Ok(rendition)) = (pushed, Rendition::parse(&segment.rendition)) {
                self.dvr().queued(stream, &rendition, name);
            }
            (pushed, q.bytes())
        };
        self.metrics.set_queue_bytes(bytes);
        match pushed {
            Pushed::Queued(_) => self.work.notify_one(),
            Pushed::Dropped => {
                self.metrics.dropped_segments.inc();
                tracing::debug!(stream_id = %stream, rendition = %segment.rendition, msn = segment.segment.msn, "recording queue full: segment dropped");
            }
            Pushed::Ignored => {
                tracing::debug!(stream_id = %stream, rendition = %segment.rendition, "not a recordable rendition name: not recorded");
            }
        }
    }

    /// The stream is over: its last segments are queued already (the store ended first).
    pub fn end(&self, stream: StreamId) {
        self.queue().end(stream);
        self.dvr().end(stream);
        self.stored.notify_waiters();
    }

    /// Waits until everything `stream` recorded is stored, or `timeout`; whether it was.
    pub async fn flushed(&self, stream: StreamId, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let stored = self.stored.notified();
            match self.state(stream) {
                Some(s) if s.flushed => return true,
                // Forgotten: given up, not stored.
                None => return false,
                Some(_) => {}
            }
            if tokio::time::timeout_at(deadline, stored).await.is_err() {
                return false;
            }
        }
    }

    pub fn state(&self, stream: StreamId) -> Option<RecordingState> {
        self.queue().state(stream, Instant::now())
    }

    /// Stores a recording's poster (`thumb.jpg`), once; a failure only costs the poster.
    pub async fn put_thumbnail(&self, stream: StreamId, jpeg: Vec<u8>) {
        let path = Path::from(Root::Recording(stream.0).key(&Rel::Thumb));
        if let Err(e) = self.store.put(&path, PutPayload::from(jpeg)).await {
            tracing::info!(stream_id = %stream, error = %e, "the recording's poster was not stored");
        }
    }

    /// The stream's end task is done: its recording may be reported stored.
    pub fn finish(&self, stream: StreamId) {
        self.finished.lock().unwrap_or_else(PoisonError::into_inner).insert(stream);
    }

    /// Every stream being recorded, with its state as the apiserver may hear it: `flushed` only
    /// once the end task finished (the queue may drain before the poster is stored).
    pub fn states(&self) -> Vec<(StreamId, RecordingState)> {
        let finished = self.finished.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let q = self.queue();
        let now = Instant::now();
        q.streams()
            .into_iter()
            .filter_map(|s| {
                let mut state = q.state(s, now)?;
                state.flushed &= finished.contains(&s);
                Some((s, state))
            })
            .collect()
    }

    /// Forget a stream whose recording is flushed (or given up on).
    pub fn forget(&self, stream: StreamId) {
        self.queue().forget(stream);
        self.dvr().forget(stream);
        self.finished.lock().unwrap_or_else(PoisonError::into_inner).remove(&stream);
    }

    /// Starts the upload tasks.
    pub fn start(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.config.concurrency.max(1))
            .map(|_| {
                let me = self.clone();
                tokio::spawn(async move { me.upload_loop().await })
            })
            .collect()
    }

    /// Stops the upload tasks after at most `drain` more to store what is queued.
    pub async fn stop(&self, tasks: Vec<tokio::task::JoinHandle<()>>, drain: Duration) {
        let pending = self.queue().pending();
        if pending > 0 {
            tracing::info!(pending, "storing what is queued before stopping");
            let deadline = tokio::time::Instant::now() + drain;
            loop {
                let stored = self.stored.notified();
                if self.queue().pending() == 0 || tokio::time::timeout_at(deadline, stored).await.is_err() {
                    break;
                }
            }
            let left = self.queue().pending();
            if left > 0 {
                tracing::warn!(left, "stopping with recorded segments not stored");
            }
        }
        for t in tasks {
            t.abort();
        }
    }

    async fn upload_loop(&self) {
        loop {
            let work = self.work.notified();
            let Some(item) = self.queue().pop() else {
                work.await;
                continue;
            };
            self.put(&item).await;
            let bytes = {
                let mut q = self.queue();
                q.done(&item);
                q.bytes()
            };
            self.metrics.set_queue_bytes(bytes);
            self.metrics.uploaded_bytes.inc_by(item.bytes.len() as u64);
            if item.segment {
                self.metrics.uploaded_segments.inc();
                if let Ok((_, Rel::Segment(rendition, name))) = Root::parse_key(&item.key) {
                    self.stored_segment(item.stream, &rendition, &name);
                }
            }
            self.stored.notify_waiters();
            // Another task may have left work behind while this one stored.
            if !self.queue().is_empty() {
                self.work.notify_one();
            }
        }
    }

    fn stored_segment(&self, stream: StreamId, rendition: &Rendition, name: &SegmentName) {
        self.dvr().stored(stream, rendition, name);
    }

    /// Stores `item`, retrying until it is or its stream is forgotten (given up).
    async fn put(&self, item: &Item) {
        let path = Path::from(item.key.as_str());
        let mut delay = BACKOFF_FIRST;
        let mut attempt = 0u32;
        loop {
            match self.store.put(&path, PutPayload::from(item.bytes.clone())).await {
                Ok(_) => {
                    if attempt > 0 {
                        tracing::info!(stream_id = %item.stream, key = %item.key, attempt, "stored after retrying");
                    }
                    return;
                }
                Err(e) => {
                    attempt += 1;
                    let reason = failure_reason(&e);
                    self.metrics.failures.get_or_create(&ReasonLabels { reason }).inc();
                    // The first failure of an outage is news; the retries are not.
                    if attempt == 1 {
                        tracing::warn!(stream_id = %item.stream, key = %item.key, reason, error = %e, "storing a recorded object failed; retrying");
                    } else {
                        tracing::debug!(stream_id = %item.stream, key = %item.key, attempt, error = %e, "still failing");
                    }
                    let jitter = rand::random_range(0.8..1.2);
                    tokio::time::sleep(delay.mul_f64(jitter)).await;
                    delay = (delay * 2).min(BACKOFF_MAX);
                    if !self.queue().is_pending(item) {
                        return;
                    }
                }
            }
        }
    }
}

/// A bounded label for what went wrong, from the innermost error: object_store's retry wrapper
/// names its own `retry_timeout` in every message, so the outer text says nothing.
fn failure_reason(e: &object_store::Error) -> &'static str {
    let mut inner: &dyn std::error::Error = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    let text = inner.to_string().to_ascii_lowercase();
    if text.contains("timed out") || text.contains("timeout") {
        "timeout"
    } else if text.contains("connect") || text.contains("refused") {
        "connect"
    } else if text.contains("status") || text.contains("server returned") {
        "status"
    } else {
        "other"
    }
}

/// Whether a rendition (by name) is recorded.
pub type Keep = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// One stream's sink: queues without blocking the packager.
struct StreamSink {
    recorder: std::sync::Weak<Recorder>,
    stream: StreamId,
    keep: Option<Keep>,
}

impl std::fmt::Debug for StreamSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSink").field("stream", &self.stream).field("filtered", &self.keep.is_some()).finish()
    }
}

impl SegmentSink for StreamSink {
    fn completed(&self, segment: CompletedSegment) {
        if self.keep.as_ref().is_some_and(|keep| !keep(&segment.rendition)) {
            return;
        }
        if let Some(recorder) = self.recorder.upgrade() {
            recorder.push(self.stream, &segment);
        }
    }
}
