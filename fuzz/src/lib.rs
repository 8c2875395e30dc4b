//! The fuzzed parsers, one function per target: each feeds arbitrary bytes to code that reads
//! bytes from the internet, the way onair feeds it, and panics when an invariant breaks (a
//! panic, like a crash or a timeout, is what libFuzzer reports). The binaries in
//! `fuzz_targets/` call these under `cargo fuzz` (`scripts/fuzz.sh`); `tests/replay.rs` runs the
//! seeds and every input a fuzzer once broke onair with, so a fixed bug stays fixed.
//!
//! | target | reads what | from whom |
//! |---|---|---|
//! | `flv_reader` | the FLV relay an ingest pod serves its transcode pods | another pod |
//! | `fmp4_upload` | an encoder's fMP4 upload (`PUT .../ll/{rendition}`), packaged into parts, segments and playlists, and the blocking playlist query | a transcode pod; players (the query) |
//! | `rtmp_session` | the RTMP handshake, chunk stream and AMF commands, through rml_rtmp as the media worker drives it | any publisher |
//! | `chat_frame` | a chat client's WebSocket text frame | any viewer |

use std::sync::OnceLock;
use std::time::Duration;

use onair_flv::FlvReader;
use onair_llhls::{Config, Form, Request, Store};
use onair_rtmp::APP;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult};

thread_local! {
    /// The last panic's message, for when it turns out to be a crash.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// For the fuzz binaries, before the first input. libfuzzer-sys's panic hook aborts at any
/// panic, even one onair catches on purpose (`onair_rtmp` contains rml_rtmp's panics: a
/// malformed message ends that connection, nothing else). This hook only remembers the message;
/// a panic that escapes a target is still a crash ([`run`] prints it, and libfuzzer-sys aborts).
pub fn init() {
    std::panic::set_hook(Box::new(|info| LAST_PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()))));
}

/// Run `target` on one input; a panic that escapes it is printed and passed on.
pub fn run(target: fn(&[u8]), data: &[u8]) {
    if let Err(panic) = std::panic::catch_unwind(|| target(data)) {
        eprintln!("{}", LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| "a panic".into()));
        std::panic::resume_unwind(panic);
    }
}

/// Input sizes are split into reads by the first byte, so a fuzzer also explores how a message
/// split across reads is put back together.
fn reads(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (usize::from(*first).max(1), rest),
        None => (1, data),
    }
}

/// The FLV relay, read as a transcode pod reads it: every tag it hands out is whole and came
/// from the input, and it stops at the first error.
pub fn flv_reader(data: &[u8]) {
    let (chunk, data) = reads(data);
    let mut reader = FlvReader::default();
    let mut out = 0usize;
    'reading: for piece in data.chunks(chunk) {
        reader.extend(piece);
        loop {
            match reader.next_tag() {
                Ok(Some(tag)) => {
                    out += 11 + tag.data.len() + 4;
                    assert!(out <= data.len(), "a tag of bytes that were never sent");
                }
                Ok(None) => break,
                Err(_) => break 'reading,
            }
        }
    }
}

/// The runtime the packager's playlists wait on (they answer at once once there is a part).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        // Paused: a playlist request that blocks for a future part times out at once instead of
        // costing the fuzzer real milliseconds.
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime")
    })
}

/// An encoder's LL-HLS upload: fMP4 bytes into a rendition of a store, as `PUT .../ll/{r}` does,
/// then what players ask of it: its playlists (both forms, with a blocking query taken from the
/// input), its parts and segments, the master and rendition reports.
pub fn fmp4_upload(data: &[u8]) {
    // The last bytes, up to a newline, are a player's playlist query.
    let (media, query) = match data.iter().rposition(|b| *b == b'\n') {
        Some(i) => (&data[..i], std::str::from_utf8(&data[i + 1..]).ok()),
        None => (data, None),
    };
    let (chunk, media) = reads(media);
    let config = Config { max_box: 1 << 20, max_segment: Duration::from_secs(4), ..Config::default() };
    let store = Store::new(config);
    let mut writer = store.writer("720p");
    for piece in media.chunks(chunk) {
        if writer.push(piece).is_err() {
            break;
        }
    }
    let stats = store.stats("720p").expect("the rendition exists once written");
    assert!(stats.parts >= stats.segments, "a segment is made of parts");
    let _ = Request::parse(query);
    let _ = store.master(&[("720p", 1_000_000, Some(30.0))]);
    let _ = store.reports("360p");
    if stats.parts == 0 {
        // A playlist request would wait for the first part.
        return;
    }
    for form in [Form::LowLatency, Form::Standard] {
        // The query may ask for a future part: bounded by the packager's own timeout.
        let listed = runtime().block_on(async {
            tokio::time::timeout(Duration::from_millis(50), store.playlist("720p", query, form)).await
        });
        if let Ok(Ok(text)) = listed {
            assert!(text.starts_with("#EXTM3U\n"), "a playlist: {text}");
            for uri in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
                assert!(store.get("720p", uri).is_some() || uri.contains('?'), "listed but not served: {uri}");
            }
        }
    }
    writer.end();
}

/// The reads a peer's bytes arrive in: each a big-endian u16 length and that many bytes (the
/// last may be short). An RTMP client waits for answers between its commands, so where a read
/// ends matters: the server takes a publish only once it has accepted the connect before it.
fn framed_reads(mut data: &[u8]) -> Vec<&[u8]> {
    let mut reads = Vec::new();
    while !data.is_empty() {
        let Some((len, rest)) = data.split_first_chunk::<2>() else {
            reads.push(data);
            break;
        };
        let (read, rest) = rest.split_at(usize::from(u16::from_be_bytes(*len)).min(rest.len()));
        if !read.is_empty() {
            reads.push(read);
        }
        data = rest;
    }
    reads
}

/// An RTMP connection as the media worker serves it. The first byte picks the phase fuzzed:
/// even, the raw bytes are the client's handshake and what follows; odd, a real client's
/// handshake comes first (random bytes rarely complete one) and the input is the chunk stream.
/// Either way the rest is the peer's reads ([`framed_reads`]).
pub fn rtmp_session(data: &[u8]) {
    rtmp_session_tags(data);
}

/// [`rtmp_session`], saying how many media messages reached the encoder's input.
pub fn rtmp_session_tags(data: &[u8]) -> usize {
    let Some((mode, data)) = data.split_first() else { return 0 };
    let mut server = Handshake::new(PeerType::Server);
    let mut after = Vec::new();
    let mut shaken = false;
    if mode % 2 == 1 {
        let mut client = Handshake::new(PeerType::Client);
        let c0c1 = client.generate_outbound_p0_and_p1().expect("a client's first bytes");
        let s0s1s2 = match server.process_bytes(&c0c1).expect("the server takes a real client's C0+C1") {
            HandshakeProcessResult::InProgress { response_bytes } => response_bytes,
            HandshakeProcessResult::Completed { .. } => panic!("a handshake done before C2"),
        };
        let c2 = match client.process_bytes(&s0s1s2).expect("the client takes the server's answer") {
            HandshakeProcessResult::Completed { response_bytes, .. } => response_bytes,
            HandshakeProcessResult::InProgress { response_bytes } => response_bytes,
        };
        match server.process_bytes(&c2).expect("the server takes C2") {
            HandshakeProcessResult::Completed { remaining_bytes, .. } => after = remaining_bytes,
            HandshakeProcessResult::InProgress { .. } => panic!("the handshake did not complete"),
        }
        shaken = true;
    }
    let mut session: Option<ServerSession> = None;
    let mut tags = 0usize;
    for piece in framed_reads(data) {
        let input = if shaken {
            std::mem::take(&mut after).into_iter().chain(piece.iter().copied()).collect::<Vec<u8>>()
        } else {
            match onair_rtmp::handshake_input(&mut server, piece) {
                Ok(HandshakeProcessResult::InProgress { .. }) => continue,
                Ok(HandshakeProcessResult::Completed { remaining_bytes, .. }) => {
                    shaken = true;
                    remaining_bytes
                }
                Err(_) => return tags,
            }
        };
        if session.is_none() {
            let Ok((s, _)) = ServerSession::new(ServerSessionConfig::new()) else { return tags };
            session = Some(s);
        }
        let Some(s) = session.as_mut() else { return tags };
        // What the worker and the gateway call: an error (or a panic in rml_rtmp, caught
        // there) ends the connection.
        let Ok(results) = onair_rtmp::server_input(s, &input) else { return tags };
        let mut pending = results;
        while !pending.is_empty() {
            for result in std::mem::take(&mut pending) {
                let ServerSessionResult::RaisedEvent(event) = result else { continue };
                match on_event(s, event, &mut tags) {
                    Ok(more) => pending.extend(more),
                    Err(()) => return tags,
                }
            }
        }
    }
    tags
}

/// One event, answered as the worker answers it (`rtmp.rs`): the application `live` is accepted
/// and any other refused (and the connection closed); a publish is accepted (the key check is
/// the apiserver's, not the parser's); H.264 and AAC go on as FLV tags, anything else ends it.
/// `Err` ends the connection.
fn on_event(
    session: &mut ServerSession,
    event: ServerSessionEvent,
    tags: &mut usize,
) -> Result<Vec<ServerSessionResult>, ()> {
    match event {
        ServerSessionEvent::ConnectionRequested { request_id, app_name } if app_name == APP => {
            session.accept_request(request_id).map_err(|_| ())
        }
        ServerSessionEvent::ConnectionRequested { request_id, .. } => {
            let _ = session.reject_request(request_id, "NetConnection.Connect.Rejected", "unknown application");
            Err(())
        }
        ServerSessionEvent::PublishStreamRequested { request_id, .. } => {
            session.accept_request(request_id).map_err(|_| ())
        }
        ServerSessionEvent::VideoDataReceived { data, timestamp, .. } => {
            if !onair_flv::is_avc(&data) {
                return Err(());
            }
            frame(onair_flv::VIDEO, timestamp.value, &data, tags);
            Ok(Vec::new())
        }
        ServerSessionEvent::AudioDataReceived { data, timestamp, .. } => {
            if !onair_flv::is_aac(&data) {
                return Err(());
            }
            frame(onair_flv::AUDIO, timestamp.value, &data, tags);
            Ok(Vec::new())
        }
        ServerSessionEvent::PublishStreamFinished { .. } => Err(()),
        _ => Ok(Vec::new()),
    }
}

/// A media message into FLV, as the encoder's stdin gets it; it must read back as itself.
fn frame(kind: u8, ts: u32, data: &[u8], tags: &mut usize) {
    let mut reader = FlvReader::default();
    reader.extend(&onair_flv::header(true, true));
    reader.extend(&onair_flv::tag(kind, ts, data));
    let tag = reader.next_tag().expect("our own FLV").expect("a whole tag");
    assert_eq!((tag.kind, tag.ts, &tag.data[..]), (kind, ts, data), "an FLV tag round trip");
    *tags += 1;
}

/// A chat client's text frame (a WebSocket text frame is UTF-8; anything else is refused before
/// the decoder): decoded or refused with a code the protocol documents, never a panic, and a
/// refusal's echoed `ref` stays bounded.
pub fn chat_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match onair_chat_protocol::decode(text) {
        Ok(onair_chat_protocol::ClientFrame::Send { client_ref, .. }) => {
            assert!(client_ref.is_none_or(|r| r.chars().count() <= onair_chat_protocol::MAX_REF_CHARS));
        }
        Ok(_) => {}
        Err(refused) => {
            assert!(
                ["frame_too_large", "malformed_json", "unknown_type", "invalid_frame"].contains(&refused.code),
                "an undocumented code: {}",
                refused.code
            );
            assert!(refused.client_ref.is_none_or(|r| r.chars().count() <= onair_chat_protocol::MAX_REF_CHARS));
        }
    }
}

/// A seed for `rtmp_session` (odd mode: the handshake is the target's): what a real publisher
/// sends after the handshake, made by rml_rtmp's client talking to a server session: connect to
/// `live`, publish, one H.264 keyframe and one AAC frame.
pub fn publisher_seed() -> Vec<u8> {
    use rml_rtmp::sessions::{
        ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
    };
    use rml_rtmp::time::RtmpTimestamp;

    let (mut client, first) = ClientSession::new(ClientSessionConfig::new()).expect("a client session");
    let (mut server, greeting) = ServerSession::new(ServerSessionConfig::new()).expect("a server session");
    // The server's first packets (window size, chunk size) set up the client's chunk reader.
    for r in greeting {
        if let ServerSessionResult::OutboundResponse(p) = r {
            client.handle_input(&p.bytes).expect("the client reads the server's greeting");
        }
    }
    // Odd mode; then each round's bytes as one read.
    let mut sent = vec![1u8];
    let read = |sent: &mut Vec<u8>, bytes: &[u8]| {
        let len = u16::try_from(bytes.len()).expect("a seed read under 64 KiB");
        sent.extend_from_slice(&len.to_be_bytes());
        sent.extend_from_slice(bytes);
    };
    let mut to_server: Vec<ClientSessionResult> = first;
    to_server.push(client.request_connection(APP.to_owned()).expect("connect"));
    let mut published = false;
    for _ in 0..16 {
        let mut to_client = Vec::new();
        let mut round = Vec::new();
        for result in std::mem::take(&mut to_server) {
            let ClientSessionResult::OutboundResponse(packet) = result else { continue };
            round.extend_from_slice(&packet.bytes);
            for r in server.handle_input(&packet.bytes).expect("the server reads the client") {
                match r {
                    ServerSessionResult::OutboundResponse(p) => to_client.push(p),
                    ServerSessionResult::RaisedEvent(
                        ServerSessionEvent::ConnectionRequested { request_id, .. }
                        | ServerSessionEvent::PublishStreamRequested { request_id, .. },
                    ) => {
                        for a in server.accept_request(request_id).expect("accepted") {
                            if let ServerSessionResult::OutboundResponse(p) = a {
                                to_client.push(p);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        if !round.is_empty() {
            read(&mut sent, &round);
        }
        for packet in to_client {
            for r in client.handle_input(&packet.bytes).expect("the client reads the server") {
                match r {
                    ClientSessionResult::RaisedEvent(ClientSessionEvent::ConnectionRequestAccepted) => {
                        to_server
                            .push(client.request_publishing("key".into(), PublishRequestType::Live).expect("publish"));
                    }
                    ClientSessionResult::RaisedEvent(ClientSessionEvent::PublishRequestAccepted) => published = true,
                    other @ ClientSessionResult::OutboundResponse(_) => to_server.push(other),
                    _ => {}
                }
            }
        }
        if published {
            break;
        }
    }
    assert!(published, "the client got to publish");
    let video = bytes::Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]);
    let audio = bytes::Bytes::from_static(&[0xaf, 1, 0x21, 0x10]);
    let mut media = Vec::new();
    for packet in [
        client.publish_video_data(video, RtmpTimestamp::new(0), false),
        client.publish_audio_data(audio, RtmpTimestamp::new(40), false),
    ] {
        let Ok(ClientSessionResult::OutboundResponse(packet)) = packet else { panic!("media while publishing") };
        media.extend_from_slice(&packet.bytes);
    }
    read(&mut sent, &media);
    sent
}
