//! The apiserver's internal routes, as the media worker uses them.

use std::time::Duration;

use onair_domain::contracts::http::INTERNAL_TOKEN_HEADER;
use onair_domain::contracts::media::RecordingState;
use onair_domain::{StreamId, StreamStatus};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct KeyOwner {
    pub stream_id: StreamId,
    /// `free` or `partner`: picks the encoder preset.
    pub tier: String,
    /// The streamer's requested top rendition (`source`, `720p`, ...).
    pub quality: String,
    /// Whether the apiserver keeps a recording of this broadcast (its channel records).
    #[serde(default)]
    pub record: bool,
    /// Which of its renditions (an older apiserver does not say: all of them).
    #[serde(default)]
    pub record_renditions: Option<onair_domain::RecordRenditions>,
    /// Who may play it (an older apiserver does not say: anyone).
    #[serde(default)]
    pub playback_access: Option<onair_domain::PlaybackAccess>,
}

impl KeyOwner {
    /// Whether its channel plays only from signed URLs.
    pub fn signed_only(&self) -> bool {
        self.playback_access.is_some_and(|a| a != onair_domain::PlaybackAccess::Public)
    }
}

/// What became of a recording report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    Taken,
    /// The apiserver keeps no recording of the stream: no point asking again.
    NoRecording,
    Failed,
}

/// Why a key was refused (for the log line and the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    UnknownKey,
    NoActiveStream,
    Unavailable,
}

impl KeyRefusal {
    pub fn label(self) -> &'static str {
        match self {
            Self::UnknownKey => "unknown_key",
            Self::NoActiveStream => "no_active_stream",
            Self::Unavailable => "apiserver_unavailable",
        }
    }
}

#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: SecretString,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: &str, token: SecretString) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: onair_http::builder().timeout(Duration::from_secs(5)).build()?,
        })
    }

    /// Which stream a publisher with `key` feeds. The key is sent in the body, never a URL.
    pub async fn verify_key(&self, key: &str) -> Result<KeyOwner, KeyRefusal> {
        let res = self
            .http
            .post(format!("{}/internal/stream-keys/verify", self.base))
            .header(INTERNAL_TOKEN_HEADER, self.token.expose_secret())
            .json(&serde_json::json!({ "stream_key": key }))
            .send()
            .await
            .map_err(|_| KeyRefusal::Unavailable)?;
        match res.status().as_u16() {
            200 => res.json().await.map_err(|_| KeyRefusal::Unavailable),
            404 => Err(KeyRefusal::UnknownKey),
            409 => Err(KeyRefusal::NoActiveStream),
            _ => Err(KeyRefusal::Unavailable),
        }
    }

    /// Report the encoder's health; best effort (the next report follows in seconds).
    pub async fn report_health(&self, stream: StreamId, encode_speed: f64, dropped_frames: i64) {
        let res = self
            .http
            .post(format!("{}/internal/streams/{stream}/health", self.base))
            .header(INTERNAL_TOKEN_HEADER, self.token.expose_secret())
            .json(&serde_json::json!({ "encode_speed": encode_speed, "dropped_frames": dropped_frames }))
            .send()
            .await;
        if let Err(e) = res {
            tracing::debug!(stream_id = %stream, error = %e, "health report failed");
        }
    }

    /// Tell the apiserver how the stream's recording keeps up (and, once, that it is stored).
    pub async fn report_recording(&self, stream: StreamId, state: &RecordingState) -> Reported {
        let res = self
            .http
            .post(format!("{}/internal/streams/{stream}/recording", self.base))
            .header(INTERNAL_TOKEN_HEADER, self.token.expose_secret())
            .json(state)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => Reported::Taken,
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => Reported::NoRecording,
            Ok(r) => {
                tracing::debug!(stream_id = %stream, status = %r.status(), "recording report refused");
                Reported::Failed
            }
            Err(e) => {
                tracing::debug!(stream_id = %stream, error = %e, "recording report failed");
                Reported::Failed
            }
        }
    }

    /// Tell the apiserver what the stream is doing; retried briefly, then logged.
    pub async fn report(&self, stream: StreamId, status: StreamStatus) {
        for attempt in 0..3u64 {
            let res = self
                .http
                .post(format!("{}/internal/streams/{stream}/status", self.base))
                .header(INTERNAL_TOKEN_HEADER, self.token.expose_secret())
                .json(&serde_json::json!({ "status": status }))
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() || r.status().as_u16() == 409 => return,
                Ok(r) => tracing::warn!(stream_id = %stream, status = %r.status(), "status report refused"),
                Err(e) => tracing::warn!(stream_id = %stream, error = %e, "status report failed"),
            }
            tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
        }
    }
}
