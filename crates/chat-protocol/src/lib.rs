//! What chat clients send over the WebSocket (documented in the chat gateway's README), and
//! [`decode`], the one function that reads it. Frames come from anyone on the internet, so the
//! decoder is one of the fuzzed parsers (`fuzz/`); it lives apart from the gateway so a fuzz
//! build needs only serde.

use serde::Deserialize;
use uuid::Uuid;

/// Longest message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;
/// Largest frame a client may send, in bytes.
pub const MAX_FRAME_BYTES: usize = 4096;
/// The subprotocol clients ask for; the access token rides beside it as `access_token.<jwt>`.
pub const SUBPROTOCOL: &str = "onair.chat.v1";
/// Longest `ref` echoed back: a client's correlation id, not a place to store text.
pub const MAX_REF_CHARS: usize = 64;

/// The frame types a client may send.
const KNOWN_TYPES: &[&str] = &["send", "hello", "ping"];

/// What a client sends.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Post a message. `ref` comes back in the `ack` (or `error`) so the client can match them.
    Send {
        text: String,
        #[serde(default, rename = "ref")]
        client_ref: Option<String>,
    },
    /// Resume after a reconnect: everything after `last_id` is sent again.
    Hello {
        #[serde(default)]
        last_id: Option<Uuid>,
    },
    Ping,
}

/// A frame the gateway does not take: `code` is what the error frame (and the rejection metric)
/// says, `client_ref` the frame's `ref` when it had a readable one, so the client can match it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: &'static str,
    pub message: String,
    pub client_ref: Option<String>,
}

impl Refused {
    fn new(code: &'static str, message: impl Into<String>, client_ref: Option<String>) -> Self {
        Self { code, message: message.into(), client_ref }
    }
}

/// Read one text frame. Every refusal is a [`Refused`] the socket answers and survives; the
/// order of the checks (size, JSON, type, fields) decides which code a client sees.
pub fn decode(text: &str) -> Result<ClientFrame, Refused> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(Refused::new("frame_too_large", format!("frames are at most {MAX_FRAME_BYTES} bytes"), None));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| Refused::new("malformed_json", "frames must be JSON objects", None))?;
    let client_ref = value.get("ref").and_then(|r| r.as_str()).map(|r| r.chars().take(MAX_REF_CHARS).collect());
    let kind = value.get("type").and_then(|t| t.as_str()).unwrap_or("");
    if !KNOWN_TYPES.contains(&kind) {
        return Err(Refused::new("unknown_type", "type must be one of send, hello, ping", client_ref));
    }
    let mut frame: ClientFrame =
        serde_json::from_value(value).map_err(|e| Refused::new("invalid_frame", e.to_string(), client_ref))?;
    if let ClientFrame::Send { client_ref: Some(r), .. } = &mut frame {
        // The same bound whichever path echoes it.
        if r.chars().count() > MAX_REF_CHARS {
            *r = r.chars().take(MAX_REF_CHARS).collect();
        }
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_decode_or_are_refused_with_the_code_a_client_sees() {
        assert_eq!(decode(r#"{"type":"ping"}"#), Ok(ClientFrame::Ping));
        assert_eq!(
            decode(r#"{"type":"send","text":"hi","ref":"1"}"#),
            Ok(ClientFrame::Send { text: "hi".into(), client_ref: Some("1".into()) })
        );
        assert_eq!(decode(r#"{"type":"hello"}"#), Ok(ClientFrame::Hello { last_id: None }));
        let code = |t: &str| decode(t).unwrap_err().code;
        assert_eq!(code(&"x".repeat(MAX_FRAME_BYTES + 1)), "frame_too_large");
        assert_eq!(code("{"), "malformed_json");
        assert_eq!(code("[]"), "unknown_type");
        assert_eq!(code(r#"{"type":"shout"}"#), "unknown_type");
        assert_eq!(code(r#"{"type":"send"}"#), "invalid_frame");
        assert_eq!(code(r#"{"type":"send","text":"a","extra":1}"#), "invalid_frame");
        assert_eq!(code(r#"{"type":"hello","last_id":"nope"}"#), "invalid_frame");
        // The ref comes back with a refusal, bounded.
        let long = "r".repeat(200);
        let refused = decode(&format!(r#"{{"type":"send","ref":"{long}"}}"#)).unwrap_err();
        assert_eq!(refused.client_ref.map(|r| r.len()), Some(MAX_REF_CHARS));
        let Ok(ClientFrame::Send { client_ref, .. }) =
            decode(&format!(r#"{{"type":"send","text":"a","ref":"{long}"}}"#))
        else {
            panic!("a send with a long ref decodes");
        };
        assert_eq!(client_ref.map(|r| r.len()), Some(MAX_REF_CHARS));
    }
}
