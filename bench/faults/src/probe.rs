//! An API client asking for a stream's public state ten times a second: when it got no answer.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use crate::clock;
use crate::player::Spans;

pub type Outages = Arc<Mutex<Spans>>;

pub fn start(http: reqwest::Client, url: String, mut stop: watch::Receiver<bool>) -> Outages {
    let outages: Outages = Arc::default();
    let o = outages.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let at = clock::now();
            let ok = http.get(&url).timeout(Duration::from_secs(2)).send().await.is_ok_and(|r| r.status().is_success());
            let mut o = o.lock().await;
            if ok {
                o.end(clock::now());
            } else {
                o.begin(at);
            }
        }
    });
    outages
}
