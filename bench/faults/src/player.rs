//! A viewer: loads the master playlist, follows the lowest rendition's media playlist, downloads
//! each new segment and plays it out in real time from a simulated buffer, and sends the web
//! app's heartbeat every 10 s. What it records: when it stalled (buffer empty) and when its
//! requests failed.
//!
//! The model is a player that joins two segments behind the live edge and loads whole segments
//! (about 2 s of buffer); an LL-HLS player holds less, so its stalls would be a little longer.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use crate::clock;

/// Spans of run time, with the one still open (if any).
#[derive(Default, Debug)]
pub struct Spans {
    pub closed: Vec<(f64, f64)>,
    pub open: Option<f64>,
}

impl Spans {
    pub fn begin(&mut self, t: f64) {
        self.open.get_or_insert(t);
    }
    pub fn end(&mut self, t: f64) {
        if let Some(a) = self.open.take() {
            self.closed.push((a, t));
        }
    }
    /// Every span, the open one ending `now`.
    pub fn all(&self, now: f64) -> Vec<(f64, f64)> {
        let mut v = self.closed.clone();
        v.extend(self.open.map(|a| (a, now)));
        v
    }
}

#[derive(Default, Debug)]
pub struct PlayerLog {
    /// Playing with an empty buffer.
    pub stalls: Spans,
    /// From a failed request to the next one that succeeded.
    pub failures: Spans,
    pub segments: u64,
    /// Times the playlist started over (a new media sequence, as after the packager restarts).
    pub restarts: u64,
    pub last_segment_at: f64,
}

pub type Log = Arc<Mutex<PlayerLog>>;

/// One segment line of a media playlist.
#[derive(Debug, PartialEq)]
struct Segment {
    seq: u64,
    uri: String,
    duration: f64,
}

#[derive(Debug, PartialEq)]
struct MediaPlaylist {
    map: Option<String>,
    segments: Vec<Segment>,
    ended: bool,
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[at..];
    if let Some(quoted) = rest.strip_prefix('"') { quoted.split('"').next() } else { rest.split(',').next() }
}

fn parse_media(text: &str) -> MediaPlaylist {
    let mut seq = 0;
    let mut duration = None;
    let mut out = MediaPlaylist { map: None, segments: vec![], ended: false };
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            seq = v.parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            duration = v.split(',').next().and_then(|d| d.parse::<f64>().ok());
        } else if line.starts_with("#EXT-X-MAP:") {
            out.map = attr(line, "URI").map(str::to_owned);
        } else if line == "#EXT-X-ENDLIST" {
            out.ended = true;
        } else if !line.is_empty() && !line.starts_with('#') {
            out.segments.push(Segment { seq, uri: line.to_owned(), duration: duration.take().unwrap_or(1.0) });
            seq += 1;
        }
    }
    out
}

/// The variant with the lowest BANDWIDTH in a master playlist.
fn lowest_variant(master: &str) -> Option<String> {
    let mut best: Option<(u64, String)> = None;
    let mut lines = master.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line.starts_with("#EXT-X-STREAM-INF:") {
            let bw = attr(line, "BANDWIDTH").and_then(|b| b.parse().ok()).unwrap_or(u64::MAX);
            if let Some(uri) = lines.next()
                && best.as_ref().is_none_or(|(b, _)| bw < *b)
            {
                best = Some((bw, uri.to_owned()));
            }
        }
    }
    best.map(|(_, u)| u)
}

/// How long playback waits for before it starts, and after a stall.
const START_BUFFER: f64 = 1.0;
const POLL: Duration = Duration::from_millis(500);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const HEARTBEAT: Duration = Duration::from_secs(10);

struct Playout {
    buffer: f64,
    playing: bool,
    last: f64,
}

impl Playout {
    /// Advances playback to `now`; returns when the buffer ran dry, if it did.
    fn advance(&mut self, now: f64) -> Option<f64> {
        let elapsed = now - self.last;
        self.last = now;
        if !self.playing {
            return None;
        }
        self.buffer -= elapsed;
        if self.buffer < 0.0 {
            let dry = now + self.buffer;
            self.buffer = 0.0;
            self.playing = false;
            return Some(dry);
        }
        None
    }
}

pub fn start(
    http: reqwest::Client,
    master_url: String,
    heartbeat_url: String,
    session: String,
    stop: watch::Receiver<bool>,
) -> Log {
    let log: Log = Arc::default();
    tokio::spawn(play(http.clone(), master_url, log.clone(), stop.clone()));
    tokio::spawn(heartbeats(http, heartbeat_url, session, stop));
    log
}

async fn heartbeats(http: reqwest::Client, url: String, session: String, mut stop: watch::Receiver<bool>) {
    let body = serde_json::json!({ "session_id": session });
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = tick.tick() => { let _ = http.post(&url).json(&body).timeout(REQUEST_TIMEOUT).send().await; }
            _ = stop.changed() => return,
        }
    }
}

/// A body, or `Err` for anything a player counts as a failed load (no answer, an error status).
async fn get(http: &reqwest::Client, url: &url::Url) -> Result<bytes::Bytes, ()> {
    let r = http.get(url.clone()).timeout(REQUEST_TIMEOUT).send().await.map_err(|_| ())?;
    if !r.status().is_success() {
        return Err(());
    }
    r.bytes().await.map_err(|_| ())
}

async fn play(http: reqwest::Client, master_url: String, log: Log, mut stop: watch::Receiver<bool>) {
    let Ok(master) = url::Url::parse(&master_url) else { return };
    let mut media: Option<url::Url> = None;
    let mut next_seq: Option<u64> = None;
    let mut map_loaded: Option<String> = None;
    let mut out = Playout { buffer: 0.0, playing: false, last: clock::now() };
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = clock::now();
        if let Some(dry) = out.advance(now) {
            log.lock().await.stalls.begin(dry);
        }
        // The master playlist once, then the chosen rendition's playlist.
        let playlist_url = match &media {
            Some(m) => m.clone(),
            None => {
                let Ok(body) = get(&http, &master).await else {
                    log.lock().await.failures.begin(now);
                    continue;
                };
                let text = String::from_utf8_lossy(&body).into_owned();
                let Some(uri) = lowest_variant(&text).and_then(|u| master.join(&u).ok()) else {
                    log.lock().await.failures.begin(now);
                    continue;
                };
                media = Some(uri.clone());
                uri
            }
        };
        let Ok(body) = get(&http, &playlist_url).await else {
            log.lock().await.failures.begin(clock::now());
            continue;
        };
        let pl = parse_media(&String::from_utf8_lossy(&body));
        let Some(last) = pl.segments.last().map(|s| s.seq) else { continue };
        match next_seq {
            None => next_seq = Some(last.saturating_sub(1)),
            // The playlist went back: the packager started over (a restarted worker).
            Some(n) if last + 5 < n => {
                next_seq = Some(last.saturating_sub(1));
                map_loaded = None;
                log.lock().await.restarts += 1;
            }
            Some(_) => {}
        }
        if let Some(map) = &pl.map
            && map_loaded.as_ref() != Some(map)
        {
            match playlist_url.join(map) {
                Ok(u) if get(&http, &u).await.is_ok() => map_loaded = Some(map.clone()),
                _ => {
                    log.lock().await.failures.begin(clock::now());
                    continue;
                }
            }
        }
        let mut ok = true;
        let from = next_seq;
        for seg in pl.segments.iter().filter(|s| Some(s.seq) >= from) {
            let Ok(u) = playlist_url.join(&seg.uri) else { continue };
            if get(&http, &u).await.is_err() {
                ok = false;
                break;
            }
            let now = clock::now();
            if let Some(dry) = out.advance(now) {
                log.lock().await.stalls.begin(dry);
            }
            out.buffer += seg.duration;
            next_seq = Some(seg.seq + 1);
            let mut l = log.lock().await;
            l.segments += 1;
            l.last_segment_at = now;
            if !out.playing && out.buffer >= START_BUFFER {
                out.playing = true;
                l.stalls.end(now);
            }
        }
        let mut l = log.lock().await;
        if ok {
            l.failures.end(clock::now());
        } else {
            l.failures.begin(clock::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_segments_with_their_sequence_and_map() {
        let pl = parse_media(
            "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-MAP:URI=\"init.mp4\"\n\
             #EXTINF:1.001,\nseg7.m4s\n#EXT-X-PART:DURATION=0.2,URI=\"p8.0.m4s\"\n#EXTINF:0.5,\nseg8.m4s\n",
        );
        assert_eq!(pl.map.as_deref(), Some("init.mp4"));
        assert_eq!(
            pl.segments,
            vec![
                Segment { seq: 7, uri: "seg7.m4s".into(), duration: 1.001 },
                Segment { seq: 8, uri: "seg8.m4s".into(), duration: 0.5 }
            ]
        );
        assert!(!pl.ended);
    }

    #[test]
    fn picks_the_cheapest_variant() {
        let m = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360\n360p/index.m3u8\n\
                 #EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=426x240\n240p/index.m3u8\n";
        assert_eq!(lowest_variant(m).as_deref(), Some("240p/index.m3u8"));
    }

    #[test]
    fn an_empty_buffer_is_a_stall_from_when_it_ran_dry() {
        let mut p = Playout { buffer: 1.5, playing: true, last: 10.0 };
        assert_eq!(p.advance(11.0), None);
        assert_eq!(p.advance(12.0), Some(11.5));
        assert!(!p.playing);
        assert_eq!(p.advance(13.0), None, "a stall is reported once");
    }
}
