//! The fault-injection suite (`scripts/faults.sh`): the platform on this machine as separate
//! processes (API server, two chat gateways, a media worker, and private Postgres, Redis and
//! NATS), under a load of its own (publishers with real ffmpeg, HLS players, chat sockets
//! sending with acknowledgements). Then, one at a time, each of our processes is killed with
//! SIGKILL and started again, each backing service is paused (SIGSTOP) for 10 s, and a
//! publisher's connection is cut. For each fault it reports what users lost: acknowledged chat
//! messages never delivered (must be 0), messages delivered twice, how long until chat, the API
//! and playback served again, the longest playback stall, whether every stream is still live,
//! and whether the stream's analytics have a hole.
//!
//! It exits non-zero when an acknowledged message was lost, a stream did not survive a fault, or
//! a part did not come back: the test command runs a short version (`--quick`).

mod chat;
mod clock;
mod cluster;
mod player;
mod probe;
mod publisher;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::report::{Fault, Row};

#[derive(Parser)]
#[command(about = "Kill and pause each part of onair under load; report what users lost")]
struct Args {
    /// The `onair` binary to run.
    #[arg(long, default_value = "target/release/onair")]
    onair: PathBuf,
    /// The short version the test command runs: a subset of faults, a smaller load.
    #[arg(long)]
    quick: bool,
    /// Streams, each with its publisher.
    #[arg(long)]
    streams: Option<usize>,
    /// HLS players per stream.
    #[arg(long)]
    players: Option<usize>,
    /// Chat sockets, spread over the streams' rooms and the two gateways.
    #[arg(long)]
    sockets: Option<usize>,
    /// How many of the sockets send (one message every 2 s each).
    #[arg(long)]
    senders: Option<usize>,
    /// Seconds each fault is watched for (the fault comes 3 s in).
    #[arg(long)]
    phase_secs: Option<u64>,
    /// Which faults, in order (default: all, or the short list with --quick).
    #[arg(long, value_enum, value_delimiter = ',')]
    faults: Vec<Fault>,
    /// Where data and each process's log go (default: a new directory under /tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Also write the results table (Markdown) here.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

struct Load {
    streams: usize,
    players: usize,
    sockets: usize,
    senders: usize,
    phase: Duration,
    faults: Vec<Fault>,
}

impl Args {
    fn load(&self) -> Load {
        let (streams, players, sockets, senders, phase, faults) = if self.quick {
            (1, 3, 60, 10, 20, Fault::QUICK.to_vec())
        } else {
            (2, 5, 300, 40, 40, Fault::ALL.to_vec())
        };
        Load {
            streams: self.streams.unwrap_or(streams),
            players: self.players.unwrap_or(players),
            sockets: self.sockets.unwrap_or(sockets),
            senders: self.senders.unwrap_or(senders),
            phase: Duration::from_secs(self.phase_secs.unwrap_or(phase)),
            faults: if self.faults.is_empty() { faults } else { self.faults.clone() },
        }
    }
}

/// When the fault comes within its window.
const FAULT_AT: Duration = Duration::from_secs(3);
/// How long a backing service stays paused.
const PAUSE: Duration = Duration::from_secs(10);
/// Time for late deliveries and resumed sockets to catch up before anything is counted (longer
/// than a socket's longest reconnect backoff).
const SETTLE: Duration = Duration::from_secs(16);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let load = args.load();
    clock::now();
    let wall_start = chrono::Utc::now();
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("onair-faults-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    println!("[faults] starting the platform (logs in {})", dir.display());
    let mut cluster = cluster::Cluster::start(&args.onair, &dir).await?;
    let result = run(&mut cluster, &load, wall_start).await;
    println!("[faults] stopping");
    cluster.stop().await;
    let rows = result?;
    let table = report::markdown(&rows, &load_line(&load));
    println!("\n{table}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &table)?;
    }
    let failures = report::failures(&rows);
    if failures.is_empty() {
        println!("[faults] every fault survived: 0 acknowledged messages lost, every stream live");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    } else {
        for f in &failures {
            eprintln!("[faults] FAILED: {f}");
        }
        anyhow::bail!("{} fault(s) cost users what they must not (logs in {})", failures.len(), dir.display())
    }
}

fn load_line(l: &Load) -> String {
    format!(
        "{} stream(s) from ffmpeg (640x360 → 360p+240p LL-HLS), {} player(s) each, {} chat sockets over 2 gateways ({} sending a message every 2 s); {} s per fault",
        l.streams,
        l.players,
        l.sockets,
        l.senders,
        l.phase.as_secs()
    )
}

struct Stream {
    id: String,
    owner_token: String,
    publisher: publisher::Publisher,
    players: Vec<player::Log>,
}

async fn register(http: &reqwest::Client, api: &str, name: &str) -> anyhow::Result<String> {
    let body = json!({"username": name, "email": format!("{name}@faults.example"), "password": "fault suite password"});
    let v: Value = http.post(format!("{api}/api/users/register")).json(&body).send().await?.json().await?;
    v["access_token"].as_str().map(str::to_owned).with_context(|| format!("registering {name}: {v}"))
}

async fn run(
    cluster: &mut cluster::Cluster,
    load: &Load,
    wall_start: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<Row>> {
    let http = onair_http::client();
    let api = cluster.api_url();
    let hls = format!("http://{}/hls", cluster.addrs.media_http);
    let (stop_tx, stop) = watch::channel(false);

    // Streamers go live.
    let mut streams = Vec::new();
    for n in 0..load.streams {
        let token = register(&http, &api, &format!("streamer{n}")).await?;
        // Recording is not under test here, and would add its uploads to the machine's load.
        http.patch(format!("{api}/api/users/me"))
            .bearer_auth(&token)
            .json(&json!({"record_broadcasts": false}))
            .send()
            .await?
            .error_for_status()?;
        let started: Value = http
            .post(format!("{api}/api/streams/start"))
            .bearer_auth(&token)
            .json(&json!({"title": format!("fault suite {n}"), "category": "software"}))
            .send()
            .await?
            .json()
            .await?;
        let id = started["stream"]["id"].as_str().with_context(|| format!("starting a stream: {started}"))?.to_owned();
        let key = started["ingest"]["stream_key"].as_str().context("a stream key")?.to_owned();
        let publisher = publisher::Publisher::start(cluster.addrs.rtmp, key, stop.clone()).await?;
        streams.push(Stream { id, owner_token: token, publisher, players: vec![] });
    }
    for s in &streams {
        wait_live(&http, &api, &hls, &s.id, Duration::from_secs(60)).await?;
    }
    println!("[faults] {} stream(s) live", streams.len());
    for (n, s) in streams.iter_mut().enumerate() {
        for p in 0..load.players {
            s.players.push(player::start(
                http.clone(),
                format!("{hls}/{}/master.m3u8", s.id),
                format!("{api}/api/streams/{}/heartbeat", s.id),
                format!("faults-player-{n}-{p}"),
                stop.clone(),
            ));
        }
    }
    let mut tokens = Vec::new();
    for n in 0..load.senders {
        tokens.push(register(&http, &api, &format!("chatter{n}")).await?);
    }
    let audience = chat::start(
        chat::Plan {
            gateways: cluster.addrs.chat,
            rooms: streams.iter().map(|s| s.id.clone()).collect(),
            tokens,
            sockets: load.sockets,
            send_every: Duration::from_secs(2),
        },
        stop.clone(),
    )
    .await;
    let api_outages = probe::start(http.clone(), format!("{api}/api/streams/{}", streams[0].id), stop.clone());
    // Everyone settles in before the first window.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let mut windows = Vec::new();
    for fault in [Fault::None].into_iter().chain(load.faults.iter().copied()) {
        let from = clock::now();
        println!("[faults] {}", fault.describe());
        tokio::time::sleep(FAULT_AT).await;
        let restart = inject(cluster, &streams, fault).await?;
        let left = load.phase.saturating_sub(Duration::from_secs_f64(clock::now() - from));
        tokio::time::sleep(left).await;
        let to = clock::now();
        let live = still_live(&http, &api, &streams).await;
        windows.push((fault, clock::Window { from, to }, restart, live));
    }
    tokio::time::sleep(SETTLE).await;

    // What each window cost.
    let history = chat_history(&http, cluster, &streams).await;
    let mut rows = Vec::new();
    for (fault, w, restart, live) in windows {
        let chat = chat::outcome(&audience, w).await;
        let mut stall: f64 = 0.0;
        let mut playback: f64 = 0.0;
        let mut restarts = 0;
        for s in &streams {
            for p in &s.players {
                let p = p.lock().await;
                stall = stall.max(clock::longest_starting_in(&p.stalls.all(w.to), w));
                playback = playback.max(clock::longest_starting_in(&p.failures.all(w.to), w));
                restarts += p.restarts;
            }
        }
        let api_down = clock::longest_starting_in(&api_outages.lock().await.all(w.to), w);
        let mut holes = Vec::new();
        for s in &streams {
            holes.push(analytics_holes(&http, &api, s, w, wall_start, load.players).await?);
        }
        let acked_ids = acked_in(&audience, w).await;
        let not_in_history = acked_ids.iter().filter(|id| !history.contains(*id)).count();
        rows.push(Row {
            fault,
            restart,
            chat,
            not_in_history,
            api_down,
            playback_down: playback,
            stall,
            player_restarts: restarts,
            live,
            analytics: report::Analytics::merge(holes),
        });
    }
    let _ = stop_tx.send(true);
    drop(streams);
    Ok(rows)
}

/// Makes the fault happen; for a killed process, how long it took to serve again once restarted.
async fn inject(cluster: &mut cluster::Cluster, streams: &[Stream], fault: Fault) -> anyhow::Result<Option<f64>> {
    let killed = match fault {
        Fault::None => return Ok(None),
        Fault::CutPublisher => {
            streams[0].publisher.cut();
            return Ok(None);
        }
        Fault::PausePostgres | Fault::PauseRedis | Fault::PauseNats => {
            let p = match fault {
                Fault::PausePostgres => &cluster.postgres,
                Fault::PauseRedis => &cluster.redis,
                _ => &cluster.nats,
            };
            let pids = cluster::process_tree(p.pid().context("the paused service is running")?);
            cluster::signal("STOP", &pids);
            tokio::time::sleep(PAUSE).await;
            // Whatever it started meanwhile cannot have run; resume the tree as it is now.
            cluster::signal("CONT", &cluster::process_tree(p.pid().unwrap_or(pids[0])));
            cluster::signal("CONT", &pids);
            return Ok(None);
        }
        Fault::KillApiserver => &mut cluster.api,
        Fault::KillChatA => &mut cluster.chat[0],
        Fault::KillChatB => &mut cluster.chat[1],
        Fault::KillMedia => &mut cluster.media,
    };
    killed.kill9().await;
    killed.start().await?;
    Ok(Some(killed.ready(Duration::from_secs(60)).await?))
}

async fn wait_live(http: &reqwest::Client, api: &str, hls: &str, id: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let status = async {
            let v: Value = http.get(format!("{api}/api/streams/{id}")).send().await.ok()?.json().await.ok()?;
            let master = http.get(format!("{hls}/{id}/master.m3u8")).send().await.ok()?;
            Some(v["status"] == "live" && master.status().is_success())
        };
        if status.await == Some(true) {
            return Ok(());
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "stream {id} did not go live within {within:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every stream says `live` and each of its players got a segment in the last 5 s.
async fn still_live(http: &reqwest::Client, api: &str, streams: &[Stream]) -> bool {
    let mut all = true;
    for s in streams {
        let status = async {
            let v: Value = http.get(format!("{api}/api/streams/{}", s.id)).send().await.ok()?.json().await.ok()?;
            v["status"].as_str().map(str::to_owned)
        }
        .await;
        let now = clock::now();
        let mut fresh = true;
        for p in &s.players {
            fresh &= now - p.lock().await.last_segment_at < 5.0;
        }
        all &= status.as_deref() == Some("live") && fresh;
    }
    all
}

async fn acked_in(a: &chat::Audience, w: clock::Window) -> Vec<uuid::Uuid> {
    a.sent.lock().await.iter().filter(|s| w.contains(s.sent_at)).filter_map(|s| s.acked.map(|(_, id)| id)).collect()
}

/// Every message id in the rooms' durable history (the REST history, paged to the start).
async fn chat_history(
    http: &reqwest::Client,
    cluster: &cluster::Cluster,
    streams: &[Stream],
) -> std::collections::HashSet<uuid::Uuid> {
    let mut ids = std::collections::HashSet::new();
    for s in streams {
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let mut url = format!("http://{}/api/streams/{}/chat?limit=100", cluster.addrs.chat[0], s.id);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let Ok(r) = http.get(&url).send().await else { break };
            let Ok(v) = r.json::<Value>().await else { break };
            for m in v["items"].as_array().into_iter().flatten() {
                if let Some(id) = m["id"].as_str().and_then(|s| s.parse().ok()) {
                    ids.insert(id);
                }
            }
            match v["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
    }
    ids
}

/// The stream's analytics samples inside `w`: ticks with no sample, and samples counting fewer
/// viewers than were watching.
async fn analytics_holes(
    http: &reqwest::Client,
    api: &str,
    s: &Stream,
    w: clock::Window,
    wall_start: chrono::DateTime<chrono::Utc>,
    players: usize,
) -> anyhow::Result<report::Analytics> {
    let v: Value = http
        .get(format!("{api}/api/streams/{}/analytics", s.id))
        .bearer_auth(&s.owner_token)
        .send()
        .await?
        .json()
        .await?;
    let at = |t: f64| wall_start + chrono::Duration::milliseconds((t * 1000.0) as i64);
    let (from, to) = (at(w.from), at(w.to));
    let interval = cluster::SAMPLE_INTERVAL_SECS as i64;
    let mut samples = std::collections::HashMap::new();
    for x in v["samples"].as_array().into_iter().flatten() {
        if let (Some(t), Some(n)) =
            (x["at"].as_str().and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok()), x["viewers"].as_i64())
        {
            samples.insert(t.timestamp(), n);
        }
    }
    let mut out = report::Analytics::default();
    let first = (from.timestamp() + interval - 1) / interval * interval;
    let mut tick = first;
    while tick + interval <= to.timestamp() {
        out.ticks += 1;
        match samples.get(&tick) {
            None => out.missing += 1,
            Some(n) if (*n as usize) < players => out.low += 1,
            Some(_) => {}
        }
        tick += interval;
    }
    Ok(out)
}
