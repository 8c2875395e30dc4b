//! The WebSocket endpoint: `/ws/streams/{id}/chat`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use futures::{SinkExt as _, StreamExt as _};
use http::{HeaderMap, StatusCode};
use onair_auth::AccessClaims;
use onair_domain::{StreamId, UserId};
use onair_web::Path;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::error::{ChatError, ChatResult};
use crate::history;
use crate::protocol::{ClientFrame, Refused, SUBPROTOCOL, ServerFrame, decode, encode};
use crate::room::{self, RoomHandle};
use crate::send;
use crate::state::ChatState;

/// Close codes (4000-4999 are ours).
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
pub const CLOSE_IDLE: u16 = 4009;
/// The gateway is shutting down: reconnect (RFC 6455's "service restart").
pub const CLOSE_RESTART: u16 = 1012;

/// Largest frame tungstenite will read at all; frames between `MAX_FRAME_BYTES` and this get an
/// `error` frame and the socket stays open.
const HARD_FRAME_LIMIT: usize = 64 * 1024;

/// The token rides in `Sec-WebSocket-Protocol` as `access_token.<jwt>` beside the protocol name:
/// browsers cannot set headers on a WebSocket, and query strings end up in access logs.
fn token_from_protocols(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| p.strip_prefix("access_token.").map(str::to_owned))
}

pub async fn verify_token(state: &ChatState, token: &str) -> ChatResult<AccessClaims> {
    state.keys.verify(token).await.map_err(|e| ChatError::unauthorized(e.code(), e.to_string()))
}

/// One of a user's sockets on this replica. Released on drop, so every path out — a failed
/// join, a timed-out or cancelled upgrade, a closed socket — gives the slot back.
struct UserSlot {
    state: ChatState,
    user: UserId,
}

impl UserSlot {
    fn take(state: &ChatState, user: UserId) -> ChatResult<Self> {
        let mut by_user = state.sockets_by_user.lock().unwrap_or_else(|e| e.into_inner());
        let n = by_user.entry(user).or_default();
        if *n >= state.config.sockets_per_user {
            return Err(ChatError::reject(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                "close another chat tab first",
            ));
        }
        *n += 1;
        Ok(Self { state: state.clone(), user })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut by_user = self.state.sockets_by_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = by_user.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_user.remove(&self.user);
            }
        }
    }
}

/// Open a socket on a room. Reading needs no account; sending needs a token.
pub async fn ws_handler(
    State(state): State<ChatState>,
    Path(stream_id): Path<Uuid>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> ChatResult<Response> {
    if !state.config.allowed_origins.is_empty() {
        let origin = headers.get(http::header::ORIGIN).and_then(|o| o.to_str().ok()).unwrap_or("");
        if !state.config.allowed_origins.iter().any(|a| a == origin) {
            state.metrics.reject("origin_not_allowed");
            return Err(ChatError::forbidden("this origin may not open chat sockets"));
        }
    }
    if let Some(ms) =
        send::hit(&state, "ws_ip", &peer.ip().to_string(), state.config.connects_per_ip_per_minute, 60_000).await?
    {
        return Err(ChatError::reject(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many connections from this address",
        )
        .retry_after(ms));
    }
    let claims = match token_from_protocols(&headers) {
        Some(t) => Some(verify_token(&state, &t).await?),
        None => None,
    };
    let slot = match &claims {
        Some(c) => Some(UserSlot::take(&state, c.sub)?),
        None => None,
    };
    let handle = room::join(&state, StreamId(stream_id)).await?;
    Ok(ws
        .protocols([SUBPROTOCOL])
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| async move {
            run_socket(state, handle, claims, socket).await;
            drop(slot);
        }))
}

async fn run_socket(state: ChatState, handle: RoomHandle, claims: Option<AccessClaims>, socket: WebSocket) {
    // Counted open until this function ends, however it ends (a panic included): a shutdown
    // waits for the count to reach 0.
    let _open = OpenSocket::new(&state);
    let mut draining = state.draining.subscribe();
    let (mut sink, mut stream) = socket.split();
    let mut frames = handle.room.tx.subscribe();
    let stream_id = handle.room.id;
    let info = handle.room.info();
    let hello = encode(&ServerFrame::Hello {
        stream_id,
        slow_mode: info.slow_mode_secs,
        can_send: claims.is_some() && info.active,
        can_moderate: claims.as_ref().is_some_and(|c| info.is_staff(c)),
    });
    let ping_every = Duration::from_secs(state.config.ping_secs.max(1));
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    let mut last_seen = tokio::time::Instant::now();

    let mut closing: Option<(u16, &'static str)> = None;
    if sink.send(Message::Text(hello.into())).await.is_ok() {
        loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Ok(f) => {
                        if sink.send(Message::Text(f)).await.is_err() { break; }
                    }
                    Err(RecvError::Lagged(_)) => {
                        state.metrics.slow_consumer_disconnects.inc();
                        closing = Some((CLOSE_SLOW_CONSUMER, "slow consumer: the socket fell too far behind"));
                        break;
                    }
                    Err(RecvError::Closed) => break,
                },
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        last_seen = tokio::time::Instant::now();
                        let replies = handle_client_frame(&state, &handle, claims.as_ref(), text.as_str()).await;
                        let mut failed = false;
                        for r in replies {
                            if sink.send(Message::Text(r.into())).await.is_err() { failed = true; break; }
                        }
                        if failed { break; }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let e = encode(&ServerFrame::Error { code: "unsupported_frame", message: "send JSON text frames", client_ref: None, retry_after_ms: None });
                        if sink.send(Message::Text(e.into())).await.is_err() { break; }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => last_seen = tokio::time::Instant::now(),
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        tracing::debug!(stream_id = %stream_id, error = %e, "socket read failed");
                        break;
                    }
                },
                () = draining_started(&mut draining) => {
                    closing = Some((CLOSE_RESTART, "server restarting; reconnect"));
                    break;
                }
                _ = ping.tick() => {
                    if last_seen.elapsed() > ping_every * 3 {
                        closing = Some((CLOSE_IDLE, "no traffic; closing idle socket"));
                        break;
                    }
                    if sink.send(Message::Ping(Default::default())).await.is_err() { break; }
                }
            }
        }
    }
    if let Some((code, reason)) = closing {
        let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }))).await;
    }
}

/// One open socket in the gauge and in the count a shutdown waits on, for as long as it lives.
struct OpenSocket(ChatState);

impl OpenSocket {
    fn new(state: &ChatState) -> Self {
        state.metrics.connections.inc();
        state.open_sockets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(state.clone())
    }
}

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.metrics.connections.dec();
        self.0.open_sockets.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Resolves once the gateway drains (its guard is not `Send`: dropped in here).
async fn draining_started(rx: &mut tokio::sync::watch::Receiver<bool>) {
    if rx.wait_for(|d| *d).await.is_err() {
        // The sender lives as long as the state: never, in practice.
        std::future::pending::<()>().await;
    }
}

fn error_frame(code: &str, message: &str, client_ref: Option<&str>, retry_after_ms: Option<u64>) -> String {
    encode(&ServerFrame::Error { code, message, client_ref, retry_after_ms })
}

/// Answer one client frame; returns the frames to send back to this socket only.
async fn handle_client_frame(
    state: &ChatState,
    handle: &RoomHandle,
    claims: Option<&AccessClaims>,
    text: &str,
) -> Vec<String> {
    let frame = match decode(text) {
        Ok(frame) => frame,
        Err(Refused { code, message, client_ref }) => {
            state.metrics.reject(code);
            return vec![error_frame(code, &message, client_ref.as_deref(), None)];
        }
    };
    match frame {
        ClientFrame::Ping => vec![encode(&ServerFrame::Pong)],
        ClientFrame::Send { text, client_ref } => {
            let Some(claims) = claims else {
                state.metrics.reject("login_required");
                return vec![error_frame("login_required", "log in to chat", client_ref.as_deref(), None)];
            };
            // The token was checked at the upgrade; a socket outliving it must reconnect with a
            // fresh one, so logout, a ban from the platform or a role change reach open sockets.
            if claims.exp <= chrono::Utc::now().timestamp() {
                state.metrics.reject("token_expired");
                return vec![error_frame(
                    "token_expired",
                    "your session expired; reconnect",
                    client_ref.as_deref(),
                    None,
                )];
            }
            match send::send(state, &handle.room, claims, &text).await {
                Ok(msg) => vec![encode(&ServerFrame::Ack { client_ref: client_ref.as_deref(), id: msg.id })],
                Err(e) => {
                    let (message, retry) = e.for_socket();
                    vec![error_frame(e.code(), &message, client_ref.as_deref(), retry)]
                }
            }
        }
        ClientFrame::Hello { last_id } => match last_id {
            None => vec![],
            Some(last) => match history::after(state, handle.room.id, last).await {
                Ok(missed) if missed.is_empty() => vec![],
                Ok(missed) => {
                    let events = missed
                        .iter()
                        .map(|m| serde_json::to_value(ServerFrame::Message(m)).unwrap_or_default())
                        .collect();
                    vec![encode(&ServerFrame::Batch { events })]
                }
                Err(e) => {
                    let (message, _) = e.for_socket();
                    vec![error_frame(e.code(), &message, None, None)]
                }
            },
        },
    }
}
