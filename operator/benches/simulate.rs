//! A day of synthetic load through the autoscaling decisions (`operator/src/scaling.rs`):
//! streams starting and ending on a daily curve, audiences rising, wobbling and falling, one
//! stream spiking to 100k viewers, a fixed transcode budget. Reports transcode CPU against a
//! full-ladder-for-everyone policy, queueing, and ladder flaps with and without hysteresis.
//!
//!     cargo bench -p onair-operator --bench simulate

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use onair_crds::{LadderPreset, Rendition, StreamTier};
use onair_operator::scaling::{self, Admission, AudiencePolicy, Demand, LadderLevel};

/// xorshift64*: deterministic, so every run replays the same day.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Stream {
    id: usize,
    tier: StreamTier,
    arrive: u32,
    minutes: u32,
    /// Peak concurrent viewers.
    peak: f64,
    spike: bool,
    started: Option<u32>,
    level: LadderLevel,
    wanted: LadderLevel,
    changed_at: u32,
    flaps: u32,
}

fn viewers(s: &Stream, minute: u32, rng: &mut Rng) -> i64 {
    let age = (minute - s.started.unwrap_or(minute)) as f64;
    let left = (s.arrive + s.minutes).saturating_sub(minute) as f64;
    let ramp = (age / 20.0).min(1.0) * (left / 15.0).min(1.0);
    let wobble = 0.75 + 0.5 * rng.next();
    let spike = if s.spike && (600..=720).contains(&minute) { 100_000.0 / s.peak.max(1.0) } else { 1.0 };
    (s.peak * ramp * wobble * spike).round() as i64
}

fn day(policy: &AudiencePolicy, budget: u32) -> Report {
    let mut rng = Rng(0x006f_6e61_6972);
    let ladder: Vec<Rendition> = LadderPreset::Full.renditions();
    let mut streams: Vec<Stream> = Vec::new();
    for minute in 0..1440u32 {
        // Arrivals follow the day: quiet at 05:00, busiest at 20:00 (~3,000 streams a day).
        let hour = minute as f64 / 60.0;
        let rate = 2.1 * (1.0 + 0.85 * ((hour - 14.0) / 24.0 * std::f64::consts::TAU).sin());
        let mut n = 0.0;
        while rng.next() < rate - n {
            n += 1.0;
            let tier = if rng.next() < 0.05 { StreamTier::Partner } else { StreamTier::Free };
            // Audiences are heavy-tailed: most have a handful, a few thousands.
            let peak =
                2.0 / rng.next().max(1e-4).powf(1.0 / 1.15) * if tier == StreamTier::Partner { 20.0 } else { 1.0 };
            streams.push(Stream {
                id: streams.len(),
                tier,
                arrive: minute,
                minutes: 30 + (rng.next() * 210.0) as u32,
                peak: peak.min(20_000.0),
                spike: false,
                started: None,
                level: LadderLevel::Reduced,
                wanted: LadderLevel::Reduced,
                changed_at: minute,
                flaps: 0,
            });
        }
        if minute == 540 {
            let id = streams.len();
            streams.push(Stream {
                id,
                tier: StreamTier::Free,
                arrive: minute,
                minutes: 300,
                peak: 300.0,
                spike: true,
                started: None,
                level: LadderLevel::Reduced,
                wanted: LadderLevel::Reduced,
                changed_at: minute,
                flaps: 0,
            });
        }
    }
    let mut report = Report::default();
    for minute in 0..1440u32 {
        let active: Vec<usize> =
            streams.iter().filter(|s| s.arrive <= minute && minute < s.arrive + s.minutes).map(|s| s.id).collect();
        let mut demands = Vec::with_capacity(active.len());
        for &i in &active {
            let s = &mut streams[i];
            let v = viewers(s, minute, &mut rng);
            let held = Duration::from_secs(60 * (minute - s.changed_at) as u64);
            let wanted = scaling::audience_level(s.tier, v, s.wanted, held, policy);
            if wanted != s.wanted && s.started.is_some() {
                s.flaps += 1;
                s.changed_at = minute;
            }
            s.wanted = wanted;
            demands.push(Demand {
                id: i.to_string(),
                tier: s.tier,
                since: s.arrive as i64,
                running: s.started.is_some(),
                wanted: s.wanted,
                ladder: ladder.clone(),
            });
            report.baseline_millicore_minutes += scaling::cost(LadderLevel::Full, &ladder) as u64;
        }
        let mut used = 0u64;
        for (id, a) in scaling::admit(budget, &demands) {
            let s = &mut streams[id.parse::<usize>().unwrap()];
            match a {
                Admission::Run(level) => {
                    if s.started.is_none() {
                        s.started = Some(minute);
                        report.waited.push(minute - s.arrive);
                    } else if level < s.level && level < s.wanted {
                        report.capacity_changes += 1;
                    }
                    if level < s.wanted {
                        report.degraded_minutes += 1;
                    }
                    s.level = level;
                    if s.spike && minute == 660 {
                        report.spike_level = Some((level, viewers(s, minute, &mut Rng(7))));
                    }
                    used += scaling::cost(level, &ladder) as u64;
                }
                Admission::Queued(_) => report.queued_minutes += 1,
            }
        }
        report.millicore_minutes += used;
        report.peak_millicores = report.peak_millicores.max(used);
        report.peak_baseline =
            report.peak_baseline.max(active.len() as u64 * scaling::cost(LadderLevel::Full, &ladder) as u64);
    }
    report.streams = streams.len();
    report.never_started = streams.iter().filter(|s| s.started.is_none()).count();
    report.flaps = streams.iter().map(|s| s.flaps as u64).sum();
    report.stream_hours =
        streams.iter().filter_map(|s| s.started.map(|st| (s.arrive + s.minutes - st) as f64 / 60.0)).sum();
    report
}

#[derive(Default, Debug)]
struct Report {
    streams: usize,
    never_started: usize,
    millicore_minutes: u64,
    baseline_millicore_minutes: u64,
    peak_millicores: u64,
    peak_baseline: u64,
    queued_minutes: u64,
    /// Steps down the budget forced on running streams (below what their audience earns).
    capacity_changes: u64,
    degraded_minutes: u64,
    waited: Vec<u32>,
    flaps: u64,
    stream_hours: f64,
    spike_level: Option<(LadderLevel, i64)>,
}

fn main() {
    let budget = 80_000; // 80 cores for transcoding: tight at the evening peak
    let no_hysteresis = AudiencePolicy { full_at: 50, reduce_below: 50, hold: Duration::ZERO };
    let with = day(&AudiencePolicy::default(), budget);
    let without = day(&no_hysteresis, budget);
    let roomy = day(&AudiencePolicy::default(), u32::MAX / 2);
    let roomy_without = day(&no_hysteresis, u32::MAX / 2);
    let starved = day(&AudiencePolicy::default(), 10_000);
    let core_hours = |mm: u64| mm as f64 / 1000.0 / 60.0;
    let waited = |r: &Report| {
        let queued: Vec<u32> = r.waited.iter().copied().filter(|w| *w > 0).collect();
        (
            queued.len(),
            queued.iter().copied().max().unwrap_or(0),
            if queued.is_empty() { 0.0 } else { queued.iter().sum::<u32>() as f64 / queued.len() as f64 },
        )
    };
    println!(
        "streams in the day: {}; at its peak the spike stream ran at (level, viewers) {:?} under the {}-core budget",
        with.streams,
        with.spike_level,
        budget / 1000
    );
    println!(
        "| policy | transcode core-hours | vs full ladder for all | peak cores | streams queued | mean / max wait (min) | degraded stream-min | degradations | audience flaps per stream-hour |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| full ladder for everyone (no budget) | {:.0} | 1.00 | {} | 0 | 0 / 0 | 0 | 0 | 0 |",
        core_hours(with.baseline_millicore_minutes),
        with.peak_baseline / 1000
    );
    for (name, r) in [
        ("audience ladder + hysteresis, no budget", &roomy),
        ("audience ladder, no hysteresis, no budget", &roomy_without),
        ("audience ladder + hysteresis, 80-core budget", &with),
        ("audience ladder, no hysteresis, 80-core budget", &without),
        ("audience ladder + hysteresis, 10-core budget", &starved),
    ] {
        let (n, max, mean) = waited(r);
        println!(
            "| {name} | {:.0} | {:.2} | {} | {n} | {mean:.1} / {max} | {} | {} | {:.3} |",
            core_hours(r.millicore_minutes),
            r.millicore_minutes as f64 / r.baseline_millicore_minutes as f64,
            r.peak_millicores / 1000,
            r.degraded_minutes,
            r.capacity_changes,
            r.flaps as f64 / r.stream_hours.max(1.0),
        );
        if r.never_started > 0 {
            println!("| (of those, never started before they would have ended: {}) | | | | | | | | |", r.never_started);
        }
    }
}
