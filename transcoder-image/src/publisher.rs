//! The publisher lifecycle: a publisher (an RTMP session, or a transcode pod's relayed source)
//! takes its stream's slot after the key check, feeds its encoder and an ingest pod's relay,
//! and leaves; the stream then waits out the reconnect grace (or ends at once when stopped),
//! its playlists get their end marker, and its media is removed after the retention period.

use std::sync::Arc;
use std::time::Duration;

use onair_domain::{StreamId, StreamStatus};

use crate::config::Role;
use crate::encoder::Encoder;
use crate::feed::Feed;
use crate::playlists;
use crate::slots::Slot;
use crate::state::WorkerState;

/// A publisher feeding one stream.
pub struct Publishing {
    pub stream_id: StreamId,
    generation: u64,
    pub stop: Arc<tokio::sync::Notify>,
    /// The stream's ffmpeg, fitted to what the publisher sends.
    pub encoder: Encoder,
    /// An ingest pod's relay to its transcode pods.
    feed: Option<Arc<Feed>>,
}

impl Publishing {
    /// The publisher's metadata: what the ladder is fitted to, and whether there is audio.
    pub fn set_metadata(&mut self, width: Option<u32>, height: Option<u32>, has_audio: bool) {
        self.encoder.source_height = height;
        self.encoder.has_audio = has_audio;
        if let Some(feed) = &self.feed {
            feed.set_metadata(width, height, has_audio);
        }
    }

    /// Write one audio/video message to the relay (an ingest pod) and the encoder.
    pub async fn write(&mut self, state: &WorkerState, kind: u8, ts: u32, data: &[u8]) -> anyhow::Result<()> {
        if let Some(feed) = &self.feed {
            feed.push(kind, ts, data);
        }
        self.encoder.write(state, kind, ts, data).await
    }
}

impl WorkerState {
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
                    // A stream the apiserver does not know has no recording to finish.
                    record: false,
                    record_renditions: None,
                    // Never less than an earlier check said (an apiserver that stopped
                    // answering does not open a restricted stream); the resource's own value is
                    // the floor below.
                    playback_access: self.signed_only(StreamId(only)).then_some(onair_domain::PlaybackAccess::Signed),
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
        // A per-stream pod's resource says too (`--playback-access`): whichever is stricter.
        let floor = self.config.only_stream.is_some()
            && onair_domain::PlaybackAccess::parse(&self.config.playback_access)
                .is_none_or(|a| a != onair_domain::PlaybackAccess::Public);
        let publishing = {
            let mut slots = self.slots.lock();
            let slot = slots.entry(owner.stream_id).or_default();
            if slot.publishing {
                return Err("already_publishing");
            }
            if slot.stopped {
                return Err("stream_stopped");
            }
            slot.record = owner.record;
            slot.record_top_and_lowest = owner.record_renditions == Some(onair_domain::RecordRenditions::TopAndLowest);
            let feed = (self.config.role == Role::Ingest).then(|| {
                let feed = Arc::new(Feed::new(&owner.tier, &owner.quality));
                self.feeds.lock().unwrap_or_else(|e| e.into_inner()).insert(owner.stream_id, feed.clone());
                feed
            });
            self.take_slot(slot, owner.stream_id, &owner.tier, &owner.quality, feed)
        };
        // Once the slot is held, before any media of this publish exists: the sweep of leftover
        // folders (`sweep.rs`) leaves held streams alone, so it cannot take this mark away.
        self.set_signed_only(owner.stream_id, owner.signed_only() || floor);
        Ok(publishing)
    }

    /// A transcode pod's side of the relay: the source takes the stream's slot like a publisher.
    pub fn begin_relay(&self, stream: StreamId, tier: &str, quality: &str) -> Publishing {
        let mut slots = self.slots.lock();
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
        let preset =
            if tier == "partner" { self.config.x264_preset.clone() } else { self.config.x264_preset_free.clone() };
        Publishing {
            stream_id: stream,
            generation: slot.generation,
            stop: slot.stop.clone(),
            encoder: Encoder::new(
                stream,
                quality.trim_end_matches('p').parse().ok(),
                preset,
                slot.level(self.config.initial_level),
            ),
            feed,
        }
    }

    /// The publisher is gone: finish the encoder, and end the stream unless it comes back
    /// within the grace period.
    pub async fn publisher_left(&self, mut p: Publishing) {
        self.metrics.publishers.dec();
        // Dropping the relay ends every transcode pod's source response.
        if p.feed.take().is_some() {
            self.feeds.lock().unwrap_or_else(|e| e.into_inner()).remove(&p.stream_id);
        }
        p.encoder.finish().await;
        let stopped = {
            let mut slots = self.slots.lock();
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
                let mut slots = state.slots.lock();
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
            let mut slots = self.slots.lock();
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

    /// The stream's store just ended, which completed its open segments: the recording has its
    /// last ones queued. Logged once they are stored (or when storing them takes too long).
    fn end_recording(&self, stream: StreamId) {
        let Some(recorder) = self.recorder.clone().filter(|r| r.state(stream).is_some()) else { return };
        recorder.end(stream);
        let timeout = Duration::from_secs(self.config.recording_flush_timeout_secs);
        let api = self.api.clone();
        let thumbnail = self.stream_dir(stream).join("thumb.jpg");
        tokio::spawn(async move {
            if recorder.flushed(stream, timeout).await {
                // The poster of its VOD: the encoder's last thumbnail (before "stored", which
                // lets the apiserver make the VOD).
                if let Ok(jpeg) = tokio::fs::read(thumbnail).await {
                    recorder.put_thumbnail(stream, jpeg).await;
                }
                recorder.finish(stream);
                crate::record::report::flushed(&recorder, &api, stream).await;
                let stored =
                    recorder.state(stream).map(|s| (s.uploaded_segments, s.uploaded_bytes, s.dropped_segments));
                tracing::info!(stream_id = %stream, ?stored, "recording stored");
            } else {
                tracing::warn!(stream_id = %stream, ?timeout, "recording not fully stored in time; the rest is given up");
                recorder.forget(stream);
            }
        });
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
                let mut slots = state.slots.lock();
                let publishing = slots.get(&stream).is_some_and(|s| s.publishing);
                if !publishing {
                    slots.remove(&stream);
                }
                publishing
            };
            if !publishing {
                state.transcoders.forget(stream);
                state.ll.remove(stream);
                if let Some(recorder) = &state.recorder {
                    recorder.forget(stream);
                }
                let removed = tokio::fs::remove_dir_all(&later).await;
                if removed.is_ok() {
                    tracing::info!(stream_id = %stream, "ended stream's media removed");
                }
                // Only once nothing of it is left to serve: plain paths stay refused until then
                // (a removal that failed partway leaves files, and the mark with them).
                if removed.is_ok() || !later.exists() {
                    state.set_signed_only(stream, false);
                }
            }
        });
        let packaged = self.ll.get(stream).map(|s| s.renditions()).unwrap_or_default();
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
            self.ll.end(stream);
            self.end_recording(stream);
            return;
        };
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
        self.transcoders.end_all(stream, names.chain(packaged));
        // LL-HLS renditions end under the same gate, after transcoders can no longer write them
        // (parts still arriving until now are kept): players finish, held requests answer.
        self.ll.end(stream);
        self.end_recording(stream);
        for v in variants {
            playlists::end_playlist(&v.join("index.m3u8")).await;
        }
    }
}
