//! `edge-load`: simulated LL-HLS players against one live stream, each playing from where the
//! API sends it (`POST /api/streams/{id}/playback`): its first source (a CDN edge) with
//! `--via edges`, or the origin (the list's last) with `--via origin`. Each player does what
//! hls.js does at the live edge: the master once, its rendition's playlist, then a blocking
//! reload (`_HLS_msn`, `_HLS_part`) for every next part and a download of every new part. At
//! the end it prints one JSON line: what the players asked for and what reached the origin (its
//! `origin_playback_*` counters), per second. `bench/edge/run.mjs` runs it both ways and writes
//! the table.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The apiserver.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// The origin's metrics (a media worker's `/metrics`).
    #[arg(long, default_value = "http://127.0.0.1:8090/metrics")]
    origin_metrics: String,
    #[arg(long)]
    stream: String,
    #[arg(long, default_value_t = 1000)]
    players: usize,
    /// Seconds measured (after the players have started and settled).
    #[arg(long, default_value_t = 30)]
    secs: u64,
    /// `edges`: each player's first source; `origin`: the origin directly.
    #[arg(long, default_value = "edges")]
    via: String,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    bytes: AtomicU64,
    parts: AtomicU64,
    errors: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http =
        onair_http::builder().pool_max_idle_per_host(4 * args.players).timeout(Duration::from_secs(15)).build()?;
    let run = std::process::id();
    // Every player's place to play from, as the API orders it for its session.
    let mut urls = Vec::with_capacity(args.players);
    let mut firsts = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..args.players {
        let session = format!("bench{run}x{i:05}");
        let res: serde_json::Value = http
            .post(format!("{}/api/streams/{}/playback", args.api, args.stream))
            .json(&serde_json::json!({ "session_id": session }))
            .send()
            .await?
            .error_for_status()
            .context("asking for playback sources")?
            .json()
            .await?;
        let sources = res["sources"].as_array().context("no sources")?;
        let pick = if args.via == "origin" { sources.last() } else { sources.first() }.context("empty list")?;
        *firsts.entry(pick["name"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
        urls.push(pick["url"].as_str().context("no url")?.to_owned());
    }
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, url) in urls.into_iter().enumerate() {
        let (http, counters, stop) = (http.clone(), counters.clone(), stop.clone());
        // Joins spread over 3 s, as an audience arriving.
        let delay = Duration::from_millis((i as u64 * 3000) / args.players.max(1) as u64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            while !stop.load(Ordering::Relaxed) {
                if play(&http, &url, &counters, &stop).await.is_err() {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }));
    }
    // Settle (everyone joined, caches warm), then measure.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let before = (snapshot(&counters), origin(&http, &args.origin_metrics).await?);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.secs)).await;
    let after = (snapshot(&counters), origin(&http, &args.origin_metrics).await?);
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    let rate = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / secs;
    let player_requests = rate(before.0[0], after.0[0]);
    let origin_requests = rate(before.1[0], after.1[0]);
    let out = serde_json::json!({
        "via": args.via,
        "players": args.players,
        "first_sources": firsts,
        "secs": secs,
        "player_requests_per_sec": player_requests,
        "player_mbit_per_sec": rate(before.0[1], after.0[1]) * 8.0 / 1e6,
        "parts_per_player_per_sec": rate(before.0[2], after.0[2]) / args.players as f64,
        "player_errors_per_sec": rate(before.0[3], after.0[3]),
        "origin_requests_per_sec": origin_requests,
        "origin_mbit_per_sec": rate(before.1[1], after.1[1]) * 8.0 / 1e6,
        "hit_ratio": if player_requests > 0.0 { 1.0 - origin_requests / player_requests } else { 0.0 },
    });
    println!("{out}");
    Ok(())
}

fn snapshot(c: &Counters) -> [u64; 4] {
    [
        c.requests.load(Ordering::Relaxed),
        c.bytes.load(Ordering::Relaxed),
        c.parts.load(Ordering::Relaxed),
        c.errors.load(Ordering::Relaxed),
    ]
}

/// The origin's playback requests and bytes so far (edges' and direct viewers' together).
async fn origin(http: &reqwest::Client, url: &str) -> anyhow::Result<[u64; 2]> {
    let text = http.get(url).send().await?.text().await?;
    let sum = |name: &str| -> u64 {
        text.lines()
            // Registries prefix their names (`onair_media_…`).
            .filter(|l| !l.starts_with('#') && l.split(['{', ' ']).next().is_some_and(|n| n.ends_with(name)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    Ok([sum("origin_playback_requests_total"), sum("origin_playback_bytes_total")])
}

async fn get(http: &reqwest::Client, url: &url::Url, c: &Counters) -> anyhow::Result<String> {
    c.requests.fetch_add(1, Ordering::Relaxed);
    let res = http.get(url.clone()).send().await?.error_for_status()?;
    let body = res.bytes().await?;
    c.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The lowest-bandwidth variant's URI in a master playlist.
fn lowest_variant(master: &str) -> Option<&str> {
    let mut best: Option<(u64, &str)> = None;
    let mut lines = master.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if let Some(attrs) = line.strip_prefix("#EXT-X-STREAM-INF:") {
            let bw = attrs
                .split(',')
                .find_map(|a| a.strip_prefix("BANDWIDTH="))
                .and_then(|b| b.parse().ok())
                .unwrap_or(u64::MAX);
            if let Some(uri) = lines.next()
                && best.is_none_or(|(b, _)| bw < b)
            {
                best = Some((bw, uri));
            }
        }
    }
    best.map(|(_, u)| u)
}

/// What a media playlist says about where the live edge is.
#[derive(Debug, PartialEq)]
struct Edge {
    /// The parts listed, oldest first.
    parts: Vec<String>,
    /// The part to block for next: (media sequence, part index).
    next: (u64, u64),
}

fn parse_media(text: &str) -> Edge {
    let mut sequence = 0;
    let mut segments = 0;
    let mut trailing = 0;
    let mut parts = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            sequence = v.parse().unwrap_or(0);
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
            if let Some(uri) = attrs.split(',').find_map(|a| a.strip_prefix("URI=")) {
                parts.push(uri.trim_matches('"').to_owned());
            }
            trailing += 1;
        } else if !line.is_empty() && !line.starts_with('#') {
            segments += 1;
            trailing = 0;
        }
    }
    Edge { parts, next: (sequence + segments, trailing) }
}

/// One player until `stop` (or an error: the caller starts it over).
async fn play(http: &reqwest::Client, master: &str, c: &Counters, stop: &AtomicBool) -> anyhow::Result<()> {
    let master = url::Url::parse(master)?;
    let text = get(http, &master, c).await?;
    let media = master.join(lowest_variant(&text).context("no variant")?)?;
    let mut edge = parse_media(&get(http, &media, c).await?);
    // Start three parts back from the edge, as hls.js at the part hold-back does.
    let mut seen: HashSet<String> = edge.parts.iter().rev().skip(3).cloned().collect();
    while !stop.load(Ordering::Relaxed) {
        for part in &edge.parts {
            if seen.insert(part.clone()) {
                get(http, &media.join(part)?, c).await?;
                c.parts.fetch_add(1, Ordering::Relaxed);
            }
        }
        if seen.len() > 200 {
            let listed: HashSet<&String> = edge.parts.iter().collect();
            seen.retain(|p| listed.contains(p));
        }
        let mut next = media.clone();
        next.set_query(Some(&format!("_HLS_msn={}&_HLS_part={}", edge.next.0, edge.next.1)));
        edge = parse_media(&get(http, &next, c).await?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_part_follows_the_trailing_parts() {
        let text = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-PART:DURATION=0.33,URI=\"p10.0.m4s\"\n\
                    #EXTINF:1.0,\nseg10.m4s\n#EXT-X-PART:DURATION=0.33,URI=\"p11.0.m4s\"\n\
                    #EXT-X-PART:DURATION=0.33,URI=\"p11.1.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p11.2.m4s\"\n";
        let edge = parse_media(text);
        assert_eq!(edge.parts, vec!["p10.0.m4s", "p11.0.m4s", "p11.1.m4s"]);
        assert_eq!(edge.next, (11, 2));
    }

    #[test]
    fn a_finished_segment_blocks_for_the_next_ones_first_part() {
        let edge = parse_media("#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:1.0,\ns3.m4s\n#EXTINF:1.0,\ns4.m4s\n");
        assert_eq!(edge.next, (5, 0));
    }

    #[test]
    fn picks_the_cheapest_variant() {
        let m = "#EXT-X-STREAM-INF:BANDWIDTH=900000\n360p/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=400000\n240p/index.m3u8\n";
        assert_eq!(lowest_variant(m), Some("240p/index.m3u8"));
    }
}
