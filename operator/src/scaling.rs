//! Autoscaling decisions as pure functions: which ladder a stream's audience earns, how its
//! renditions pack into transcode pods, what to do when a pod encodes slower than real time,
//! and which streams run (and how fully) under a transcode CPU budget. The operator applies
//! these; `benches/simulate.rs` replays a synthetic day through them.

use std::time::Duration;

use onair_crds::{Rendition, StreamTier};

pub use onair_crds::LadderLevel;

/// Millicores to encode one rendition in real time (x264 `veryfast`, 30 fps). Measured in
/// bench/README.md "density": a 720p/480p/360p ladder takes 0.57 cores, ~0.37 cores per
/// million pixels a frame, plus the source's decode; rounded up.
pub fn rendition_cost(height: u32) -> u32 {
    match height {
        h if h >= 1080 => 800,
        h if h >= 720 => 350,
        h if h >= 480 => 160,
        h if h >= 360 => 90,
        _ => 60,
    }
}

/// Remuxing the source into HLS: no decode, no encode.
pub const PASSTHROUGH_COST: u32 = 30;

/// The renditions encoded at `level` (the source passthrough comes on top), top first.
pub fn renditions(level: LadderLevel, ladder: &[Rendition]) -> Vec<Rendition> {
    match level {
        LadderLevel::Passthrough => Vec::new(),
        LadderLevel::Reduced => ladder.iter().min_by_key(|r| r.height).cloned().into_iter().collect(),
        LadderLevel::Full => ladder.to_vec(),
    }
}

/// Millicores a stream needs at `level`.
pub fn cost(level: LadderLevel, ladder: &[Rendition]) -> u32 {
    PASSTHROUGH_COST + renditions(level, ladder).iter().map(|r| rendition_cost(r.height)).sum::<u32>()
}

/// When the audience earns the full ladder, with a gap and a hold so it does not flap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudiencePolicy {
    /// Viewers at or above which a stream gets the full ladder.
    pub full_at: i64,
    /// Viewers below which a full stream may go back to reduced...
    pub reduce_below: i64,
    /// ...once its level has held this long.
    pub hold: Duration,
}

impl Default for AudiencePolicy {
    fn default() -> Self {
        Self { full_at: 50, reduce_below: 20, hold: Duration::from_secs(600) }
    }
}

/// The level a stream's audience earns (before capacity is considered). Partners always get
/// the full ladder. Up is immediate; down needs the audience under the lower mark and the
/// current level held for `hold`.
pub fn audience_level(
    tier: StreamTier,
    viewers: i64,
    current: LadderLevel,
    held_for: Duration,
    policy: &AudiencePolicy,
) -> LadderLevel {
    if tier == StreamTier::Partner {
        return LadderLevel::Full;
    }
    match current {
        LadderLevel::Full if viewers < policy.reduce_below && held_for >= policy.hold => LadderLevel::Reduced,
        LadderLevel::Full => LadderLevel::Full,
        _ if viewers >= policy.full_at => LadderLevel::Full,
        _ => LadderLevel::Reduced,
    }
}

/// Pack renditions (name, millicores) into pods of `capacity` millicores: first fit,
/// largest first. A rendition larger than a pod gets a pod of its own.
pub fn pack(renditions: &[(String, u32)], capacity: u32) -> Vec<Vec<String>> {
    let mut items: Vec<&(String, u32)> = renditions.iter().collect();
    items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut pods: Vec<(u32, Vec<String>)> = Vec::new();
    for (name, c) in items {
        match pods.iter_mut().find(|(used, _)| used + c <= capacity) {
            Some((used, names)) => {
                *used += c;
                names.push(name.clone());
            }
            None => pods.push((*c, vec![name.clone()])),
        }
    }
    pods.into_iter().map(|(_, n)| n).collect()
}

/// One transcode pod as it reports itself.
#[derive(Debug, Clone, PartialEq)]
pub struct PodLoad {
    pub name: String,
    /// (rendition, millicores)
    pub renditions: Vec<(String, u32)>,
    /// 1.0 = real time; under 1.0 the pod falls behind.
    pub encode_speed: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalance {
    /// Move a rendition to a pod with room.
    Move { rendition: String, from: String, to: String },
    /// No pod has room: stop encoding the rendition (viewers keep the others).
    Shed { rendition: String, from: String },
}

/// For every pod encoding slower than real time, take its most expensive rendition away: to
/// the pod with the most room that can take it (by declared costs), else shed it.
pub fn rebalance(pods: &[PodLoad], capacity: u32) -> Vec<Rebalance> {
    let mut used: Vec<u32> = pods.iter().map(|p| p.renditions.iter().map(|r| r.1).sum()).collect();
    let mut out = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        if pod.encode_speed >= 1.0 || pod.renditions.len() <= 1 {
            continue;
        }
        let Some((name, c)) = pod.renditions.iter().max_by_key(|r| r.1).cloned() else { continue };
        let target = (0..pods.len())
            .filter(|&j| j != i && pods[j].encode_speed >= 1.0 && used[j] + c <= capacity)
            .min_by_key(|&j| used[j]);
        used[i] -= c;
        match target {
            Some(j) => {
                used[j] += c;
                out.push(Rebalance::Move { rendition: name, from: pod.name.clone(), to: pods[j].name.clone() });
            }
            None => out.push(Rebalance::Shed { rendition: name, from: pod.name.clone() }),
        }
    }
    out
}

/// One stream asking for transcode capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    pub id: String,
    pub tier: StreamTier,
    /// When it asked first (seconds, any epoch): older goes first within a tier.
    pub since: i64,
    /// Already running: never stopped to make room, at worst degraded to passthrough.
    pub running: bool,
    /// What its audience earns.
    pub wanted: LadderLevel,
    pub ladder: Vec<Rendition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Run(LadderLevel),
    /// Waits for capacity; 1 is next.
    Queued(usize),
}

fn tier_rank(t: StreamTier) -> u8 {
    match t {
        StreamTier::Partner => 0,
        StreamTier::Free => 1,
    }
}

/// Share `budget` millicores: every running stream keeps at least its passthrough; new streams
/// start (at passthrough) in priority order while it fits, the rest queue; what is left lifts
/// streams toward what their audience earns, partners first, then by age. So lower tiers are
/// degraded before anyone is refused, and the queue is ordered by tier then age.
pub fn admit(budget: u32, demands: &[Demand]) -> Vec<(String, Admission)> {
    let mut order: Vec<&Demand> = demands.iter().collect();
    order.sort_by(|a, b| {
        tier_rank(a.tier).cmp(&tier_rank(b.tier)).then(a.since.cmp(&b.since)).then_with(|| a.id.cmp(&b.id))
    });
    let mut left = budget as i64;
    let mut level: Vec<Option<LadderLevel>> = vec![None; order.len()];
    // Running streams first (they keep playing whatever happens), then new ones in order.
    for pass_running in [true, false] {
        for (i, d) in order.iter().enumerate().filter(|(_, d)| d.running == pass_running) {
            if d.running || left >= PASSTHROUGH_COST as i64 {
                left -= PASSTHROUGH_COST as i64;
                level[i] = Some(LadderLevel::Passthrough);
            }
        }
    }
    for (i, d) in order.iter().enumerate() {
        let Some(mut current) = level[i] else { continue };
        for up in [LadderLevel::Reduced, LadderLevel::Full].into_iter().filter(|up| *up <= d.wanted) {
            let extra = cost(up, &d.ladder) as i64 - cost(current, &d.ladder) as i64;
            if extra > left {
                break;
            }
            left -= extra;
            current = up;
        }
        level[i] = Some(current);
    }
    let mut queued = 0;
    order
        .iter()
        .zip(level)
        .map(|(d, l)| {
            let a = match l {
                Some(l) => Admission::Run(l),
                None => {
                    queued += 1;
                    Admission::Queued(queued)
                }
            };
            (d.id.clone(), a)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_crds::LadderPreset;

    fn ladder() -> Vec<Rendition> {
        LadderPreset::Standard.renditions()
    }

    #[test]
    fn the_ladder_follows_the_audience_with_hysteresis() {
        let p = AudiencePolicy::default();
        let long = Duration::from_secs(3600);
        let short = Duration::from_secs(60);
        use LadderLevel::*;
        let table = [
            ("small audience", StreamTier::Free, 5, Reduced, long, Reduced),
            ("crosses the upper mark", StreamTier::Free, 50, Reduced, short, Full),
            ("between the marks stays full", StreamTier::Free, 30, Full, long, Full),
            ("between the marks stays reduced", StreamTier::Free, 30, Reduced, long, Reduced),
            ("under the lower mark, held long enough", StreamTier::Free, 10, Full, long, Reduced),
            ("under the lower mark, too soon", StreamTier::Free, 10, Full, short, Full),
            ("partner with nobody", StreamTier::Partner, 0, Reduced, short, Full),
            ("degraded stream with a crowd asks for full", StreamTier::Free, 500, Passthrough, short, Full),
        ];
        for (case, tier, viewers, current, held, want) in table {
            assert_eq!(audience_level(tier, viewers, current, held, &p), want, "{case}");
        }
    }

    #[test]
    fn levels_pick_renditions_and_costs() {
        let l = ladder();
        assert!(renditions(LadderLevel::Passthrough, &l).is_empty());
        assert_eq!(renditions(LadderLevel::Reduced, &l).iter().map(|r| r.height).collect::<Vec<_>>(), [360]);
        assert_eq!(renditions(LadderLevel::Full, &l).len(), 3);
        assert_eq!(cost(LadderLevel::Passthrough, &l), 30);
        assert_eq!(cost(LadderLevel::Reduced, &l), 30 + 90);
        assert_eq!(cost(LadderLevel::Full, &l), 30 + 350 + 160 + 90, "the measured 0.57 cores, rounded up");
    }

    #[test]
    fn packing_is_first_fit_largest_first() {
        let r = |n: &str, c| (n.to_string(), c);
        type Case<'a> = (&'a str, Vec<(String, u32)>, u32, Vec<Vec<&'a str>>);
        let table: Vec<Case> = vec![
            (
                "all in one",
                vec![r("720p", 800), r("480p", 400), r("360p", 250)],
                2000,
                vec![vec!["720p", "480p", "360p"]],
            ),
            (
                "two pods",
                vec![r("1080p", 1500), r("720p", 800), r("480p", 400), r("360p", 250)],
                2000,
                vec![vec!["1080p", "480p"], vec!["720p", "360p"]],
            ),
            (
                "oversized gets its own pod",
                vec![r("2160p", 3000), r("360p", 250)],
                2000,
                vec![vec!["2160p"], vec!["360p"]],
            ),
            ("nothing", vec![], 2000, vec![]),
        ];
        for (case, items, cap, want) in table {
            let got = pack(&items, cap);
            let want: Vec<Vec<String>> = want.into_iter().map(|p| p.into_iter().map(String::from).collect()).collect();
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn a_slow_pod_moves_its_top_rendition_or_sheds_it() {
        let pod = |n: &str, r: Vec<(&str, u32)>, speed| PodLoad {
            name: n.into(),
            renditions: r.into_iter().map(|(a, b)| (a.to_string(), b)).collect(),
            encode_speed: speed,
        };
        let moved =
            rebalance(&[pod("a", vec![("720p", 800), ("480p", 400)], 0.8), pod("b", vec![("360p", 250)], 1.3)], 2000);
        assert_eq!(moved, [Rebalance::Move { rendition: "720p".into(), from: "a".into(), to: "b".into() }]);
        let shed =
            rebalance(&[pod("a", vec![("720p", 800), ("480p", 400)], 0.8), pod("b", vec![("1080p", 1500)], 1.2)], 2000);
        assert_eq!(shed, [Rebalance::Shed { rendition: "720p".into(), from: "a".into() }]);
        let healthy = rebalance(&[pod("a", vec![("720p", 800), ("480p", 400)], 1.05)], 2000);
        assert!(healthy.is_empty());
        let single = rebalance(&[pod("a", vec![("720p", 800)], 0.7)], 2000);
        assert!(single.is_empty(), "a pod's last rendition is not shed by this rule");
    }

    fn demand(id: &str, tier: StreamTier, since: i64, running: bool, wanted: LadderLevel) -> Demand {
        Demand { id: id.into(), tier, since, running, wanted, ladder: ladder() }
    }

    #[test]
    fn under_budget_everyone_gets_what_their_audience_earns() {
        use LadderLevel::*;
        let d = [demand("p", StreamTier::Partner, 5, true, Full), demand("f", StreamTier::Free, 1, false, Reduced)];
        let got = admit(10_000, &d);
        assert_eq!(got, [("p".into(), Admission::Run(Full)), ("f".into(), Admission::Run(Reduced))]);
    }

    #[test]
    fn lower_tiers_are_degraded_before_anyone_is_refused_and_the_queue_is_tier_then_age() {
        use LadderLevel::*;
        // Full costs 630, reduced 120, passthrough 30.
        let d = [
            demand("free-old", StreamTier::Free, 1, true, Full),
            demand("partner", StreamTier::Partner, 9, true, Full),
            demand("free-new", StreamTier::Free, 5, false, Full),
        ];
        // 700: the partner's full ladder (630) + two passthroughs (60) + 10 left.
        let got = admit(700, &d);
        assert_eq!(
            got,
            [
                ("partner".into(), Admission::Run(Full)),
                ("free-old".into(), Admission::Run(Passthrough)),
                ("free-new".into(), Admission::Run(Passthrough)),
            ]
        );
        // Not even passthrough fits for the new ones: they queue, partners first, then by age.
        let d = [
            demand("running", StreamTier::Free, 1, true, Full),
            demand("free-b", StreamTier::Free, 7, false, Reduced),
            demand("free-a", StreamTier::Free, 3, false, Reduced),
            demand("partner-new", StreamTier::Partner, 8, false, Full),
        ];
        let got = admit(40, &d);
        assert_eq!(
            got,
            [
                ("partner-new".into(), Admission::Queued(1)),
                ("running".into(), Admission::Run(Passthrough)),
                ("free-a".into(), Admission::Queued(2)),
                ("free-b".into(), Admission::Queued(3)),
            ]
        );
    }

    #[test]
    fn a_running_stream_is_never_stopped_for_a_new_one() {
        use LadderLevel::*;
        let d = [
            demand("running", StreamTier::Free, 1, true, Reduced),
            demand("partner-new", StreamTier::Partner, 2, false, Full),
        ];
        let got = admit(50, &d);
        assert_eq!(
            got,
            [("partner-new".into(), Admission::Queued(1)), ("running".into(), Admission::Run(Passthrough))]
        );
    }
}
