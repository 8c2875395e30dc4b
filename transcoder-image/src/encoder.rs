//! A publisher's encoder: the ffmpeg process fed FLV on stdin. What it makes follows the
//! worker's role and the stream's level (`wanted`, arguments from `ladder.rs`); it starts with the
//! first media, switches at a keyframe when the wanted renditions change (level, assignment),
//! and is restarted under the same publisher when it dies, within a restart budget.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use onair_domain::LadderLevel as Level;
use onair_domain::{StreamId, StreamStatus};
use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, ChildStdin, Command};

use crate::config::Role;
use crate::ladder::{Output, Rendition, Upload, ffmpeg_args, fit_to_source, pick};
use crate::slots::LevelCell;
use crate::state::WorkerState;
use crate::{playlists, progress};
use onair_flv as flv;

/// One stream's encoder: what it is fitted to, and the ffmpeg running for it (if any).
pub struct Encoder {
    stream_id: StreamId,
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
}

/// What a worker should encode from a stream right now.
struct Encoding {
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

/// How long a write to ffmpeg may block before the worker looks whether the encoder should be
/// replaced (a shed while it is behind).
const STALL_CHECK: Duration = Duration::from_millis(250);
/// An encoder that takes no input at all for this long is hung: restarted.
const HUNG: Duration = Duration::from_secs(10);

impl Encoder {
    pub fn new(stream_id: StreamId, quality_cap: Option<u32>, preset: String, level: Arc<LevelCell>) -> Self {
        Self {
            stream_id,
            source_height: None,
            has_audio: true,
            quality_cap,
            preset,
            transcoder: None,
            video_config: None,
            audio_config: None,
            awaiting_keyframe: false,
            restarts: Vec::new(),
            level,
            running: Vec::new(),
            started: false,
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
        if !self.started {
            self.started = true;
            self.transcoder = self.start_transcoder(state).await?;
        } else if kind == flv::VIDEO && flv::is_keyframe(data) && self.wanted(state).names != self.running {
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
        let tag = flv::tag(kind, ts, data);
        let mut written = 0;
        let mut stalled_since: Option<std::time::Instant> = None;
        while written < tag.len() {
            let Some(t) = self.transcoder.as_mut() else { return Ok(()) };
            // A write that cannot finish is an encoder behind real time with its input pipe full.
            // Dropping a pending write loses nothing (nothing of it was taken).
            match tokio::time::timeout(STALL_CHECK, t.stdin.write(&tag[written..])).await {
                Ok(Ok(n)) if n > 0 => {
                    written += n;
                    stalled_since = None;
                }
                Ok(Ok(_)) | Ok(Err(_)) => {
                    // ffmpeg died under us: restart it without dropping the publisher.
                    tracing::warn!(stream_id = %self.stream_id, "transcoder exited; restarting");
                    self.restart(state, ts).await?;
                    return Ok(());
                }
                // Blocked. A shed (or any other change of what is wanted) does not wait for the backlog to drain: that
                // wait is the delay growing. The old encoder goes now; the new one starts at the
                // next keyframe.
                Err(_) if self.wanted(state).names != self.running => {
                    self.switch_now(state, ts).await?;
                    return Ok(());
                }
                Err(_) => {
                    state.slots.lock().entry(self.stream_id).or_default().backed_up = Some(std::time::Instant::now());
                    // Taking nothing at all for this long is a hung encoder, not a slow one.
                    if stalled_since.get_or_insert_with(std::time::Instant::now).elapsed() >= HUNG {
                        tracing::warn!(stream_id = %self.stream_id, "transcoder took no input for 10 s; restarting");
                        self.restart(state, ts).await?;
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Replace an encoder that is behind at once (its backlog is stale): killed, not drained.
    async fn switch_now(&mut self, state: &WorkerState, ts: u32) -> anyhow::Result<()> {
        if let Some(mut old) = self.transcoder.take() {
            let _ = old.child.kill().await;
        }
        self.switch(state, ts).await?;
        self.awaiting_keyframe = true;
        Ok(())
    }

    /// The publisher is gone: close ffmpeg's input so it writes its last segments (killed if it
    /// takes more than 10 s).
    pub async fn finish(&mut self) {
        if let Some(mut t) = self.transcoder.take() {
            drop(t.stdin);
            if tokio::time::timeout(Duration::from_secs(10), t.child.wait()).await.is_err() {
                let _ = t.child.kill().await;
            }
        }
    }

    /// Finish the running encoder (its last segments are written, unless `switch_now` already
    /// let it go) and start one for what is
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
            let gone: Vec<String> = before.iter().filter(|r| !self.running.contains(r)).cloned().collect();
            state.ll.end_renditions(self.stream_id, &gone);
            for gone in &gone {
                playlists::end_playlist(&state.stream_dir(self.stream_id).join(gone).join("index.m3u8")).await;
            }
        }
        Ok(())
    }

    /// A new encoder fed the codec configuration first (it was sent once, at the publisher's
    /// start), so it can decode what follows.
    async fn start_with_config(&mut self, state: &WorkerState, ts: u32) -> anyhow::Result<()> {
        let Some(mut t) = self.start_transcoder(state).await? else { return Ok(()) };
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

    /// What this worker makes of a stream: its level of the ladder (one machine), the source
    /// remuxed (an ingest pod), or the renditions the operator assigned it (a transcode pod).
    fn wanted(&self, state: &WorkerState) -> Encoding {
        // The streamer's quality choice caps the ladder like a smaller source would.
        let cap = match (self.source_height, self.quality_cap) {
            (Some(s), Some(q)) => Some(s.min(q)),
            (s, q) => s.or(q),
        };
        let fitted = fit_to_source(&state.ladder, cap);
        let (level, ladder) = match state.config.role {
            Role::All => (self.level.get(), pick(self.level.get(), &fitted)),
            Role::Ingest => (Level::Passthrough, Vec::new()),
            Role::Transcode => {
                let mine = state.assigned.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let mine = mine.unwrap_or_default();
                (Level::Full, fitted.into_iter().filter(|r| mine.contains(&r.name)).collect())
            }
        };
        let names = if level == Level::Passthrough {
            vec![crate::ladder::SOURCE.to_string()]
        } else {
            ladder.iter().map(|r| r.name.clone()).collect()
        };
        Encoding { level, ladder, names }
    }

    /// The encoder for what the stream wants (`wanted`), recorded as running. `None`: nothing to make (a
    /// transcode pod with no renditions assigned, or none that fits the source).
    async fn start_transcoder(&mut self, state: &WorkerState) -> anyhow::Result<Option<Transcoder>> {
        let Encoding { level, ladder, names } = self.wanted(state);
        self.running = if level != Level::Passthrough && ladder.is_empty() { Vec::new() } else { names.clone() };
        state.slots.lock().entry(self.stream_id).or_default().renditions = self.running.clone();
        if self.running.is_empty() {
            tracing::info!(stream_id = %self.stream_id, "nothing to encode from this source for now");
            return Ok(None);
        }
        let dir = state.stream_dir(self.stream_id);
        let upload_base = match (state.config.role, &state.config.source_url) {
            (Role::Transcode, Some(url)) => {
                Some(format!("{}/internal/streams/{}/hls", url.trim_end_matches('/'), self.stream_id))
            }
            _ => None,
        };
        if upload_base.is_none() {
            // LL-HLS keeps its media in memory: the folder holds the thumbnail only.
            let folders: &[String] = if state.config.low_latency() { &[] } else { &names };
            // (A transcode pod has no folder at all: everything goes to its ingest pod.)
            tokio::fs::create_dir_all(&dir).await?;
            for n in folders {
                tokio::fs::create_dir_all(dir.join(n)).await?;
            }
        }
        let dir_str = dir.to_str().ok_or_else(|| anyhow::anyhow!("media dir is not UTF-8"))?;
        let token = {
            use secrecy::ExposeSecret as _;
            state.config.internal_token.expose_secret().to_owned()
        };
        let out = Output {
            dir: upload_base.as_deref().unwrap_or(dir_str),
            upload: upload_base.as_ref().map(|_| Upload { part: &state.config.part, token: &token }),
            shared_clock: state.config.role != Role::All,
            thumbnail: state.config.role != Role::Transcode,
        };
        // LL-HLS: each rendition streams fragmented MP4 into this worker's own origin (`ll.rs`).
        // A transcode pod streams to its ingest pod (with its part name, as its uploads).
        let ll_base = state.config.low_latency().then(|| match (state.config.role, &state.config.source_url) {
            (Role::Transcode, Some(url)) => {
                format!("{}/internal/streams/{}/ll", url.trim_end_matches('/'), self.stream_id)
            }
            _ => {
                let listen = state.config.http_listen;
                let host = if listen.ip().is_unspecified() { "127.0.0.1".to_string() } else { listen.ip().to_string() };
                let host = if listen.is_ipv6() && !listen.ip().is_unspecified() { format!("[{host}]") } else { host };
                format!("http://{host}:{}/internal/streams/{}/ll", listen.port(), self.stream_id)
            }
        });
        let part = (state.config.role == Role::Transcode).then_some(state.config.part.as_str());
        let ll = ll_base.as_deref().map(|base| crate::ladder::LlTarget { base, token: &token, part });
        let mut args = match (&ll, level == Level::Passthrough) {
            (Some(target), true) => crate::ladder::ll_passthrough_args(&out, target, self.has_audio),
            (Some(target), false) => crate::ladder::ll_ffmpeg_args(&ladder, &self.preset, &out, target, self.has_audio),
            (None, true) => crate::ladder::passthrough_args(&out, self.has_audio),
            (None, false) => ffmpeg_args(&ladder, &self.preset, &out, self.has_audio),
        };
        // A reconnect continues the same playlists, marked with a discontinuity; the end marker
        // is written by us once the stream is really over.
        if let Some(i) = args.iter().position(|a| a == "-hls_flags") {
            args[i + 1].push_str("+append_list+discont_start+omit_endlist");
        }
        let mut child = Command::new(&state.config.ffmpeg)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", state.config.ffmpeg))?;
        let mut stdin = child.stdin.take().ok_or_else(|| anyhow::anyhow!("ffmpeg stdin"))?;
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(progress::watch(state.clone(), self.stream_id, stderr));
        }
        stdin.write_all(&flv::header(self.has_audio, true)).await?;
        tracing::info!(stream_id = %self.stream_id, renditions = ?names, "transcoder started");
        Ok(Some(Transcoder { child, stdin }))
    }
}
