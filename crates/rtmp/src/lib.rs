//! RTMP as onair serves it (the media worker and the ingest gateway): the application
//! publishers connect to, and rml_rtmp's handshake and server session fed through
//! [`handshake_input`] and [`server_input`].
//!
//! Why not call rml_rtmp directly: rml_rtmp 0.8 panics on some malformed input. A command
//! message with fewer than three AMF0 values makes `amf0_command::deserialize` drain a range
//! past the end (found by `fuzz/` in its first seconds; moq-dev/moq#2060, which vendors
//! rml_rtmp, flags the same line). A panic would end the connection's task before it released
//! its stream, leaving the stream "already publishing" until the worker restarts; here it is
//! the connection's own protocol error.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult};
use rml_rtmp::sessions::{ServerSession, ServerSessionResult};

/// The RTMP application publishers use: `rtmp://host/live/{stream_key}`.
pub const APP: &str = "live";

/// Seconds from connecting to asking to publish, unless configured otherwise (OBS takes well
/// under one; a key check is one round trip to the apiserver).
pub const DEFAULT_PUBLISH_DEADLINE_SECS: u64 = 10;

/// What ends a connection whose peer sent something the session cannot take.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("rtmp: {0}")]
    Refused(String),
    /// rml_rtmp panicked on it (a malformed message); the session is not used again.
    #[error("rtmp: a malformed message")]
    Malformed,
}

thread_local! {
    static CONTAINING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside rml_rtmp on a peer's bytes right now: a panic hook asks, to log
/// a contained panic as the peer's bad input rather than as a bug
/// (`onair_telemetry::install_panic_hook(onair_rtmp::containing)`).
pub fn containing() -> bool {
    CONTAINING.with(std::cell::Cell::get)
}

/// `f`, with a panic in it turned into [`InputError::Malformed`].
fn contained<T>(f: impl FnOnce() -> T) -> Result<T, InputError> {
    CONTAINING.with(|c| c.set(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(false));
    result.map_err(|_| InputError::Malformed)
}

/// Feed the peer's bytes to the server side of the handshake.
pub fn handshake_input(handshake: &mut Handshake, bytes: &[u8]) -> Result<HandshakeProcessResult, InputError> {
    contained(|| handshake.process_bytes(bytes))?.map_err(|e| InputError::Refused(format!("handshake: {e:?}")))
}

/// Feed the peer's bytes to its server session. After an error the connection is to be closed
/// (after a panic the session's state is whatever it was mid-message).
pub fn server_input(session: &mut ServerSession, bytes: &[u8]) -> Result<Vec<ServerSessionResult>, InputError> {
    contained(|| session.handle_input(bytes))?.map_err(|e| InputError::Refused(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use rml_rtmp::sessions::ServerSessionConfig;

    use super::*;

    #[test]
    fn a_command_with_too_few_values_ends_the_connection_instead_of_panicking() {
        let (mut session, _) = ServerSession::new(ServerSessionConfig::new()).expect("a session");
        // One chunk (type 0, stream 3) of an AMF0 command (type 20) holding a single string.
        let payload = [0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't'];
        let mut chunk = vec![0x03, 0, 0, 0, 0, 0, payload.len() as u8, 0x14, 0, 0, 0, 0];
        chunk.extend_from_slice(&payload);
        assert!(matches!(server_input(&mut session, &chunk), Err(InputError::Malformed)));
    }
}
