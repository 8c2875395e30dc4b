//! The WebSocket protocol (documented in the crate README). Every frame is JSON text. What
//! clients send, and its decoder, is `onair_chat_protocol` (fuzzed apart from the gateway).

use chrono::{DateTime, Utc};
use onair_domain::{StreamId, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use onair_chat_protocol::{ClientFrame, MAX_FRAME_BYTES, MAX_MESSAGE_CHARS, Refused, SUBPROTOCOL, decode};

/// Who wrote a message, as shown beside it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Author {
    pub id: UserId,
    pub name: String,
    /// `owner`, `moderator`, `admin`.
    #[schema(example = json!(["owner"]))]
    pub badges: Vec<String>,
}

/// A chat message as it crosses NATS and reaches sockets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ChatMessage {
    /// UUIDv7: its timestamp is `ts`, so a retried insert finds the same partition and row.
    pub id: Uuid,
    pub stream_id: StreamId,
    pub user: Author,
    pub text: String,
    pub ts: DateTime<Utc>,
}

/// A moderation event, broadcast on the room's moderation subject.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ModEvent {
    Delete { message_id: Uuid },
    Clear,
    Timeout { user_id: UserId, until: DateTime<Utc> },
    Ban { user_id: UserId },
    Unban { user_id: UserId },
    SlowMode { seconds: u32 },
    Settings { followers_only: bool, links_allowed: bool },
    FiltersChanged,
    Ended,
}

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Hello {
        stream_id: StreamId,
        slow_mode: u32,
        can_send: bool,
        /// The socket's user is the owner, a moderator or an admin (clients show mod tools).
        can_moderate: bool,
    },
    Message(&'a ChatMessage),
    /// Several events of one coalescing tick.
    Batch {
        events: Vec<serde_json::Value>,
    },
    Ack {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        client_ref: Option<&'a str>,
        id: Uuid,
    },
    Error {
        code: &'a str,
        message: &'a str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        client_ref: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    Pong,
}

/// Serialise a frame (cannot fail for these types).
pub fn encode(frame: &ServerFrame<'_>) -> String {
    serde_json::to_string(frame).unwrap_or_default()
}
