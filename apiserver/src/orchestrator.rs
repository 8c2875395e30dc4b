//! The seam between "a stream should run" and "a media worker runs it".
//!
//! The apiserver calls `start` when a streamer goes live and `stop` when they end; what runs
//! the media is the implementation's business: nothing here (recording, this issue), child
//! processes (local), or a `LiveStream` resource (Kubernetes).

use std::sync::Mutex;

use onair_domain::{StreamId, Tier, UserId};

/// What the orchestrator needs to know about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    pub stream_id: StreamId,
    pub user_id: UserId,
    pub tier: Tier,
    /// Requested top rendition (`source`, `1080p`, ...).
    pub quality: String,
}

/// Where the media for a stream can be reached once started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaEndpoints {
    /// RTMP base URL the streamer publishes to (`{ingest_url}/{stream_key}`).
    pub ingest_url: String,
    /// HLS master playlist for viewers.
    pub playback_url: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OrchestratorError(pub String);

#[async_trait::async_trait]
pub trait Orchestrator: Send + Sync + 'static {
    /// Make media ready to receive `spec`'s publisher. Idempotent for the same stream.
    async fn start(&self, spec: &StreamSpec) -> Result<MediaEndpoints, OrchestratorError>;
    /// Stop media for `stream` gracefully (the playlist gets its end marker). Idempotent.
    async fn stop(&self, stream: StreamId) -> Result<(), OrchestratorError>;
    /// A short name for logs and `/readyz`.
    fn name(&self) -> &'static str;
}

/// A call the recording orchestrator saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedCall {
    Start(StreamSpec),
    Stop(StreamId),
}

/// Starts nothing; answers with the configured URLs and remembers every call. The default
/// until a media orchestrator is chosen, and what tests assert against.
pub struct RecordingOrchestrator {
    ingest_url: String,
    playback_base_url: String,
    calls: Mutex<Vec<RecordedCall>>,
    fail_starts: std::sync::atomic::AtomicBool,
}

impl RecordingOrchestrator {
    pub fn new(ingest_url: impl Into<String>, playback_base_url: impl Into<String>) -> Self {
        Self {
            ingest_url: ingest_url.into(),
            playback_base_url: playback_base_url.into(),
            calls: Mutex::new(Vec::new()),
            fail_starts: Default::default(),
        }
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Make every later `start` fail (to test how the apiserver copes).
    pub fn fail_starts(&self, fail: bool) {
        self.fail_starts.store(fail, std::sync::atomic::Ordering::SeqCst);
    }

    fn record(&self, call: RecordedCall) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }
}

#[async_trait::async_trait]
impl Orchestrator for RecordingOrchestrator {
    async fn start(&self, spec: &StreamSpec) -> Result<MediaEndpoints, OrchestratorError> {
        self.record(RecordedCall::Start(spec.clone()));
        if self.fail_starts.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(OrchestratorError("recording orchestrator told to fail".into()));
        }
        Ok(MediaEndpoints {
            ingest_url: self.ingest_url.clone(),
            playback_url: format!("{}/{}/master.m3u8", self.playback_base_url.trim_end_matches('/'), spec.stream_id),
        })
    }

    async fn stop(&self, stream: StreamId) -> Result<(), OrchestratorError> {
        self.record(RecordedCall::Stop(stream));
        Ok(())
    }

    fn name(&self) -> &'static str {
        "recording"
    }
}
