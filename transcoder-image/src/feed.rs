//! The source relay's data, shared by both ends: an ingest pod's `Feed` (one publisher's FLV
//! tags fanned out to its transcode pods, with the codec configuration and the tags since the
//! last keyframe cached so a late subscriber starts at once); a transcode pod parses the relayed
//! bytes back into tags with `onair_flv::FlvReader`. No HTTP here: `relay.rs` serves and
//! follows it.

use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::broadcast;

use onair_flv as flv;
pub use onair_flv::{FlvReader, Tag};

/// Live tags a slow subscriber may fall behind by before it is cut off (and reconnects at the
/// next keyframe): about 15 s of 30 fps video with audio.
const BACKLOG: usize = 1024;
/// The keyframe cache stops growing here (a publisher sending no keyframes for minutes).
const MAX_GOP_BYTES: usize = 32 << 20;

/// One publishing stream's relay, owned by its publisher: dropping it ends every subscriber.
pub struct Feed {
    tx: broadcast::Sender<Tag>,
    cache: Mutex<Cache>,
    /// What the transcoders need from the key check: the encoder preset and the quality cap.
    pub tier: String,
    pub quality: String,
}

#[derive(Default)]
struct Cache {
    video_config: Option<Tag>,
    audio_config: Option<Tag>,
    gop: Vec<Tag>,
    gop_bytes: usize,
    source_height: Option<u32>,
    source_width: Option<u32>,
    has_audio: bool,
}

/// What a new subscriber starts with.
pub struct Subscription {
    pub rx: broadcast::Receiver<Tag>,
    pub preamble: Vec<Tag>,
    pub source_height: Option<u32>,
    pub has_audio: bool,
}

impl Feed {
    pub fn new(tier: &str, quality: &str) -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
            cache: Mutex::new(Cache { has_audio: true, ..Cache::default() }),
            tier: tier.to_owned(),
            quality: quality.to_owned(),
        }
    }

    /// The publisher's metadata (its `onMetaData`).
    pub fn set_metadata(&self, width: Option<u32>, height: Option<u32>, has_audio: bool) {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        (c.source_width, c.source_height, c.has_audio) = (width, height, has_audio);
    }

    /// The source's picture size, when the publisher said.
    pub fn resolution(&self) -> Option<(u32, u32)> {
        let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.source_width.zip(c.source_height)
    }

    pub fn push(&self, kind: u8, ts: u32, data: &[u8]) {
        let tag = Tag { kind, ts, data: Bytes::copy_from_slice(data) };
        {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if kind == flv::VIDEO && flv::is_avc_config(data) {
                c.video_config = Some(tag.clone());
            } else if kind == flv::AUDIO && flv::is_aac_config(data) {
                c.audio_config = Some(tag.clone());
            } else {
                if kind == flv::VIDEO && flv::is_keyframe(data) {
                    c.gop.clear();
                    c.gop_bytes = 0;
                }
                // Until the first keyframe there is nothing a decoder could start from.
                let started = c.gop.first().is_some_and(|t| t.kind == flv::VIDEO)
                    || (kind == flv::VIDEO && flv::is_keyframe(data));
                if started && c.gop_bytes + data.len() <= MAX_GOP_BYTES {
                    c.gop_bytes += data.len();
                    c.gop.push(tag.clone());
                } else if started {
                    // Too long a GOP to hold: a subscriber would get it with a hole. Nothing
                    // until the next keyframe instead.
                    c.gop.clear();
                    c.gop_bytes = 0;
                }
            }
        }
        // No subscriber is not an error: transcoders come and go.
        let _ = self.tx.send(tag);
    }

    /// Subscribe under the cache lock, so no tag falls between the preamble and the live tags.
    /// `None` until the first keyframe: there is nothing a decoder could start from.
    pub fn subscribe(&self) -> Option<Subscription> {
        let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.gop.first()?;
        let rx = self.tx.subscribe();
        let preamble = c.video_config.iter().chain(c.audio_config.iter()).chain(c.gop.iter()).cloned().collect();
        Some(Subscription { rx, preamble, source_height: c.source_height, has_audio: c.has_audio })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_subscriber_starts_at_the_last_keyframe_with_the_codec_config() {
        let feed = Feed::new("free", "source");
        assert!(feed.subscribe().is_none(), "nothing to start a decoder from yet");
        feed.push(flv::AUDIO, 0, &[0xaf, 1, 0]); // before any keyframe: useless to a decoder
        feed.push(flv::VIDEO, 0, &[0x17, 0, 0xcf]); // AVC config
        feed.push(flv::AUDIO, 0, &[0xaf, 0, 0x12]); // AAC config
        feed.push(flv::VIDEO, 10, &[0x17, 1, 1]); // keyframe
        feed.push(flv::VIDEO, 43, &[0x27, 1, 2]);
        feed.push(flv::VIDEO, 1000, &[0x17, 1, 3]); // next keyframe: the cache restarts here
        feed.push(flv::AUDIO, 1010, &[0xaf, 1, 4]);
        let mut sub = feed.subscribe().unwrap();
        let ts: Vec<u32> = sub.preamble.iter().map(|t| t.ts).collect();
        assert_eq!(ts, [0, 0, 1000, 1010]);
        assert!(flv::is_avc_config(&sub.preamble[0].data) && flv::is_aac_config(&sub.preamble[1].data));
        feed.push(flv::VIDEO, 1033, &[0x27, 1, 5]);
        assert_eq!(sub.rx.try_recv().unwrap().ts, 1033, "live tags follow the preamble, none lost");
        drop(feed);
        assert!(
            matches!(sub.rx.try_recv(), Err(broadcast::error::TryRecvError::Closed)),
            "the publisher leaving ends it"
        );

        // A GOP too long to hold is dropped whole: no subscriber starts mid-GOP.
        let long = Feed::new("free", "source");
        long.push(flv::VIDEO, 0, &[0x17, 1]);
        let big = vec![0x27; MAX_GOP_BYTES / 2 + 1];
        long.push(flv::VIDEO, 33, &big);
        assert!(long.subscribe().is_some());
        long.push(flv::VIDEO, 66, &big);
        assert!(long.subscribe().is_none(), "over the limit: wait for the next keyframe");
        long.push(flv::VIDEO, 99, &[0x17, 1]);
        assert_eq!(long.subscribe().unwrap().preamble.len(), 1);
    }
}
