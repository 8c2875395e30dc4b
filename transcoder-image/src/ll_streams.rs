//! Every stream's LL-HLS store (`onair_llhls::Store`), by stream: what the worker's state holds
//! and the LL-HLS routes (`ll`) read and feed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use onair_domain::StreamId;
use onair_llhls::{Config, SegmentSink, Store};

/// Every stream's store, by stream.
#[derive(Debug, Default)]
pub struct LlStreams {
    config: Config,
    streams: Mutex<HashMap<StreamId, Store>>,
}

impl LlStreams {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, Store>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stream's store, made on first use (an encoder's first PUT). Media sequence numbers
    /// start from the clock (seconds / segment target), so a worker restarted mid-stream never
    /// serves a segment URL again with other bytes (they are cached as immutable).
    ///
    /// `sink` is asked once, when the store is made: where its completed segments go (the
    /// recorder), if anywhere.
    pub fn store(&self, stream: StreamId, sink: impl FnOnce() -> Option<Arc<dyn SegmentSink>>) -> Store {
        self.map()
            .entry(stream)
            .or_insert_with(|| {
                let mut config = self.config.clone();
                let target = config.segment_target.as_secs().max(1);
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                config.first_msn = now.as_secs() / target;
                match sink() {
                    Some(sink) => Store::with_sink(config, sink),
                    None => Store::new(config),
                }
            })
            .clone()
    }

    pub fn get(&self, stream: StreamId) -> Option<Store> {
        self.map().get(&stream).cloned()
    }

    /// The stream is over: every rendition gets `#EXT-X-ENDLIST` (players finish, waiting
    /// requests answer). The store stays for the retention period.
    pub fn end(&self, stream: StreamId) {
        if let Some(store) = self.get(stream) {
            store.end_all();
        }
    }

    /// Renditions taken away by a ladder change end; the others go on.
    pub fn end_renditions(&self, stream: StreamId, renditions: &[String]) {
        if let Some(store) = self.get(stream) {
            for r in renditions {
                store.end(r);
            }
        }
    }

    /// Forget the stream's media (after retention): memory is bounded by the live streams.
    pub fn remove(&self, stream: StreamId) {
        self.map().remove(&stream);
    }
}
