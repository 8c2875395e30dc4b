//! What the shared state holds for recordings (issue 15): the store with the apiserver's
//! counters about it, and the playback lookups cache. Apart from `state.rs` so the modules that
//! use the state (`recordings`, `playback`) are not among its dependencies.

use std::sync::Arc;
use std::time::Duration;

use onair_domain::PlaybackAccess;
use onair_recording::{Root, Store};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use uuid::Uuid;

/// How long a lookup is trusted: a deletion on another replica plays on for at most this long.
pub const LOOKUP_TTL: Duration = Duration::from_secs(2);

/// What a playback URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Vod,
    Clip,
}

impl Kind {
    /// The path word of its playback URLs.
    pub fn word(self) -> &'static str {
        match self {
            Self::Vod => "vod",
            Self::Clip => "clip",
        }
    }
}

/// `(kind, id)` → the object root it plays from and who may play it (`None`: no such VOD or
/// clip).
pub type Lookups = moka::future::Cache<(Kind, Uuid), Option<(Root, PlaybackAccess)>>;

/// The recordings store and what the apiserver counts about it.
pub struct Recordings {
    pub store: Store,
    pub(crate) metrics: RecordingMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Default)]
pub(crate) struct RecordingMetrics {
    pub finalized: Family<ResultLabels, Counter>,
    pub objects_deleted: Family<ReasonLabels, Counter>,
    pub bytes_stored: Gauge,
}

impl Recordings {
    pub fn new(store: Store, registry: &mut Registry) -> Arc<Self> {
        let metrics = RecordingMetrics::default();
        registry.register(
            "recordings_finalized",
            "Ended recordings made VODs (ready), found empty (empty) or failed for now (failed)",
            metrics.finalized.clone(),
        );
        registry.register(
            "recordings_objects_deleted",
            "Objects deleted from the recordings store, by why their row went",
            metrics.objects_deleted.clone(),
        );
        registry.register(
            "recordings_bytes_stored",
            "Bytes of recorded media kept: VODs and recordings in progress",
            metrics.bytes_stored.clone(),
        );
        Arc::new(Self { store, metrics })
    }
}
