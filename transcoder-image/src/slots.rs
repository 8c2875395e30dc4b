//! Per-stream bookkeeping: the publisher slot (who holds a stream, which publisher generation,
//! whether it was stopped, what its encoder makes) and the stream's ladder level. Plain data
//! under one lock; the publisher lifecycle (`publisher.rs`) decides what to do with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use onair_domain::LadderLevel as Level;
use onair_domain::StreamId;

/// Per stream: whether a publisher holds it, and a generation that changes with each publisher
/// (so a grace timer knows whether the publisher came back).
#[derive(Default)]
pub struct Slot {
    pub publishing: bool,
    pub generation: u64,
    /// Fired by a stop from the orchestrator: the publisher is disconnected and the stream
    /// ends at once, without a grace period.
    pub stop: Arc<tokio::sync::Notify>,
    pub stopped: bool,
    /// What the running transcoder produces, top first (empty when none runs).
    pub renditions: Vec<String>,
    /// When a write to the encoder last found its input pipe full: the machine, not the
    /// publisher, is what is slow (shedding counts only then).
    pub backed_up: Option<std::time::Instant>,
    /// The apiserver keeps a recording of this broadcast: its packaged segments are stored.
    pub record: bool,
    /// Only the top and the lowest of its renditions are recorded (the channel's choice).
    pub record_top_and_lowest: bool,
    /// Set on first use from the configured initial level.
    level: Option<Arc<LevelCell>>,
}

impl Slot {
    pub fn level(&mut self, initial: Level) -> Arc<LevelCell> {
        self.level.get_or_insert_with(|| Arc::new(LevelCell::new(initial))).clone()
    }
}

/// A stream's ladder level, set by the operator and read by its publisher on every keyframe.
#[derive(Debug)]
pub struct LevelCell(std::sync::atomic::AtomicU8);

impl LevelCell {
    pub fn new(level: Level) -> Self {
        Self((level as u8).into())
    }

    pub fn get(&self) -> Level {
        let v = self.0.load(std::sync::atomic::Ordering::Acquire);
        Level::ALL.into_iter().find(|l| *l as u8 == v).unwrap_or(Level::Full)
    }

    pub fn set(&self, level: Level) {
        self.0.store(level as u8, std::sync::atomic::Ordering::Release);
    }
}

/// Every stream's slot this worker knows.
#[derive(Default)]
pub struct Slots(Mutex<HashMap<StreamId, Slot>>);

impl Slots {
    /// The table, locked (a panic elsewhere does not poison it: the data stays usable).
    pub fn lock(&self) -> MutexGuard<'_, HashMap<StreamId, Slot>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a publisher holds the stream right now (its media is on the way).
    pub fn publishing(&self, stream: StreamId) -> bool {
        self.lock().get(&stream).is_some_and(|s| s.publishing)
    }

    /// Whether the stream's broadcast is to be recorded, and whether only its top and lowest
    /// renditions.
    pub fn records(&self, stream: StreamId) -> Option<bool> {
        self.lock().get(&stream).filter(|s| s.record).map(|s| s.record_top_and_lowest)
    }

    /// What this worker's own encoder makes of the stream, top first.
    pub fn renditions(&self, stream: StreamId) -> Vec<String> {
        self.lock().get(&stream).map(|s| s.renditions.clone()).unwrap_or_default()
    }

    /// Whether this worker holds the stream: a publisher, or one within its reconnect grace.
    pub fn holds(&self, stream: StreamId) -> bool {
        self.lock().get(&stream).is_some_and(|s| !s.stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_cell_holds_every_level() {
        let cell = LevelCell::new(Level::Reduced);
        assert_eq!(cell.get(), Level::Reduced);
        for l in Level::ALL {
            cell.set(l);
            assert_eq!(cell.get(), l);
        }
    }
}
