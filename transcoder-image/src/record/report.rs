//! Telling the apiserver how each recording keeps up (design §4.3): every few seconds while the
//! worker knows the stream, and once more at once when everything it recorded is stored, which
//! is what lets the apiserver make the VOD without waiting out its flush grace.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use onair_domain::StreamId;

use super::Recorder;
use crate::api::{ApiClient, Reported};

/// How often each recording's state is sent.
pub const EVERY: Duration = Duration::from_secs(5);

/// Sends every recording's state every [`EVERY`], until aborted. A stream the apiserver keeps no
/// recording of (404) is not asked about again.
pub async fn run(recorder: Arc<Recorder>, api: ApiClient) {
    let mut unknown: HashSet<StreamId> = HashSet::new();
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let states = recorder.states();
        // Forgotten streams leave the set too, so it stays as small as the recorder's books.
        unknown.retain(|s| states.iter().any(|(id, _)| id == s));
        for (stream, state) in states {
            if unknown.contains(&stream) {
                continue;
            }
            if api.report_recording(stream, &state).await == Reported::NoRecording {
                tracing::debug!(stream_id = %stream, "the apiserver keeps no recording of this stream");
                unknown.insert(stream);
            }
        }
    }
}

/// Reports a flushed recording at once, retrying briefly (the periodic report repeats it while
/// the worker still knows the stream).
pub async fn flushed(recorder: &Recorder, api: &ApiClient, stream: StreamId) {
    for attempt in 1..=3u32 {
        let Some(state) = recorder.state(stream) else { return };
        match api.report_recording(stream, &state).await {
            Reported::Taken | Reported::NoRecording => return,
            Reported::Failed => tokio::time::sleep(Duration::from_millis(500) * attempt).await,
        }
    }
}
