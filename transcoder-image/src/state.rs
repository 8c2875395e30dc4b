//! What every part of the media worker shares: the configuration, the apiserver client, Redis,
//! the metrics, the ladder, the per-stream slots, an ingest pod's source relays and transcoders,
//! and a transcode pod's assignment. Defined here, below everything that uses it (the handlers,
//! the publisher lifecycle, the encoder), so none of them depends on the composition root
//! (`worker.rs`), which builds it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use onair_domain::StreamId;
use onair_domain::contracts::media::StreamState;

use crate::api::ApiClient;
use crate::config::MediaConfig;
use crate::feed::Feed;
use crate::ladder::Rendition;
use crate::metrics::{MediaMetrics, StreamLabels};
use crate::slots::Slots;
use crate::transcoders::Transcoders;

pub struct Inner {
    pub config: MediaConfig,
    pub api: ApiClient,
    pub redis: redis::aio::ConnectionManager,
    pub metrics: MediaMetrics,
    pub registry: prometheus_client::registry::Registry,
    pub ladder: Vec<Rendition>,
    pub slots: Slots,
    /// An ingest pod's source relays, by stream (split roles).
    pub feeds: Mutex<HashMap<StreamId, Arc<Feed>>>,
    /// An ingest pod's transcoders: their reports and the operator's assignment.
    pub transcoders: Transcoders,
    /// A transcode pod's renditions, as the operator assigned them (through the ingest pod).
    pub assigned: Mutex<Option<Vec<String>>>,
    /// LL-HLS: each stream's packaged renditions.
    pub ll: crate::ll_streams::LlStreams,
    /// Stores what `ll` packages, when this worker records.
    pub recorder: Option<Arc<crate::record::Recorder>>,
    /// Verifies signed playback URLs (`--playback-keys`).
    pub playback_keys: Option<onair_playback_token::Keyring>,
    /// Streams whose channel plays only from signed URLs: their plain `/hls/…` paths are
    /// refused. Kept until the stream's media is forgotten (after retention), not just while a
    /// publisher holds it, so an ended stream's leftovers stay behind the token too.
    pub signed_only: Mutex<std::collections::HashSet<StreamId>>,
    /// The origin's capacity for direct viewers.
    pub capacity: crate::capacity::Capacity,
}

#[derive(Clone)]
pub struct WorkerState(Arc<Inner>);

impl std::ops::Deref for WorkerState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The file in a stream's folder that says it plays only from signed URLs (a dot file: no
/// playback path names it).
pub const SIGNED_ONLY_MARKER: &str = ".signed-only";

/// The streams whose folders under `media_dir` carry the signed-only marker: what a worker
/// that restarted must keep refusing plain paths to.
pub fn load_signed_only(media_dir: &std::path::Path) -> std::collections::HashSet<StreamId> {
    let Ok(entries) = std::fs::read_dir(media_dir) else { return Default::default() };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join(SIGNED_ONLY_MARKER).exists())
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

impl WorkerState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    pub fn stream_dir(&self, stream: StreamId) -> PathBuf {
        self.config.media_dir.join(stream.to_string())
    }

    /// What this process knows of a stream (no viewers, no transcoders: the handler adds them).
    pub fn local_state(&self, stream: StreamId) -> StreamState {
        let (publishing, stopped, renditions, level) = {
            let mut slots = self.slots.lock();
            match slots.get_mut(&stream) {
                Some(s) => (s.publishing, s.stopped, s.renditions.clone(), s.level(self.config.initial_level).get()),
                None => (false, false, Vec::new(), self.config.initial_level),
            }
        };
        let labels = StreamLabels { stream_id: stream.to_string() };
        let encode_speed =
            publishing.then(|| self.metrics.encode_speed.get_or_create(&labels).get()).filter(|s| *s > 0.0);
        StreamState {
            publishing,
            stopped,
            renditions,
            viewers: None,
            level: Some(level),
            encode_speed,
            recording: self.recorder.as_ref().and_then(|r| r.state(stream)),
            ..StreamState::default()
        }
    }

    /// A transcode pod's new assignment (from its report's answer); the encoder switches at
    /// the next keyframe.
    pub fn set_assigned(&self, renditions: Vec<String>) {
        let mut a = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
        if a.as_ref() != Some(&renditions) {
            tracing::info!(renditions = ?renditions, "renditions assigned");
            *a = Some(renditions);
        }
    }

    /// Whether the stream plays only from signed URLs.
    pub fn signed_only(&self, stream: StreamId) -> bool {
        self.signed_only.lock().unwrap_or_else(|e| e.into_inner()).contains(&stream)
    }

    /// Records whether the stream plays only from signed URLs (each publisher's key check says),
    /// in memory and as a marker file in the stream's folder: a restarted worker still refuses
    /// the plain paths of what is left of it (`load_signed_only`), until retention removes the
    /// folder.
    pub fn set_signed_only(&self, stream: StreamId, signed: bool) {
        {
            let mut set = self.signed_only.lock().unwrap_or_else(|e| e.into_inner());
            if signed {
                set.insert(stream);
            } else {
                set.remove(&stream);
            }
        }
        // Outside the lock every playback request takes; a tiny file, once per publish.
        let marker = self.stream_dir(stream).join(SIGNED_ONLY_MARKER);
        if signed {
            let written = std::fs::create_dir_all(self.stream_dir(stream)).and_then(|()| std::fs::write(&marker, b""));
            if let Err(e) = written {
                tracing::error!(stream_id = %stream, error = %e, "could not mark the stream signed-only on disk");
            }
        } else {
            let _ = std::fs::remove_file(&marker);
        }
    }

    /// Whether a publisher holds the stream right now (its media is on the way).
    pub fn publishing(&self, stream: StreamId) -> bool {
        self.slots.publishing(stream)
    }

    /// Whether this worker holds the stream: a publisher, or one within its reconnect grace.
    pub fn holds(&self, stream: StreamId) -> bool {
        self.slots.holds(stream)
    }

    /// Where the stream's LL-HLS store hands completed segments: the recorder, when this worker
    /// records and the broadcast is to be recorded.
    pub fn recording_sink(&self, stream: StreamId) -> Option<Arc<dyn onair_llhls::SegmentSink>> {
        let recorder = self.recorder.as_ref()?;
        let Some(top_and_lowest) = self.slots.records(stream) else {
            tracing::debug!(stream_id = %stream, "not recorded: the apiserver keeps no recording of it");
            return None;
        };
        // Weak: the recorder, which holds the sink, is itself held by this state.
        let state = Arc::downgrade(&self.0);
        // The last non-empty ladder seen: when the stream ends, its renditions are cleared
        // before the packager completes their open segments, and an empty ladder would make
        // every rendition both top and lowest (one stray segment of each middle one).
        let last = Mutex::new(Vec::<String>::new());
        let keep: Option<crate::record::Keep> = top_and_lowest.then(|| {
            Box::new(move |rendition: &str| {
                let Some(s) = state.upgrade() else { return true };
                let now = WorkerState(s).packaged(stream);
                let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
                if !now.is_empty() {
                    *last = now;
                }
                crate::record::pick::top_or_lowest(&last, rendition)
            }) as crate::record::Keep
        });
        Some(recorder.sink(stream, keep))
    }

    /// The renditions a stream is packaged in here: this worker's own and, on an ingest pod,
    /// its transcode pods'. Plain data under short locks (the recorder asks under a packager's).
    fn packaged(&self, stream: StreamId) -> Vec<String> {
        let mut all = self.slots.renditions(stream);
        all.extend(self.transcoders.renditions(stream));
        all
    }

    /// The relay of a stream this ingest pod is receiving.
    pub fn feed(&self, stream: StreamId) -> Option<Arc<Feed>> {
        self.feeds.lock().unwrap_or_else(|e| e.into_inner()).get(&stream).cloned()
    }
}
