//! The chat audience: sockets spread over the rooms and the two gateways, some of them senders.
//! Each socket behaves as the web app's (`web/src/chat.ts`): on open it sends `hello` with the
//! last message it has, and when the socket closes it reconnects after 0.25-0.5 s, doubling up
//! to 15 s; a gateway that refuses the connection sends it to the other one, as a load balancer
//! would. Every acknowledged message must then reach every socket of its room that was there
//! when it was sent: what is missing is lost, what comes twice is a duplicate.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use rand::Rng as _;
use serde_json::Value;
use tokio::net::TcpSocket;
use tokio::sync::{Mutex, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use uuid::Uuid;

use crate::clock;
use crate::player::Spans;

/// One message a sender sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub room: usize,
    pub sender: usize,
    pub sent_at: f64,
    /// When the gateway acknowledged it, and the id it gave.
    pub acked: Option<(f64, Uuid)>,
    pub refused: Option<String>,
}

#[derive(Default, Debug)]
pub struct SocketLog {
    /// When the socket first had the room's hello: it owes every message sent after this.
    pub joined_at: Option<f64>,
    pub received: HashMap<Uuid, u32>,
    pub reconnects: u64,
    /// Without an open socket.
    pub down: Spans,
}

pub struct Audience {
    pub sent: Arc<Mutex<Vec<Sent>>>,
    pub sockets: Vec<(usize, Arc<Mutex<SocketLog>>)>,
}

pub struct Plan {
    pub gateways: [SocketAddr; 2],
    pub rooms: Vec<String>,
    /// One access token per sender.
    pub tokens: Vec<String>,
    pub sockets: usize,
    /// Seconds between one sender's messages (the gateway's default limit is 20 per 30 s).
    pub send_every: Duration,
}

/// Loopback source addresses the sockets spread over (the gateway counts connections per address).
const SOURCE_ADDRS: usize = 16;

/// Opens every socket and keeps it open (reconnecting) until `stop`.
pub async fn start(plan: Plan, stop: watch::Receiver<bool>) -> Audience {
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let mut sockets = Vec::with_capacity(plan.sockets);
    let plan = Arc::new(plan);
    for i in 0..plan.sockets {
        let room = i % plan.rooms.len();
        let log: Arc<Mutex<SocketLog>> = Arc::default();
        sockets.push((room, log.clone()));
        let sender = (i < plan.tokens.len()).then_some(i);
        tokio::spawn(socket(plan.clone(), i, room, sender, log, sent.clone(), stop.clone()));
        // Not all at once: a few hundred sockets over about a second.
        if i % 32 == 31 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Audience { sent, sockets }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn connect(gateway: SocketAddr, i: usize, room: &str, token: Option<&str>) -> anyhow::Result<Ws> {
    let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % SOURCE_ADDRS) as u8));
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(src, 0))?;
    let tcp = tokio::time::timeout(Duration::from_secs(3), sock.connect(gateway)).await??;
    let mut req = format!("ws://{gateway}/ws/streams/{room}/chat").into_client_request()?;
    let protocols = match token {
        Some(t) => format!("onair.chat.v1, access_token.{t}"),
        None => "onair.chat.v1".to_owned(),
    };
    req.headers_mut().insert("sec-websocket-protocol", protocols.parse()?);
    let (ws, _) = tokio::time::timeout(Duration::from_secs(3), tokio_tungstenite::client_async(req, tcp)).await??;
    Ok(ws)
}

async fn socket(
    plan: Arc<Plan>,
    i: usize,
    room: usize,
    sender: Option<usize>,
    log: Arc<Mutex<SocketLog>>,
    sent: Arc<Mutex<Vec<Sent>>>,
    mut stop: watch::Receiver<bool>,
) {
    let token = sender.and_then(|s| plan.tokens.get(s)).map(String::as_str);
    let mut gateway = i % 2;
    let mut attempt = 0u32;
    let mut last_id: Option<Uuid> = None;
    // The sender's messages awaiting an answer, by `ref` (index into `sent`).
    let mut pending: HashMap<String, usize> = HashMap::new();
    let mut seq = 0u64;
    loop {
        if *stop.borrow() {
            return;
        }
        let ws = match connect(plan.gateways[gateway], i, &plan.rooms[room], token).await {
            Ok(ws) => ws,
            Err(_) => {
                log.lock().await.down.begin(clock::now());
                gateway ^= 1;
                let wait = backoff(attempt);
                attempt += 1;
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        let (mut sink, mut stream) = ws.split();
        let resumed = match last_id {
            Some(last) => {
                let hello = serde_json::json!({"type": "hello", "last_id": last}).to_string();
                sink.send(Message::Text(hello.into())).await.is_ok()
            }
            None => true,
        };
        if resumed {
            attempt = 0;
        }
        // Unanswered messages of the closed socket get no answer now: the sender gives up on them.
        pending.clear();
        let first = plan.send_every.mul_f64(rand::rng().random_range(0.0..1.0));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, plan.send_every);
        loop {
            if !resumed {
                break;
            }
            tokio::select! {
                _ = tick.tick(), if sender.is_some() => {
                    seq += 1;
                    let r = seq.to_string();
                    let frame = serde_json::json!({"type": "send", "text": text(i, seq), "ref": r});
                    let at = clock::now();
                    {
                        let mut s = sent.lock().await;
                        pending.insert(r, s.len());
                        s.push(Sent { room, sender: i, sent_at: at, acked: None, refused: None });
                    }
                    if sink.send(Message::Text(frame.to_string().into())).await.is_err() { break; }
                }
                msg = stream.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        let Ok(v) = serde_json::from_str::<Value>(&t) else { continue };
                        handle(&v, &log, &sent, &mut pending, &mut last_id).await;
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                },
                _ = stop.changed() => { let _ = sink.close().await; return; }
            }
        }
        let mut l = log.lock().await;
        l.down.begin(clock::now());
        l.reconnects += 1;
        drop(l);
        let wait = backoff(attempt);
        attempt += 1;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// A message no other is like: the gateway refuses a sender's repeat (after folding case,
/// digits and punctuation), so the socket and the sequence number are spelled in words.
fn text(socket: usize, seq: u64) -> String {
    const WORDS: [&str; 16] = [
        "apple", "brook", "cedar", "delta", "ember", "fjord", "grove", "haze", "iris", "jade", "kite", "lumen",
        "maple", "north", "opal", "pine",
    ];
    let spell = |mut n: u64| {
        let mut w = vec![WORDS[(n % 16) as usize]];
        while n >= 16 {
            n /= 16;
            w.push(WORDS[(n % 16) as usize]);
        }
        w.join(" ")
    };
    format!("{} says {}", spell(socket as u64), spell(seq))
}

/// Refusals that say the service could not take the message (not that the sender broke a rule):
/// to the sender, chat is down.
fn service_failure(code: &str) -> bool {
    matches!(code, "internal" | "unavailable")
}

/// The web app's: 0.5 s doubling to 15 s, times a random 0.5-1.
fn backoff(attempt: u32) -> Duration {
    let base = (500u64 << attempt.min(5)).min(15_000);
    Duration::from_millis(base).mul_f64(rand::rng().random_range(0.5..1.0))
}

async fn handle(
    v: &Value,
    log: &Mutex<SocketLog>,
    sent: &Mutex<Vec<Sent>>,
    pending: &mut HashMap<String, usize>,
    last_id: &mut Option<Uuid>,
) {
    match v["type"].as_str() {
        Some("batch") => {
            for e in v["events"].as_array().into_iter().flatten() {
                Box::pin(handle(e, log, sent, pending, last_id)).await;
            }
        }
        Some("hello") => {
            let now = clock::now();
            let mut l = log.lock().await;
            l.joined_at.get_or_insert(now);
            l.down.end(now);
        }
        Some("message") => {
            if let Some(id) = v["id"].as_str().and_then(|s| s.parse::<Uuid>().ok()) {
                *log.lock().await.received.entry(id).or_default() += 1;
                *last_id = Some(id);
            }
        }
        Some("ack") => {
            let id = v["id"].as_str().and_then(|s| s.parse::<Uuid>().ok());
            if let (Some(at), Some(id)) = (v["ref"].as_str().and_then(|r| pending.remove(r)), id) {
                sent.lock().await[at].acked = Some((clock::now(), id));
            }
        }
        Some("error") => {
            if let Some(at) = v["ref"].as_str().and_then(|r| pending.remove(r)) {
                sent.lock().await[at].refused = Some(v["code"].as_str().unwrap_or("?").to_owned());
            }
        }
        _ => {}
    }
}

/// What one window of the run cost the chat audience.
#[cfg(test)]
mod tests {
    #[test]
    fn every_message_reads_differently_once_digits_are_folded() {
        let mut seen = std::collections::HashSet::new();
        for socket in 0..40 {
            for seq in 0..300 {
                let t = super::text(socket, seq);
                assert!(!t.chars().any(|c| c.is_ascii_digit()), "{t}");
                assert!(seen.insert(t));
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct ChatOutcome {
    pub sent: usize,
    pub acked: usize,
    /// Acknowledged messages some socket that owed it never got.
    pub lost: usize,
    /// (socket, message) deliveries missing.
    pub missing_deliveries: usize,
    /// Deliveries of a message a socket already had.
    pub duplicates: u64,
    /// The longest a sender went without an answer to its messages, in seconds.
    pub longest_silence: f64,
    /// The longest a socket was without an open connection to a gateway, in seconds.
    pub longest_down: f64,
    pub refused: HashMap<String, usize>,
}

/// Losses and duplicates for messages sent within `w`; `acked_ids` as the durable history holds them.
pub async fn outcome(a: &Audience, w: clock::Window) -> ChatOutcome {
    let sent = a.sent.lock().await.clone();
    let mut out = ChatOutcome::default();
    let in_window: Vec<&Sent> = sent.iter().filter(|s| w.contains(s.sent_at)).collect();
    out.sent = in_window.len();
    for s in &in_window {
        if let Some(code) = &s.refused {
            *out.refused.entry(code.clone()).or_default() += 1;
        }
    }
    let acked: Vec<(usize, f64, Uuid)> =
        in_window.iter().filter_map(|s| s.acked.map(|(_, id)| (s.room, s.sent_at, id))).collect();
    out.acked = acked.len();
    let mut lost = std::collections::HashSet::new();
    for (room, log) in &a.sockets {
        let l = log.lock().await;
        out.longest_down = out.longest_down.max(clock::longest_starting_in(&l.down.all(clock::now()), w));
        let Some(joined) = l.joined_at else { continue };
        for (r, sent_at, id) in &acked {
            if r == room && *sent_at > joined && !l.received.contains_key(id) {
                out.missing_deliveries += 1;
                lost.insert(*id);
            }
        }
        // Duplicates of messages sent in this window.
        out.duplicates += acked
            .iter()
            .filter(|(r, _, _)| r == room)
            .map(|(_, _, id)| l.received.get(id).map_or(0, |n| n.saturating_sub(1)) as u64)
            .sum::<u64>();
    }
    out.lost = lost.len();
    // Per sender: the longest stretch from a message it sent to the next answer it got, over
    // messages sent in the window (an unanswered message counts until the sender's next answer).
    let mut by_sender: HashMap<usize, Vec<&Sent>> = HashMap::new();
    for s in &sent {
        by_sender.entry(s.sender).or_default().push(s);
    }
    for msgs in by_sender.values() {
        let mut waiting_since: Option<f64> = None;
        for s in msgs {
            let answered = s.acked.map(|(t, _)| t);
            match (answered, waiting_since) {
                (Some(t), Some(since)) => {
                    if w.contains(since) {
                        out.longest_silence = out.longest_silence.max(t - since);
                    }
                    waiting_since = None;
                }
                (Some(t), None) if w.contains(s.sent_at) => {
                    out.longest_silence = out.longest_silence.max(t - s.sent_at);
                }
                (None, None) if s.refused.as_deref().is_none_or(service_failure) => waiting_since = Some(s.sent_at),
                _ => {}
            }
        }
        // Never answered again: silent to the end of the window at least.
        if let Some(since) = waiting_since.filter(|s| w.contains(*s)) {
            out.longest_silence = out.longest_silence.max(w.to - since);
        }
    }
    out
}
