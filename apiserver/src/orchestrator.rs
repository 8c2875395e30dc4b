//! The seam between "a stream should run" and "a media worker runs it".
//!
//! The apiserver calls `start` when a streamer goes live and `stop` when they end; what runs
//! the media is the implementation's business: nothing here (recording, this issue), child
//! processes (local), or a `LiveStream` resource (Kubernetes).

use std::sync::Mutex;

use onair_domain::contracts::playback;
use onair_domain::{PlaybackAccess, StreamId, Tier, UserId};

/// What the orchestrator needs to know about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    pub stream_id: StreamId,
    pub user_id: UserId,
    pub tier: Tier,
    /// Requested top rendition (`source`, `1080p`, ...).
    pub quality: String,
    /// The owner's username (labels and `kubectl get` columns).
    pub channel: String,
    /// Hex SHA-256 of the stream key, for media that checks keys itself.
    pub key_hash: String,
    /// Who may play it (media that cannot ask the apiserver refuses plain paths by it).
    pub playback_access: PlaybackAccess,
}

/// What the media reports about a stream, where the orchestrator can tell (Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct MediaStatus {
    /// The LiveStream phase: Pending, Queued, Starting, Ready, Live, Ending, Ended, Failed.
    pub phase: String,
    pub ingest_url: Option<String>,
    pub playback_url: Option<String>,
    pub renditions: Vec<String>,
    /// Why it is not ready, when it is not.
    pub message: Option<String>,
    /// Whether a viewer's first request plays now; absent where the orchestrator cannot tell
    /// (Kubernetes: the ingest pod's origin holds a viewer's first request until it can).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub playable: Option<bool>,
    /// The broadcast's recording while its media worker stores it (one machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<onair_domain::contracts::media::RecordingState>,
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
    /// The media's own view of the stream, if this orchestrator has one.
    async fn media_status(&self, _stream: StreamId) -> Option<MediaStatus> {
        None
    }
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
            playback_url: playback::master_url(&self.playback_base_url, spec.stream_id),
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

/// The single-machine orchestrator: one media worker process hosts every stream (one ffmpeg
/// per publishing stream, supervised by the worker), so starting needs no new process — only a
/// worker that is up — and stopping asks the worker to disconnect the publisher and close the
/// playlists. One process rather than one per stream: on one machine the streams share the
/// same cores anyway, and a single RTMP port and HLS origin is what a streamer and a player
/// expect from `onair up`.
pub struct LocalOrchestrator {
    media_url: String,
    internal_token: secrecy::SecretString,
    ingest_url: String,
    playback_base_url: String,
    http: reqwest::Client,
}

impl LocalOrchestrator {
    /// `media_url`: the worker's HTTP address (`http://127.0.0.1:8090`).
    pub fn new(
        media_url: &str,
        internal_token: secrecy::SecretString,
        ingest_url: &str,
        playback_base_url: &str,
    ) -> Self {
        Self {
            media_url: media_url.trim_end_matches('/').to_owned(),
            internal_token,
            ingest_url: ingest_url.to_owned(),
            playback_base_url: playback_base_url.trim_end_matches('/').to_owned(),
            // Fails only when the TLS backend cannot start: nothing would work, so say so at
            // start-up instead of running without the timeout.
            http: onair_http::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()
                .expect("the HTTP client for the media worker cannot be built"),
        }
    }
}

#[async_trait::async_trait]
impl Orchestrator for LocalOrchestrator {
    async fn start(&self, spec: &StreamSpec) -> Result<MediaEndpoints, OrchestratorError> {
        let res = self.http.get(format!("{}/healthz", self.media_url)).send().await;
        match res {
            Ok(r) if r.status().is_success() => Ok(MediaEndpoints {
                ingest_url: self.ingest_url.clone(),
                playback_url: playback::master_url(&self.playback_base_url, spec.stream_id),
            }),
            Ok(r) => Err(OrchestratorError(format!("media worker answered {}", r.status()))),
            Err(e) => Err(OrchestratorError(format!("media worker unreachable: {e}"))),
        }
    }

    async fn stop(&self, stream: StreamId) -> Result<(), OrchestratorError> {
        use secrecy::ExposeSecret as _;
        let res = self
            .http
            .post(format!("{}/internal/streams/{stream}/stop", self.media_url))
            .header(onair_domain::contracts::http::INTERNAL_TOKEN_HEADER, self.internal_token.expose_secret())
            .send()
            .await
            .map_err(|e| OrchestratorError(format!("media worker unreachable: {e}")))?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(OrchestratorError(format!("media worker refused the stop: {}", res.status())))
        }
    }

    /// The worker's own state: publishing or waiting, the renditions it makes, and a ladder
    /// shed because the machine could not keep up (one machine sheds by itself).
    async fn media_status(&self, stream: StreamId) -> Option<MediaStatus> {
        use onair_domain::LadderLevel;
        use secrecy::ExposeSecret as _;
        let res = self
            .http
            .get(format!("{}/internal/streams/{stream}", self.media_url))
            .header(onair_domain::contracts::http::INTERNAL_TOKEN_HEADER, self.internal_token.expose_secret())
            .send()
            .await
            .ok()?;
        let state: onair_domain::contracts::media::StreamState = res.error_for_status().ok()?.json().await.ok()?;
        let message = match state.level {
            Some(level) if level != LadderLevel::Full => {
                Some(format!("the encoder fell behind real time; the ladder was shed to {}", level.as_str()))
            }
            _ => None,
        };
        let phase = match (state.publishing, state.playable) {
            (true, true) => "Live",
            // The publisher is connected and the encoder has not cut its first media yet.
            (true, false) => "Starting",
            (false, _) => "Ready",
        };
        Some(MediaStatus {
            phase: phase.to_string(),
            ingest_url: None,
            playback_url: None,
            renditions: state.renditions,
            message,
            playable: Some(state.playable),
            recording: state.recording,
        })
    }

    fn name(&self) -> &'static str {
        "local"
    }
}
