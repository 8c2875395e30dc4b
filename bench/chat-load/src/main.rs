//! Chat gateway load generator.
//!
//! Opens `--connections` sockets spread over `--room` ids (bound to several loopback source
//! addresses, so more than one port range of connections fit), then `--senders` of them send
//! `--rate` messages per second in total for `--duration` seconds. Each message carries its send
//! time; receivers record delivery latency in an HDR histogram. Losses are counted exactly: every
//! acknowledged message must reach every socket of its room.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use tokio::net::TcpSocket;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Gateway address (host:port).
    #[arg(long, default_value = "127.0.0.1:8081")]
    gateway: SocketAddr,
    /// Room (stream) ids; sockets are spread over them round-robin.
    #[arg(long = "room", required = true)]
    rooms: Vec<String>,
    /// Access tokens for senders (one per sender, reused round-robin).
    #[arg(long = "token")]
    tokens: Vec<String>,
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Messages per second, all senders together.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Loopback source addresses to spread connections over (127.0.0.1 .. 127.0.0.N).
    #[arg(long, default_value_t = 4)]
    source_ips: u8,
    /// The gateway's pid, to read its resident memory.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Concurrent connection attempts.
    #[arg(long, default_value_t = 256)]
    connect_parallelism: usize,
}

/// One socket in this many records latencies.
const SAMPLE: usize = 25;

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

struct Stats {
    delivered: AtomicU64,
    frames: AtomicU64,
    acked: Vec<AtomicU64>,
    refused: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn connect(args: &Args, i: usize, token: Option<&str>) -> anyhow::Result<Ws> {
    let room = &args.rooms[i % args.rooms.len()];
    let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % args.source_ips.max(1) as usize) as u8));
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(src, 0))?;
    let tcp = sock.connect(args.gateway).await?;
    tcp.set_nodelay(true)?;
    let mut req = format!("ws://{}/ws/streams/{room}/chat", args.gateway).into_client_request()?;
    let protocols = match token {
        Some(t) => format!("onair.chat.v1, access_token.{t}"),
        None => "onair.chat.v1".to_owned(),
    };
    req.headers_mut().insert("sec-websocket-protocol", protocols.parse()?);
    let (ws, _) = tokio_tungstenite::client_async(req, tcp).await?;
    Ok(ws)
}

/// Count message events in a frame and record the latency of each, without a JSON parser:
/// the generator must stay cheaper than the gateway it measures.
fn account(frame: &str, stats: &Stats, hist: Option<&mut Histogram<u64>>) {
    let mut n = 0;
    match hist {
        Some(hist) => {
            let now = now_micros();
            let mut rest = frame;
            while let Some(at) = rest.find("\"text\":\"t=") {
                rest = &rest[at + 10..];
                let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
                if let Ok(sent) = rest[..end].parse::<u64>() {
                    let _ = hist.record(now.saturating_sub(sent).max(1));
                }
                n += 1;
            }
        }
        None => n = frame.matches("\"text\":\"t=").count() as u64,
    }
    stats.delivered.fetch_add(n, Ordering::Relaxed);
    stats.frames.fetch_add(1, Ordering::Relaxed);
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rss_before = args.gateway_pid.and_then(rss_kib);
    let stats = Arc::new(Stats {
        delivered: AtomicU64::new(0),
        frames: AtomicU64::new(0),
        acked: args.rooms.iter().map(|_| AtomicU64::new(0)).collect(),
        refused: AtomicU64::new(0),
        latency: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 2)?),
    });

    // Connect everyone, bounded parallelism.
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.connect_parallelism));
    let mut handles = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let args = args.clone();
        let permit = sem.clone().acquire_owned().await?;
        let token = (i < args.senders).then(|| args.tokens.get(i % args.tokens.len().max(1)).cloned()).flatten();
        handles.push(tokio::spawn(async move {
            let r = connect(&args, i, token.as_deref()).await;
            drop(permit);
            r
        }));
    }
    let mut sockets = Vec::with_capacity(args.connections);
    let mut failed = 0;
    for h in handles {
        match h.await? {
            Ok(ws) => sockets.push(ws),
            Err(e) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("connect failed: {e}");
                }
            }
        }
    }
    let held = sockets.len();
    let per_room: Vec<usize> =
        (0..args.rooms.len()).map(|r| (0..args.connections).filter(|i| i % args.rooms.len() == r).count()).collect();
    eprintln!("connected {held}/{} in {:.1}s", args.connections, started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = args.gateway_pid.and_then(rss_kib);

    // Readers for everyone; senders also send.
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let per_sender_interval = Duration::from_secs_f64(args.senders.max(1) as f64 / args.rate.max(1) as f64);
    let mut tasks = Vec::new();
    let args_senders = args.senders;
    for (i, ws) in sockets.into_iter().enumerate() {
        let stats = stats.clone();
        let sender = i < args.senders;
        let room = i % args.rooms.len();
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            // Every socket counts deliveries (for losses); one in `sample` also times them, so
            // the generator's own CPU does not swamp the gateway it measures.
            let timed = i % SAMPLE == 0 || sender;
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 2)
                .unwrap_or_else(|_| Histogram::new(2).expect("histogram"));
            // Spread senders over the interval: real chatters are not synchronised, and lockstep
            // senders would all land in the same coalescing tick.
            let offset = per_sender_interval.mul_f64((i % args_senders.max(1)) as f64 / args_senders.max(1) as f64);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, per_sender_interval);
            let mut seq = 0u64;
            let drain_until = deadline + Duration::from_secs(3);
            loop {
                tokio::select! {
                    _ = tick.tick(), if sender && Instant::now() < deadline => {
                        seq += 1;
                        let frame = format!(r#"{{"type":"send","text":"t={} s={i}-{seq}"}}"#, now_micros());
                        if sink.send(Message::Text(frame.into())).await.is_err() { break; }
                    }
                    msg = stream.next() => match msg {
                        Some(Ok(Message::Text(t))) => {
                            if t.starts_with(r#"{"type":"ack""#) {
                                stats.acked[room].fetch_add(1, Ordering::Relaxed);
                            } else if t.starts_with(r#"{"type":"error""#) {
                                stats.refused.fetch_add(1, Ordering::Relaxed);
                            } else {
                                account(&t, &stats, timed.then_some(&mut hist));
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    _ = tokio::time::sleep_until(drain_until.into()) => break,
                }
            }
            if timed {
                let _ = stats.latency.lock().await.add(&hist);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let rss_after = args.gateway_pid.and_then(rss_kib);
    let acked: Vec<u64> = stats.acked.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    let expected: u64 = acked.iter().zip(&per_room).map(|(a, n)| a * *n as u64).sum();
    let delivered = stats.delivered.load(Ordering::Relaxed);
    let h = stats.latency.lock().await;
    let total_acked: u64 = acked.iter().sum();
    println!("connections held      {held} (failed {failed})");
    println!(
        "messages acked        {total_acked} ({:.0}/s), refused {}",
        total_acked as f64 / args.duration as f64,
        stats.refused.load(Ordering::Relaxed)
    );
    println!(
        "deliveries            {delivered} ({:.0}/s) in {} frames",
        delivered as f64 / args.duration as f64,
        stats.frames.load(Ordering::Relaxed)
    );
    println!("losses                {}", expected.saturating_sub(delivered));
    println!(
        "latency ms            p50 {:.1}  p99 {:.1}  p999 {:.1}  max {:.1}",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.999) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
    if let (Some(before), Some(idle)) = (rss_before, rss_idle) {
        println!(
            "gateway RSS           {before} KiB before, {idle} KiB idle with sockets, {} KiB after load",
            rss_after.unwrap_or(0)
        );
        if held > 0 {
            println!("RSS per idle socket   {:.1} KiB", (idle.saturating_sub(before)) as f64 / held as f64);
        }
    }
    Ok(())
}
