//! The media worker: RTMP listener, one ffmpeg per publishing stream, HLS origin.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use onair_domain::{StreamId, StreamStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdin, Command};

use crate::api::ApiClient;
use crate::config::{MediaConfig, Role};
use crate::ladder::{Output, Rendition, Upload, ffmpeg_args, fit_to_source, parse_ladder, pick};
use crate::origin::Transcoders;
use crate::relay::Feed;
use crate::{flv, hls, origin, relay, rtmp};
use onair_domain::LadderLevel as Level;
use onair_domain::contracts::media::StreamState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub stream_id: String,
}

pub struct MediaMetrics {
    pub publishers: Gauge,
    pub refused: Family<ReasonLabels, Counter>,
    /// ffmpeg's `speed=` per stream: under 1.0 the encoder falls behind real time.
    pub encode_speed: Family<StreamLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub dropped_frames: Family<StreamLabels, Gauge>,
    pub restarts: Counter,
}

impl MediaMetrics {
    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
    }
}

/// Per stream: whether a publisher holds it, and a generation that changes with each publisher
/// (so a grace timer knows whether the publisher came back).
#[derive(Default)]
struct Slot {
    publishing: bool,
    generation: u64,
    /// Fired by a stop from the orchestrator: the publisher is disconnected and the stream
    /// ends at once, without a grace period.
    stop: Arc<tokio::sync::Notify>,
    stopped: bool,
    /// What the running transcoder produces, top first (empty when none runs).
    renditions: Vec<String>,
    /// Set on first use from the configured initial level.
    level: Option<Arc<LevelCell>>,
}

impl Slot {
    fn level(&mut self, initial: Level) -> Arc<LevelCell> {
        self.level.get_or_insert_with(|| Arc::new(LevelCell::new(initial))).clone()
    }
}

/// A stream's ladder level, set by the operator and read by its publisher on every keyframe.
#[derive(Debug)]
pub struct LevelCell(std::sync::atomic::AtomicU8);

impl LevelCell {
    fn new(level: Level) -> Self {
        Self((level as u8).into())
    }

    pub fn get(&self) -> Level {
        let v = self.0.load(std::sync::atomic::Ordering::Acquire);
        Level::ALL.into_iter().find(|l| *l as u8 == v).unwrap_or(Level::Full)
    }

    fn set(&self, level: Level) {
        self.0.store(level as u8, std::sync::atomic::Ordering::Release);
    }
}

pub struct Inner {
    pub config: MediaConfig,
    pub api: ApiClient,
    pub redis: redis::aio::ConnectionManager,
    pub metrics: MediaMetrics,
    pub registry: prometheus_client::registry::Registry,
    ladder: Vec<Rendition>,
    slots: Mutex<HashMap<StreamId, Slot>>,
    /// An ingest pod's source relays, by stream (split roles).
    feeds: Mutex<HashMap<StreamId, Arc<Feed>>>,
    /// An ingest pod's transcoders: their reports and the operator's assignment.
    pub transcoders: Transcoders,
    /// A transcode pod's renditions, as the operator assigned them (through the ingest pod).
    assigned: Mutex<Option<Vec<String>>>,
}

#[derive(Clone)]
pub struct WorkerState(Arc<Inner>);

impl std::ops::Deref for WorkerState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A publisher feeding one stream.
pub struct Publishing {
    pub stream_id: StreamId,
    generation: u64,
    pub stop: Arc<tokio::sync::Notify>,
    pub source_height: Option<u32>,
    pub has_audio: bool,
    /// Top rendition height the streamer asked for (`None`: the source).
    quality_cap: Option<u32>,
    preset: String,
    transcoder: Option<Transcoder>,
    /// The codec configuration tags (AVC/AAC sequence headers): a restarted ffmpeg needs them
    /// before any frame it can decode.
    video_config: Option<Vec<u8>>,
    audio_config: Option<Vec<u8>>,
    /// After a restart, video is held back until the next keyframe.
    awaiting_keyframe: bool,
    /// Recent transcoder restarts, for backoff and giving up.
    restarts: Vec<std::time::Instant>,
    /// The level the operator wants (one machine).
    level: Arc<LevelCell>,
    /// What the running encoder makes (empty: none runs), and whether one was ever started.
    running: Vec<String>,
    started: bool,
    /// An ingest pod's relay to its transcode pods.
    feed: Option<Arc<Feed>>,
}

/// What a worker should make of a stream right now.
struct Plan {
    level: Level,
    /// Renditions to encode (empty for passthrough).
    ladder: Vec<Rendition>,
    /// Variant names: the renditions', or the source's.
    names: Vec<String>,
}

struct Transcoder {
    child: Child,
    stdin: ChildStdin,
}

impl Publishing {
    /// The publisher's metadata: what the ladder is fitted to, and whether there is audio.
    pub fn set_metadata(&mut self, width: Option<u32>, height: Option<u32>, has_audio: bool) {
        self.source_height = height;
        self.has_audio = has_audio;
        if let Some(feed) = &self.feed {
            feed.set_metadata(width, height, has_audio);
        }
    }

    /// Write one audio/video message; the transcoder starts with the first one, when the
    /// stream's metadata (size, audio) is known.
    pub async fn write(&mut self, state: &WorkerState, kind: u8, ts: u32, data: &[u8]) -> anyhow::Result<()> {
        // Remember the codec configuration; it is sent once by the publisher, at the start.
        if kind == flv::VIDEO && flv::is_avc_config(data) {
            self.video_config = Some(data.to_vec());
        } else if kind == flv::AUDIO && flv::is_aac_config(data) {
            self.audio_config = Some(data.to_vec());
        }
        if let Some(feed) = &self.feed {
            feed.push(kind, ts, data);
        }
        if !self.started {
            self.started = true;
            self.transcoder = state.start_transcoder(self).await?;
        } else if kind == flv::VIDEO && flv::is_keyframe(data) && state.plan(self).names != self.running {
            // A new level, or new renditions for this transcode pod: a new encoder from this
            // keyframe on, under the same publisher.
            self.switch(state, ts).await?;
        }
        if self.awaiting_keyframe && kind == flv::VIDEO {
            if !flv::is_keyframe(data) {
                return Ok(());
            }
            self.awaiting_keyframe = false;
        }
        let Some(t) = self.transcoder.as_mut() else { return Ok(()) };
        if let Err(e) = t.stdin.write_all(&flv::tag(kind, ts, data)).await {
            // ffmpeg died under us: restart it without dropping the publisher.
            tracing::warn!(stream_id = %self.stream_id, error = %e, "transcoder exited; restarting");
            self.restart(state, ts).await?;
        }
        Ok(())
    }

    /// Finish the running encoder (its last segments are written) and start one for what is
    /// wanted now. Not a failure: no backoff, not counted against the restart budget.
    async fn switch(&mut self, state: &WorkerState, ts: u32) -> anyhow::Result<()> {
        if let Some(mut old) = self.transcoder.take() {
            drop(old.stdin);
            if tokio::time::timeout(Duration::from_secs(5), old.child.wait()).await.is_err() {
                let _ = old.child.kill().await;
            }
        }
        let before = std::mem::take(&mut self.running);
        self.start_with_config(state, ts).await?;
        tracing::info!(stream_id = %self.stream_id, from = ?before, to = ?self.running, "renditions changed");
        // Renditions dropped here are over: players on them switch instead of waiting for
        // segments that will not come. (A transcode pod's playlists live on the ingest pod,
        // which ends them when the operator takes them away.)
        if state.config.role == Role::All {
            for gone in before.iter().filter(|r| !self.running.contains(r)) {
                origin::end_playlist(&state.stream_dir(self.stream_id).join(gone).join("index.m3u8")).await;
            }
        }
        Ok(())
    }

    /// A new encoder fed the codec configuration first (it was sent once, at the publisher's
    /// start), so it can decode what follows.
    async fn start_with_config(&mut self, state: &WorkerState, ts: u32) -> anyhow::Result<()> {
        let Some(mut t) = state.start_transcoder(self).await? else { return Ok(()) };
        for (kind, config) in [(flv::VIDEO, &self.video_config), (flv::AUDIO, &self.audio_config)] {
            if let Some(c) = config {
                t.stdin.write_all(&flv::tag(kind, ts, c)).await?;
            }
        }
        self.transcoder = Some(t);
        Ok(())
    }

    /// Start a fresh ffmpeg (with backoff; at most 5 restarts a minute), replay the codec
    /// configuration, and resume at the next keyframe. The playlists continue, marked with a
    /// discontinuity.
    async fn restart(&mut self, state: &WorkerState, ts: u32) -> anyhow::Result<()> {
        if let Some(mut old) = self.transcoder.take() {
            let _ = old.child.kill().await;
        }
        let now = std::time::Instant::now();
        self.restarts.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        if self.restarts.len() >= 5 {
            // A transcode pod gives up on this source only; the ingest pod owns the status.
            if state.config.role != Role::Transcode {
                state.api.report(self.stream_id, StreamStatus::Failed).await;
            }
            anyhow::bail!("transcoder keeps failing; giving up on this stream");
        }
        tokio::time::sleep(Duration::from_millis(200 * (1 << self.restarts.len()))).await;
        self.restarts.push(now);
        state.metrics.restarts.inc();
        self.start_with_config(state, ts).await?;
        self.awaiting_keyframe = true;
        Ok(())
    }
}

impl WorkerState {
    fn stream_dir(&self, stream: StreamId) -> PathBuf {
        self.config.media_dir.join(stream.to_string())
    }

    /// What this process knows of a stream (no viewers, no transcoders: the handler adds them).
    pub(crate) fn local_state(&self, stream: StreamId) -> StreamState {
        let (publishing, stopped, renditions, level) = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
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
            ..StreamState::default()
        }
    }

    /// A transcode pod's new assignment (from its report's answer); the encoder switches at
    /// the next keyframe.
    pub fn assign(&self, renditions: Vec<String>) {
        let mut a = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
        if a.as_ref() != Some(&renditions) {
            tracing::info!(renditions = ?renditions, "renditions assigned");
            *a = Some(renditions);
        }
    }

    /// Whether a publisher holds the stream right now (its media is on the way).
    pub(crate) fn publishing(&self, stream: StreamId) -> bool {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).get(&stream).is_some_and(|s| s.publishing)
    }

    /// Whether this worker holds the stream: a publisher, or one within its reconnect grace.
    pub(crate) fn holds(&self, stream: StreamId) -> bool {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).get(&stream).is_some_and(|s| !s.stopped)
    }

    /// The relay of a stream this ingest pod is receiving.
    pub fn feed(&self, stream: StreamId) -> Option<Arc<Feed>> {
        self.feeds.lock().unwrap_or_else(|e| e.into_inner()).get(&stream).cloned()
    }

    /// Check the key and take the stream's publisher slot; the reason on refusal.
    pub async fn begin_publish(&self, key: &str) -> Result<Publishing, &'static str> {
        if self.config.role == Role::Transcode {
            return Err("transcode_only");
        }
        if let Some(expected) = &self.config.stream_key_hash {
            let got = onair_domain::contracts::stream_key::hash_hex(key);
            if !got.eq_ignore_ascii_case(expected.trim()) {
                return Err("unknown_key");
            }
        }
        let owner = match (self.config.only_stream, &self.config.stream_key_hash) {
            // A per-stream pod whose Secret's hash matched. The apiserver still has the last
            // word (a rotated key, an ended stream), unless this stream is one it does not know
            // (a LiveStream applied with kubectl: `--trust-key-hash`).
            (Some(only), Some(_)) => match self.api.verify_key(key).await {
                Ok(o) if o.stream_id.0 != only => return Err("other_stream"),
                Ok(o) => o,
                Err(_) if self.config.trust_key_hash => crate::api::KeyOwner {
                    stream_id: StreamId(only),
                    tier: self.config.tier.clone(),
                    quality: "source".into(),
                },
                Err(r) => return Err(r.label()),
            },
            _ => {
                let owner = self.api.verify_key(key).await.map_err(|r| r.label())?;
                if self.config.only_stream.is_some_and(|only| only != owner.stream_id.0) {
                    return Err("other_stream");
                }
                owner
            }
        };
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = slots.entry(owner.stream_id).or_default();
        if slot.publishing {
            return Err("already_publishing");
        }
        if slot.stopped {
            return Err("stream_stopped");
        }
        let feed = (self.config.role == Role::Ingest).then(|| {
            let feed = Arc::new(Feed::new(&owner.tier, &owner.quality));
            self.feeds.lock().unwrap_or_else(|e| e.into_inner()).insert(owner.stream_id, feed.clone());
            feed
        });
        Ok(self.take_slot(slot, owner.stream_id, &owner.tier, &owner.quality, feed))
    }

    /// A transcode pod's side of the relay: the source takes the stream's slot like a publisher.
    pub fn begin_relay(&self, stream: StreamId, tier: &str, quality: &str) -> Publishing {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = slots.entry(stream).or_default();
        self.take_slot(slot, stream, tier, quality, None)
    }

    fn take_slot(
        &self,
        slot: &mut Slot,
        stream: StreamId,
        tier: &str,
        quality: &str,
        feed: Option<Arc<Feed>>,
    ) -> Publishing {
        slot.publishing = true;
        slot.generation += 1;
        self.metrics.publishers.inc();
        Publishing {
            stream_id: stream,
            generation: slot.generation,
            stop: slot.stop.clone(),
            quality_cap: quality.trim_end_matches('p').parse().ok(),
            preset: if tier == "partner" {
                self.config.x264_preset.clone()
            } else {
                self.config.x264_preset_free.clone()
            },
            source_height: None,
            has_audio: true,
            transcoder: None,
            video_config: None,
            audio_config: None,
            awaiting_keyframe: false,
            restarts: Vec::new(),
            level: slot.level(self.config.initial_level),
            running: Vec::new(),
            started: false,
            feed,
        }
    }

    /// What this worker makes of a stream: its level of the ladder (one machine), the source
    /// remuxed (an ingest pod), or the renditions the operator assigned it (a transcode pod).
    fn plan(&self, p: &Publishing) -> Plan {
        // The streamer's quality choice caps the ladder like a smaller source would.
        let cap = match (p.source_height, p.quality_cap) {
            (Some(s), Some(q)) => Some(s.min(q)),
            (s, q) => s.or(q),
        };
        let fitted = fit_to_source(&self.ladder, cap);
        let (level, ladder) = match self.config.role {
            Role::All => (p.level.get(), pick(p.level.get(), &fitted)),
            Role::Ingest => (Level::Passthrough, Vec::new()),
            Role::Transcode => {
                let mine = self.assigned.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let mine = mine.unwrap_or_default();
                (Level::Full, fitted.into_iter().filter(|r| mine.contains(&r.name)).collect())
            }
        };
        let names = if level == Level::Passthrough {
            vec![crate::ladder::SOURCE.to_string()]
        } else {
            ladder.iter().map(|r| r.name.clone()).collect()
        };
        Plan { level, ladder, names }
    }

    /// The encoder for the stream's plan, recorded as running. `None`: nothing to make (a
    /// transcode pod with no renditions assigned, or none that fits the source).
    async fn start_transcoder(&self, p: &mut Publishing) -> anyhow::Result<Option<Transcoder>> {
        let Plan { level, ladder, names } = self.plan(p);
        p.running = if level != Level::Passthrough && ladder.is_empty() { Vec::new() } else { names.clone() };
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).entry(p.stream_id).or_default().renditions =
            p.running.clone();
        if p.running.is_empty() {
            tracing::info!(stream_id = %p.stream_id, "nothing to encode from this source for now");
            return Ok(None);
        }
        let dir = self.stream_dir(p.stream_id);
        let upload_base = match (self.config.role, &self.config.source_url) {
            (Role::Transcode, Some(url)) => {
                Some(format!("{}/internal/streams/{}/hls", url.trim_end_matches('/'), p.stream_id))
            }
            _ => None,
        };
        if upload_base.is_none() {
            for n in &names {
                tokio::fs::create_dir_all(dir.join(n)).await?;
            }
        }
        let dir_str = dir.to_str().ok_or_else(|| anyhow::anyhow!("media dir is not UTF-8"))?;
        let token = {
            use secrecy::ExposeSecret as _;
            self.config.internal_token.expose_secret().to_owned()
        };
        let out = Output {
            dir: upload_base.as_deref().unwrap_or(dir_str),
            upload: upload_base.as_ref().map(|_| Upload { part: &self.config.part, token: &token }),
            shared_clock: self.config.role != Role::All,
            thumbnail: self.config.role != Role::Transcode,
        };
        let mut args = if level == Level::Passthrough {
            crate::ladder::passthrough_args(&out, p.has_audio)
        } else {
            ffmpeg_args(&ladder, &p.preset, &out, p.has_audio)
        };
        // A reconnect continues the same playlists, marked with a discontinuity; the end marker
        // is written by us once the stream is really over.
        if let Some(i) = args.iter().position(|a| a == "-hls_flags") {
            args[i + 1].push_str("+append_list+discont_start+omit_endlist");
        }
        let mut child = Command::new(&self.config.ffmpeg)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", self.config.ffmpeg))?;
        let mut stdin = child.stdin.take().ok_or_else(|| anyhow::anyhow!("ffmpeg stdin"))?;
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(watch_progress(self.clone(), p.stream_id, stderr));
        }
        stdin.write_all(&flv::header(p.has_audio, true)).await?;
        tracing::info!(stream_id = %p.stream_id, renditions = ?names, "transcoder started");
        Ok(Some(Transcoder { child, stdin }))
    }

    /// The publisher is gone: finish the encoder, and end the stream unless it comes back
    /// within the grace period.
    pub async fn publisher_left(&self, mut p: Publishing) {
        self.metrics.publishers.dec();
        // Dropping the relay ends every transcode pod's source response.
        if p.feed.take().is_some() {
            self.feeds.lock().unwrap_or_else(|e| e.into_inner()).remove(&p.stream_id);
        }
        if let Some(mut t) = p.transcoder.take() {
            drop(t.stdin);
            if tokio::time::timeout(Duration::from_secs(10), t.child.wait()).await.is_err() {
                let _ = t.child.kill().await;
            }
        }
        let stopped = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            match slots.get_mut(&p.stream_id) {
                Some(s) => {
                    s.publishing = false;
                    s.renditions.clear();
                    s.stopped
                }
                None => false,
            }
        };
        if self.config.role == Role::Transcode {
            // The source went away; the ingest pod decides whether the stream is over.
            tracing::info!(stream_id = %p.stream_id, "source ended");
            return;
        }
        if stopped {
            // Stopped by the orchestrator: the apiserver already recorded the end.
            self.finish_playlists(p.stream_id).await;
            tracing::info!(stream_id = %p.stream_id, "stream stopped");
            return;
        }
        tracing::info!(stream_id = %p.stream_id, grace_secs = self.config.reconnect_grace_secs, "publisher left");
        self.api.report(p.stream_id, StreamStatus::Starting).await;
        let state = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(state.config.reconnect_grace_secs)).await;
            let over = {
                let mut slots = state.slots.lock().unwrap_or_else(|e| e.into_inner());
                let over = slots.get(&p.stream_id).is_some_and(|s| !s.publishing && s.generation == p.generation);
                if over {
                    slots.remove(&p.stream_id);
                }
                over
            };
            if over {
                state.finish_playlists(p.stream_id).await;
                state.api.report(p.stream_id, StreamStatus::Ended).await;
                tracing::info!(stream_id = %p.stream_id, "stream ended after the reconnect grace period");
            }
        });
    }

    /// Stop a stream: disconnect its publisher (if any), finish its playlists, refuse new
    /// publishers for it. Idempotent.
    pub async fn stop_stream(&self, stream: StreamId) {
        let publishing = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let slot = slots.entry(stream).or_default();
            slot.stopped = true;
            // A stored permit, so a publisher between two reads still sees it.
            slot.stop.notify_one();
            slot.publishing
        };
        if !publishing {
            self.finish_playlists(stream).await;
        }
    }

    /// Append `#EXT-X-ENDLIST` to every media playlist of a stream that is over, and remove the
    /// stream's folder once the retention period has passed, so the media dir does not grow.
    async fn finish_playlists(&self, stream: StreamId) {
        let dir = self.stream_dir(stream);
        let (state, later) = (self.clone(), dir.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(state.config.retention_secs)).await;
            // Forget the stream's slot too (the apiserver refuses keys of ended streams anyway).
            let publishing = {
                let mut slots = state.slots.lock().unwrap_or_else(|e| e.into_inner());
                let publishing = slots.get(&stream).is_some_and(|s| s.publishing);
                if !publishing {
                    slots.remove(&stream);
                }
                publishing
            };
            if !publishing {
                state.transcoders.forget(stream);
                if tokio::fs::remove_dir_all(&later).await.is_ok() {
                    tracing::info!(stream_id = %stream, "ended stream's media removed");
                }
            }
        });
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else { return };
        let mut variants = Vec::new();
        while let Ok(Some(e)) = entries.next_entry().await {
            if e.path().join("index.m3u8").exists() {
                variants.push(e.path());
            }
        }
        // Transcode pods still flushing their last segments must not reopen what ends here.
        let gate = self.transcoders.gate(stream);
        let _held = gate.lock().await;
        let names = variants.iter().filter_map(|v| v.file_name()?.to_str().map(str::to_owned));
        self.transcoders.end_all(stream, names);
        for v in variants {
            origin::end_playlist(&v.join("index.m3u8")).await;
        }
    }
}

/// Read ffmpeg's `-progress` output: export encode speed and dropped frames.
async fn watch_progress(state: WorkerState, stream: StreamId, stderr: tokio::process::ChildStderr) {
    let labels = StreamLabels { stream_id: stream.to_string() };
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let (mut dropped, mut last_report) = (0i64, std::time::Instant::now() - Duration::from_secs(60));
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(v) = line.strip_prefix("speed=") {
            if let Ok(speed) = v.trim().trim_end_matches('x').parse::<f64>() {
                state.metrics.encode_speed.get_or_create(&labels).set(speed);
                // The apiserver hears about it every 5 s (the streamer's dashboard, the autoscaler).
                if last_report.elapsed() >= Duration::from_secs(5) {
                    last_report = std::time::Instant::now();
                    let (api, s) = (state.api.clone(), speed);
                    tokio::spawn(async move { api.report_health(stream, s, dropped).await });
                }
            }
        } else if let Some(v) = line.strip_prefix("drop_frames=") {
            if let Ok(n) = v.trim().parse::<i64>() {
                dropped = n;
                state.metrics.dropped_frames.get_or_create(&labels).set(n);
            }
        } else if !line.contains('=') && !line.trim().is_empty() {
            tracing::warn!(stream_id = %stream, ffmpeg = %line, "ffmpeg");
        }
    }
    state.metrics.encode_speed.remove(&labels);
}

pub struct MediaWorker {
    rtmp: TcpListener,
    http: TcpListener,
    state: WorkerState,
}

impl MediaWorker {
    pub async fn build(config: MediaConfig) -> anyhow::Result<Self> {
        let ladder = parse_ladder(&config.ladder).map_err(|e| anyhow::anyhow!("--ladder: {e}"))?;
        let api = ApiClient::new(&config.apiserver_url, config.internal_token.clone())?;
        let redis = onair_infra::redis(&config.redis).await?;
        tokio::fs::create_dir_all(&config.media_dir).await?;
        let mut registry = onair_telemetry::registry("media");
        let metrics = MediaMetrics {
            publishers: Gauge::default(),
            refused: Family::default(),
            encode_speed: Family::default(),
            dropped_frames: Family::default(),
            restarts: Counter::default(),
        };
        registry.register("publishers", "Publishers connected", metrics.publishers.clone());
        registry.register("refused_publishers", "Publishers refused, by reason", metrics.refused.clone());
        registry.register("encode_speed", "ffmpeg encode speed (1.0 = real time)", metrics.encode_speed.clone());
        registry.register("dropped_frames", "Frames ffmpeg dropped", metrics.dropped_frames.clone());
        registry.register("transcoder_restarts", "ffmpeg restarts after a crash", metrics.restarts.clone());
        let rtmp = TcpListener::bind(config.rtmp_listen)
            .await
            .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.rtmp_listen))?;
        let http = TcpListener::bind(config.http_listen)
            .await
            .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.http_listen))?;
        if config.role == Role::Transcode && (config.only_stream.is_none() || config.source_url.is_none()) {
            anyhow::bail!("a transcode worker needs --stream-id and --source-url");
        }
        // Until the operator says otherwise (through the ingest pod), the flag's renditions.
        let assigned = match &config.renditions {
            Some(list) => {
                let names: Vec<String> =
                    list.split(',').map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect();
                if let Some(n) = names.iter().find(|n| !ladder.iter().any(|r| &r.name == *n)) {
                    anyhow::bail!("--renditions: {n} is not in the ladder");
                }
                Some(names)
            }
            None => None,
        };
        let state = WorkerState(Arc::new(Inner {
            config,
            api,
            redis,
            metrics,
            registry,
            ladder,
            slots: Mutex::default(),
            feeds: Mutex::default(),
            transcoders: Transcoders::default(),
            assigned: Mutex::new(assigned),
        }));
        Ok(Self { rtmp, http, state })
    }

    pub fn rtmp_addr(&self) -> SocketAddr {
        self.rtmp.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let rtmp_addr = self.rtmp_addr();
        let http_addr = self.http_addr();
        let rtmp = self.rtmp;
        let accept = tokio::spawn(async move {
            loop {
                match rtmp.accept().await {
                    Ok((tcp, peer)) => {
                        tokio::spawn(rtmp::handle(state.clone(), tcp, peer));
                    }
                    Err(e) => tracing::warn!(error = %e, "rtmp accept failed"),
                }
            }
        });
        // Players on other origins (the web app) read playlists, and the 404 a player gets
        // before the first segment exists must be readable too.
        let hls = Router::new().route("/hls/{stream_id}/{*path}", get(hls::serve)).layer(
            tower_http::set_header::SetResponseHeaderLayer::overriding(
                http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                http::HeaderValue::from_static("*"),
            ),
        );
        let config = &self.state.config;
        let follow = match (config.role, config.only_stream, config.source_url.clone()) {
            (Role::Transcode, Some(stream), Some(url)) => {
                Some(tokio::spawn(relay::follow(self.state.clone(), StreamId(stream), url)))
            }
            _ => None,
        };
        // Transcode pods upload segments: larger bodies than any other internal route.
        let uploads = Router::new()
            .route(
                "/internal/streams/{stream_id}/hls/{*path}",
                axum::routing::put(origin::upload).delete(origin::remove),
            )
            .layer(axum::extract::DefaultBodyLimit::max(origin::MAX_UPLOAD_BYTES));
        let router = Router::new()
            .merge(hls)
            .merge(uploads)
            .route("/internal/streams/{stream_id}/source", get(relay::serve))
            .route("/internal/streams/{stream_id}/transcoders", axum::routing::put(origin::assign))
            .route("/internal/streams/{stream_id}/transcoders/{part}", axum::routing::post(origin::report))
            .route("/internal/streams/{stream_id}/stop", axum::routing::post(stop))
            .route("/internal/streams/{stream_id}", get(stream_state))
            .route("/internal/streams/{stream_id}/level", axum::routing::put(set_level))
            .route("/healthz", get(onair_web::healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.state.clone());
        let router = onair_web::finish_router(router, onair_web::Limits::default());
        tracing::info!(rtmp = %rtmp_addr, http = %http_addr, "media worker listening");
        let result = onair_web::serve(self.http, router, shutdown).await;
        accept.abort();
        // A transcode pod going away kills its encoder with it (the child dies on drop).
        if let Some(f) = follow {
            f.abort();
        }
        Ok(result?)
    }
}

/// The internal token check and the stream id of an internal route.
pub(crate) fn internal_stream(
    state: &WorkerState,
    headers: &http::HeaderMap,
    stream_id: &str,
) -> Result<StreamId, onair_web::HttpError> {
    use secrecy::ExposeSecret as _;
    let presented =
        headers.get(onair_domain::contracts::http::INTERNAL_TOKEN_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
    let expected = state.config.internal_token.expose_secret().as_bytes();
    if presented.len() != expected.len() || presented.iter().zip(expected).fold(0u8, |a, (x, y)| a | (x ^ y)) != 0 {
        return Err(onair_web::HttpError::new(
            http::StatusCode::UNAUTHORIZED,
            "invalid_token",
            "internal routes need the internal token",
        ));
    }
    let stream: StreamId = stream_id
        .parse()
        .map_err(|_| onair_web::HttpError::new(http::StatusCode::BAD_REQUEST, "invalid_path", "not a stream id"))?;
    // A per-stream pod knows one stream: nothing is made or kept for any other.
    if state.config.only_stream.is_some_and(|only| only != stream.0) {
        return Err(onair_web::HttpError::new(http::StatusCode::NOT_FOUND, "unknown_stream", "not this pod's stream"));
    }
    Ok(stream)
}

/// `POST /internal/streams/{id}/stop` (internal token): what the orchestrators call when a
/// streamer presses stop (local) or a LiveStream is suspended or deleted (the operator).
async fn stop(
    State(state): State<WorkerState>,
    axum::extract::Path(stream_id): axum::extract::Path<String>,
    headers: http::HeaderMap,
) -> Result<http::StatusCode, onair_web::HttpError> {
    let stream = internal_stream(&state, &headers, &stream_id)?;
    state.stop_stream(stream).await;
    Ok(http::StatusCode::NO_CONTENT)
}

/// `GET /internal/streams/{id}` (internal token): publisher, renditions and viewers, for the
/// operator's status.
async fn stream_state(
    State(state): State<WorkerState>,
    axum::extract::Path(stream_id): axum::extract::Path<String>,
    headers: http::HeaderMap,
) -> Result<axum::Json<StreamState>, onair_web::HttpError> {
    let stream = internal_stream(&state, &headers, &stream_id)?;
    let mut s = state.local_state(stream);
    // `None` when Redis does not answer: the operator keeps its last count instead of reading
    // "nobody is watching" and stepping the ladder down.
    let window = Duration::from_secs(state.config.viewer_window_secs);
    s.viewers =
        onair_infra::current_viewers(&mut state.redis.clone(), &state.config.redis.redis_prefix, stream, window)
            .await
            .ok();
    // An ingest pod speaks for its stream: the source plus what its transcoders run.
    s.transcoders = state.transcoders.live(stream);
    s.source_height = state.feed(stream).and_then(|f| f.resolution()).map(|(_, h)| h);
    let mut all: Vec<String> = s.transcoders.iter().flat_map(|t| t.renditions.iter().cloned()).collect();
    all.sort_by_key(|r| std::cmp::Reverse(r.trim_end_matches('p').parse::<u32>().unwrap_or(0)));
    all.dedup();
    s.renditions.extend(all);
    Ok(axum::Json(s))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelBody {
    level: Level,
}

/// `PUT /internal/streams/{id}/level` (internal token): the operator's autoscaler changes the
/// ladder; a running encoder switches at the next keyframe, under the same publisher.
async fn set_level(
    State(state): State<WorkerState>,
    axum::extract::Path(stream_id): axum::extract::Path<String>,
    headers: http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<http::StatusCode, onair_web::HttpError> {
    let stream = internal_stream(&state, &headers, &stream_id)?;
    let body: LevelBody = serde_json::from_slice(&body).map_err(|_| {
        onair_web::HttpError::new(
            http::StatusCode::BAD_REQUEST,
            "invalid_level",
            "expected {\"level\": \"Passthrough\" | \"Reduced\" | \"Full\"}",
        )
    })?;
    let cell = state
        .slots
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(stream)
        .or_default()
        .level(state.config.initial_level);
    cell.set(body.level);
    tracing::info!(stream_id = %stream, level = ?body.level, "ladder level set");
    Ok(http::StatusCode::NO_CONTENT)
}

/// Ready when Redis (viewer counting) answers: a pod that cannot count viewers still serves
/// video, so this gates traffic only at start.
async fn readyz(State(state): State<WorkerState>) -> http::StatusCode {
    let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut state.redis.clone()).await;
    if pong.is_ok() { http::StatusCode::OK } else { http::StatusCode::SERVICE_UNAVAILABLE }
}

async fn metrics(State(state): State<WorkerState>) -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        onair_telemetry::encode(&state.registry),
    )
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
