//! Names that cross process boundaries: NATS subjects, Redis keys, HTTP headers and
//! the CRD identity. Every service takes them from here; nothing restates the strings.

use crate::StreamId;

pub mod front_door;

/// NATS subjects. One subject per chat room, one for moderation events per room, one for
/// stream lifecycle events (see the crate README).
pub mod subjects {
    use super::*;

    /// Everything chat lives under; the JetStream stream covers `chat.>`.
    pub const CHAT_ROOT: &str = "onair.chat";
    /// Stream lifecycle events (`started`, `live`, `ended`), published by the apiserver.
    pub const STREAM_LIFECYCLE: &str = "onair.streams.lifecycle";

    /// The chat subject of one room.
    pub fn chat_room(prefix: &str, stream: StreamId) -> String {
        format!("{prefix}{CHAT_ROOT}.room.{stream}")
    }

    /// The moderation-event subject of one room.
    pub fn chat_moderation(prefix: &str, stream: StreamId) -> String {
        format!("{prefix}{CHAT_ROOT}.mod.{stream}")
    }

    /// The lifecycle subject, prefixed for test isolation.
    pub fn stream_lifecycle(prefix: &str) -> String {
        format!("{prefix}{STREAM_LIFECYCLE}")
    }
}

/// Redis keys. Redis holds ephemeral state only: losing it loses no durable data.
pub mod redis_keys {
    use super::*;

    /// Sorted set of viewer session ids scored by the last time each was seen (unix ms).
    pub fn viewer_sessions(prefix: &str, stream: StreamId) -> String {
        format!("{prefix}viewers:{stream}")
    }

    /// HyperLogLog of every viewer session id a stream has seen (unique viewers).
    pub fn unique_viewers(prefix: &str, stream: StreamId) -> String {
        format!("{prefix}uniq:{stream}")
    }

    /// Counter of chat messages since the last analytics sample (the chat gateway increments it).
    pub fn chat_counter(prefix: &str, stream: StreamId) -> String {
        format!("{prefix}chatcount:{stream}")
    }

    /// A rate-limit bucket: `scope` names the limit, `subject` whom it counts.
    pub fn rate_limit(prefix: &str, scope: &str, subject: &str) -> String {
        format!("{prefix}rl:{scope}:{subject}")
    }

    /// Claimed by the one replica that takes an analytics sample at `tick` (unix seconds).
    pub fn sampler_tick(prefix: &str, tick: i64) -> String {
        format!("{prefix}sampler:{tick}")
    }

    /// The newest analytics tick written to Postgres (unix seconds): a sampler back from an
    /// outage fills in the ticks after it.
    pub fn sampler_written(prefix: &str) -> String {
        format!("{prefix}sampler:written")
    }

    /// A delivery base's (CDN's) circuit-breaker keys: `what` is `fail:{bucket}`, `ok:{bucket}`,
    /// `open`, `seen:{address}` or `okseen:{address}:{bucket}`. The base's name is a hash tag, so one script sees them all.
    pub fn delivery_base(prefix: &str, base: &str, what: &str) -> String {
        format!("{prefix}cdn:{{{base}}}:{what}")
    }
}

/// A player's viewer session id: made by the player, sent with heartbeats, playlist requests
/// (`?session=`) and playback-source requests, and named in signed playback links.
pub mod viewer_session {
    /// 8-64 characters of `A-Za-z0-9_-`.
    pub fn is_valid(s: &str) -> bool {
        (8..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn session_ids() {
            assert!(super::is_valid("abcdEFGH-123_x"));
            assert!(!super::is_valid("short"));
            assert!(!super::is_valid("has space in it"));
            assert!(!super::is_valid(&"x".repeat(65)));
        }
    }
}

/// HTTP headers and paths shared between services.
pub mod http {
    /// Header carrying the shared secret on internal (service-to-service) endpoints.
    pub const INTERNAL_TOKEN_HEADER: &str = "x-onair-internal-token";
    /// Where the apiserver publishes its JWT public keys.
    pub const JWKS_PATH: &str = "/.well-known/jwks.json";
    /// Cookie holding the refresh token for browsers (httpOnly).
    pub const REFRESH_COOKIE: &str = "onair_refresh";
}

/// The media worker's internal routes as the operator and a stream's transcode pods use them:
/// one set of types on both sides, so the contract cannot drift.
pub mod media {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use crate::LadderLevel;

    /// `GET /internal/streams/{id}`: what the operator observes about a stream.
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct StreamState {
        pub publishing: bool,
        pub stopped: bool,
        /// What runs, top first (an ingest pod: the source plus its transcoders' renditions).
        pub renditions: Vec<String>,
        /// Sessions that fetched media within the viewer window (`None`: Redis did not answer,
        /// and the last count stands).
        pub viewers: Option<i64>,
        /// The ladder level a single-process worker runs.
        #[serde(default)]
        pub level: Option<LadderLevel>,
        /// The encoder's last reported speed (1.0 = real time), while one runs.
        #[serde(default)]
        pub encode_speed: Option<f64>,
        /// An ingest pod's transcode pods that reported lately.
        #[serde(default)]
        pub transcoders: Vec<TranscoderState>,
        /// The publisher's picture height, while one publishes (no rendition is made above it).
        #[serde(default)]
        pub source_height: Option<u32>,
        /// Whether a viewer's first request plays now: the master playlist lists a rendition
        /// that has media. A publisher connects a second or more before this turns true.
        #[serde(default)]
        pub playable: bool,
        /// The stream's recording, while this worker records it.
        #[serde(default)]
        pub recording: Option<RecordingState>,
    }

    /// How a stream's recording keeps up: uploads trail the live edge by `lag_ms`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "lowercase")]
    pub enum UploadState {
        /// Uploads keep up.
        #[default]
        Ok,
        /// The oldest segment not yet stored is older than the worker's `behind` threshold.
        Behind,
        /// Segments were dropped (the upload queue was full) within the last minute.
        Failing,
    }

    /// A stream's recording as its worker sees it.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "camelCase")]
    pub struct RecordingState {
        pub state: UploadState,
        /// Age of the oldest segment completed but not yet stored (0: all stored).
        pub lag_ms: u64,
        pub queued_bytes: u64,
        pub uploaded_segments: u64,
        pub uploaded_bytes: u64,
        pub dropped_segments: u64,
        /// The stream ended and everything it recorded is stored.
        pub flushed: bool,
    }

    /// A transcode pod as its ingest pod last heard from it.
    #[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TranscoderState {
        /// Its part name (`t0`).
        pub part: String,
        pub renditions: Vec<String>,
        pub encode_speed: Option<f64>,
    }

    /// `POST /internal/streams/{id}/transcoders/{part}`: a transcode pod's report.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct TranscoderReport {
        pub renditions: Vec<String>,
        pub encode_speed: Option<f64>,
    }

    /// The answer to a report: the renditions the operator assigned that part.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Assignment {
        pub renditions: Vec<String>,
    }

    /// `PUT /internal/streams/{id}/transcoders`: renditions by part, `{"t0": ["720p"]}`.
    pub type Parts = BTreeMap<String, Vec<String>>;

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn an_older_worker_s_state_still_reads() {
            let s: StreamState =
                serde_json::from_str(r#"{"publishing":true,"stopped":false,"renditions":["360p"],"viewers":null}"#)
                    .unwrap();
            assert_eq!((s.level, s.transcoders.len(), s.viewers), (None, 0, None));
            let wire = serde_json::to_value(StreamState { encode_speed: Some(1.5), ..Default::default() }).unwrap();
            assert_eq!(wire["encodeSpeed"], 1.5, "camelCase on the wire");
            assert!(serde_json::from_str::<TranscoderReport>(r#"{"renditions":[],"encodeSpeed":1,"x":1}"#).is_err());
        }
    }
}

/// How a stream key is identified outside the apiserver: the hex SHA-256 of the key, as the
/// LiveStream's Secret holds it and a per-stream media worker checks it.
pub mod stream_key {
    use sha2::{Digest as _, Sha256};

    pub fn hash_hex(key: &str) -> String {
        to_hex(&Sha256::digest(key.as_bytes()))
    }

    pub fn to_hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn hashes_are_lowercase_hex_sha256() {
            assert_eq!(super::hash_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        }
    }
}

/// Where viewers play a stream.
pub mod playback {
    /// A header the origin puts on every playback answer, passed through by edges and CDNs:
    /// a player tells the origin's own 503s (a stream starting, a direct viewer over capacity:
    /// the same through every source, so it waits) from a CDN's (its backend is down: it
    /// moves to the next source).
    pub const FROM_HEADER: &str = "x-onair-from";
    /// Its value.
    pub const FROM_ORIGIN: &str = "origin";

    /// The HLS master playlist of `stream` under the playback `base`:
    /// `{base}/{stream}/master.m3u8`, whatever trailing slashes `base` has.
    pub fn master_url(base: &str, stream: impl std::fmt::Display) -> String {
        format!("{}/master.m3u8", stream_dir(base, stream))
    }

    /// The directory that holds `stream`'s playlists and media under the playback `base`:
    /// `{base}/{stream}` (a signed link puts its token inside it).
    pub fn stream_dir(base: &str, stream: impl std::fmt::Display) -> String {
        format!("{}/{stream}", base.trim_end_matches('/'))
    }

    /// The rewind window's master beside a stream's live master URL
    /// (`…/{stream}/master.m3u8` → `…/{stream}/dvr/master.m3u8`), served by the same origin.
    pub fn dvr_url(live_master: &str) -> String {
        let dir = live_master.strip_suffix("master.m3u8").unwrap_or(live_master);
        format!("{}/dvr/master.m3u8", dir.trim_end_matches('/'))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_rewind_window_sits_beside_the_live_master() {
            assert_eq!(super::dvr_url("http://cdn/hls/s1/master.m3u8"), "http://cdn/hls/s1/dvr/master.m3u8");
        }

        #[test]
        fn one_slash_between_base_and_stream() {
            for base in ["http://cdn/hls", "http://cdn/hls/", "http://cdn/hls//"] {
                assert_eq!(super::master_url(base, "s1"), "http://cdn/hls/s1/master.m3u8", "{base}");
            }
        }
    }
}

/// JWT issuer and audience every service agrees on.
pub mod jwt {
    pub const ISSUER: &str = "onair";
    pub const AUDIENCE: &str = "onair";
}
