//! One RTMP connection: handshake, connect, publish (after the key check), then audio and
//! video into the stream's transcoder as FLV.

use onair_domain::StreamStatus;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::publisher::Publishing;
use crate::state::WorkerState;
use onair_flv as flv;

pub use onair_rtmp::APP;

pub async fn handle(state: WorkerState, mut tcp: TcpStream, peer: std::net::SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let mut publishing: Option<Publishing> = None;
    if let Err(e) = run(&state, &mut tcp, &mut publishing).await {
        tracing::info!(peer = %peer, error = %e, "rtmp connection ended");
    }
    if let Some(p) = publishing {
        state.publisher_left(p).await;
    }
}

async fn run(state: &WorkerState, tcp: &mut TcpStream, publishing: &mut Option<Publishing>) -> anyhow::Result<()> {
    let read_timeout = std::time::Duration::from_secs(state.config.rtmp_read_timeout_secs.max(1));
    let mut buf = vec![0u8; 64 * 1024];
    // The read timeout bounds each read; this bounds the whole way to publishing, so a peer
    // trickling a byte at a time cannot hold a connection slot for long.
    let deadline =
        tokio::time::Instant::now() + std::time::Duration::from_secs(state.config.rtmp_publish_deadline_secs.max(1));
    let late = || anyhow::anyhow!("no publish request within {} s", state.config.rtmp_publish_deadline_secs);
    let remaining = match tokio::time::timeout_at(deadline, server_handshake(tcp, &mut buf, read_timeout))
        .await
        .map_err(|_| late())??
    {
        Some(r) => r,
        None => return Ok(()),
    };
    let (mut session, initial) =
        ServerSession::new(ServerSessionConfig::new()).map_err(|e| anyhow::anyhow!("session: {e:?}"))?;
    let mut pending = initial;
    let mut input = remaining;
    loop {
        if !input.is_empty() {
            pending.extend(onair_rtmp::server_input(&mut session, &input)?);
            input.clear();
        }
        while !pending.is_empty() {
            let results = std::mem::take(&mut pending);
            for r in results {
                match r {
                    ServerSessionResult::OutboundResponse(p) => tcp.write_all(&p.bytes).await?,
                    ServerSessionResult::RaisedEvent(ev) => {
                        if !on_event(state, &mut session, ev, publishing, &mut pending).await? {
                            // Flush what the session wants to say (a rejection) before closing.
                            for r in std::mem::take(&mut pending) {
                                if let ServerSessionResult::OutboundResponse(p) = r {
                                    let _ = tcp.write_all(&p.bytes).await;
                                }
                            }
                            return Ok(());
                        }
                    }
                    ServerSessionResult::UnhandleableMessageReceived(_) => {}
                }
            }
        }
        let stop = publishing.as_ref().map(|p| p.stop.clone());
        let now = tokio::time::Instant::now();
        let until = if publishing.is_some() { now + read_timeout } else { deadline.min(now + read_timeout) };
        if publishing.is_none() && now >= deadline {
            return Err(late());
        }
        let n = tokio::select! {
            // A publisher that stops sending without closing is dropped after `read_timeout`.
            n = tokio::time::timeout_at(until, tcp.read(&mut buf)) => {
                n.map_err(|_| if publishing.is_some() { anyhow::anyhow!("no data for {} s", read_timeout.as_secs()) } else { late() })??
            }
            _ = async { match &stop { Some(s) => s.notified().await, None => std::future::pending().await } } => {
                tracing::info!("publisher disconnected: the stream was stopped");
                return Ok(());
            }
        };
        if n == 0 {
            return Ok(());
        }
        input.extend_from_slice(&buf[..n]);
    }
}

/// The server side of the RTMP handshake; the bytes that followed it, or `None` if the peer left.
pub async fn server_handshake(
    tcp: &mut TcpStream,
    buf: &mut [u8],
    read_timeout: std::time::Duration,
) -> anyhow::Result<Option<Vec<u8>>> {
    let mut handshake = Handshake::new(PeerType::Server);
    loop {
        let n = tokio::time::timeout(read_timeout, tcp.read(buf))
            .await
            .map_err(|_| anyhow::anyhow!("handshake stalled"))??;
        if n == 0 {
            return Ok(None);
        }
        match onair_rtmp::handshake_input(&mut handshake, &buf[..n])? {
            HandshakeProcessResult::InProgress { response_bytes } => tcp.write_all(&response_bytes).await?,
            HandshakeProcessResult::Completed { response_bytes, remaining_bytes } => {
                tcp.write_all(&response_bytes).await?;
                return Ok(Some(remaining_bytes));
            }
        }
    }
}

/// A publisher sending codecs the ladder is not built for (H.264 + AAC, what OBS sends by
/// default) is disconnected with a clear reason; returns false to end the connection.
fn refuse_codec(state: &WorkerState, p: &Publishing, why: &str) -> bool {
    tracing::warn!(stream_id = %p.stream_id, reason = why, "publisher refused: unsupported codec (send H.264 video and AAC audio)");
    state.metrics.refused("unsupported_codec");
    false
}

/// Handle one session event; `Ok(false)` ends the connection.
async fn on_event(
    state: &WorkerState,
    session: &mut ServerSession,
    ev: ServerSessionEvent,
    publishing: &mut Option<Publishing>,
    pending: &mut Vec<ServerSessionResult>,
) -> anyhow::Result<bool> {
    let rtmp = |e| anyhow::anyhow!("rtmp: {e:?}");
    match ev {
        ServerSessionEvent::ConnectionRequested { request_id, app_name } => {
            if app_name == APP {
                pending.extend(session.accept_request(request_id).map_err(rtmp)?);
            } else {
                tracing::info!(app = %app_name, "rtmp connect to an unknown application refused");
                pending.extend(
                    session
                        .reject_request(request_id, "NetConnection.Connect.Rejected", "unknown application")
                        .map_err(rtmp)?,
                );
                return Ok(false);
            }
        }
        ServerSessionEvent::PublishStreamRequested { request_id, stream_key, .. } => {
            // The key is checked before a single byte of media is accepted. It is never logged.
            match state.begin_publish(&stream_key).await {
                Ok(p) => {
                    pending.extend(session.accept_request(request_id).map_err(rtmp)?);
                    tracing::info!(stream_id = %p.stream_id, "publisher accepted");
                    state.api.report(p.stream_id, StreamStatus::Live).await;
                    *publishing = Some(p);
                }
                Err(reason) => {
                    tracing::warn!(reason, "publisher refused");
                    state.metrics.refused(reason);
                    pending
                        .extend(session.reject_request(request_id, "NetStream.Publish.BadName", reason).map_err(rtmp)?);
                    return Ok(false);
                }
            }
        }
        ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
            if let Some(p) = publishing.as_mut() {
                let has_audio = metadata.audio_codec_id.is_some() || metadata.audio_sample_rate.is_some();
                p.set_metadata(metadata.video_width, metadata.video_height, has_audio);
            }
        }
        ServerSessionEvent::VideoDataReceived { data, timestamp, .. } => {
            if let Some(p) = publishing.as_mut() {
                if !flv::is_avc(&data) {
                    return Ok(refuse_codec(state, p, "video is not H.264"));
                }
                p.write(state, flv::VIDEO, timestamp.value, &data).await?;
            }
        }
        ServerSessionEvent::AudioDataReceived { data, timestamp, .. } => {
            if let Some(p) = publishing.as_mut() {
                if !flv::is_aac(&data) {
                    return Ok(refuse_codec(state, p, "audio is not AAC"));
                }
                p.write(state, flv::AUDIO, timestamp.value, &data).await?;
            }
        }
        ServerSessionEvent::PublishStreamFinished { .. } => return Ok(false),
        _ => {}
    }
    Ok(true)
}
