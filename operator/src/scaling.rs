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

/// How long a transcode pod may run slower than real time before the operator acts.
pub const SLOW_FOR: i64 = 30;
/// Slower than this is falling behind. Not 1.0: ffmpeg's `speed` is averaged from its start,
/// so an encoder fed live sits just under 1.0 (its start-up second) while keeping up.
pub const SLOW_SPEED: f64 = 0.9;

/// The ingest pod: remuxing the source into HLS (no encode; a keyframe decoded now and then for
/// the thumbnail). Measured 13 millicores for a 720p30 3 Mbps source (bench/README.md, "split
/// roles"); kept at 30 for bigger sources.
pub const PASSTHROUGH_COST: u32 = 30;

/// Every transcode pod decodes the source once, whatever it encodes: measured 56 millicores for
/// a 720p30 source (bench/README.md, "split roles"); rounded up. This is why renditions are
/// packed into few pods.
pub const SOURCE_DECODE_COST: u32 = 60;

/// The renditions encoded at `level` (the source passthrough comes on top), top first.
pub fn renditions(level: LadderLevel, ladder: &[Rendition]) -> Vec<Rendition> {
    match level {
        LadderLevel::Passthrough => Vec::new(),
        LadderLevel::Reduced => ladder.iter().min_by_key(|r| r.height).cloned().into_iter().collect(),
        LadderLevel::Full => ladder.to_vec(),
    }
}

/// Millicores a stream needs at `level`, its renditions in one transcode pod.
pub fn cost(level: LadderLevel, ladder: &[Rendition]) -> u32 {
    let encode: u32 = renditions(level, ladder).iter().map(|r| rendition_cost(r.height)).sum();
    PASSTHROUGH_COST + if encode > 0 { SOURCE_DECODE_COST + encode } else { 0 }
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

/// One transcode pod of a stream: a stable name (`t0`, `t1`, ...), the renditions it encodes
/// (top first), and the CPU it was given when it was made. Its renditions change at run time
/// (the worker switches at a keyframe); its CPU request does not (that would restart the pod),
/// so a pod only takes more renditions within what it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub renditions: Vec<String>,
    pub millicores: u32,
}

/// The smallest CPU request a transcode pod gets.
pub const MIN_POD_MILLICORES: u32 = 100;

/// The lowest `t{n}` not taken.
fn fresh_name(parts: &[Part]) -> String {
    (0..).map(|n| format!("t{n}")).find(|n| parts.iter().all(|p| &p.name != n)).unwrap_or_default()
}

/// `720p` -> its measured cost.
pub fn cost_of(rendition: &str) -> u32 {
    rendition_cost(height(rendition))
}

/// What a transcode pod takes: the source's decode plus its renditions.
fn load(part: &Part) -> u32 {
    SOURCE_DECODE_COST + part.renditions.iter().map(|r| cost_of(r)).sum::<u32>()
}

/// Pack the wanted renditions into transcode pods. What already runs stays where it runs:
/// renditions no longer wanted leave their pods and pods left empty go. New renditions go
/// first-fit, largest first, into a pod that has room (a running pod within the CPU it was
/// given, a pod made in this pass within `capacity`), else into a new pod. Between `min` and
/// `max` pods: below `min` a new rendition opens a pod of its own; at `max` it joins the least
/// loaded pod made in this pass (else the least loaded). A rendition larger than `capacity`
/// gets a pod of its own. Lowering `max` does not take running pods away.
pub fn pack(wanted: &[String], capacity: u32, current: &[Part], min: usize, max: usize) -> Vec<Part> {
    let max = max.max(1);
    let mut parts: Vec<Part> = current
        .iter()
        .map(|p| Part {
            renditions: p.renditions.iter().filter(|r| wanted.contains(r)).cloned().collect(),
            ..p.clone()
        })
        .filter(|p| !p.renditions.is_empty())
        .collect();
    let made_before = parts.len();
    let mut new: Vec<&String> = wanted.iter().filter(|n| !parts.iter().any(|p| p.renditions.contains(n))).collect();
    new.sort_by(|a, b| cost_of(b).cmp(&cost_of(a)).then_with(|| a.cmp(b)));
    for name in new {
        let c = cost_of(name);
        let room = |i: usize, p: &Part| load(p) + c <= if i < made_before { p.millicores } else { capacity };
        let fits = parts.iter().enumerate().position(|(i, p)| room(i, p));
        let at = match fits {
            Some(i) if parts.len() >= min => i,
            _ if parts.len() < max => {
                parts.push(Part { name: fresh_name(&parts), renditions: Vec::new(), millicores: 0 });
                parts.len() - 1
            }
            // At `max`: a pod made in this pass grows with it; a running pod's request is fixed,
            // so one is overcommitted only when there is no new pod (its speed then says so).
            _ => (made_before..parts.len())
                .min_by_key(|&i| load(&parts[i]))
                .or_else(|| (0..parts.len()).min_by_key(|&i| load(&parts[i])))
                .unwrap_or(0),
        };
        parts[at].renditions.push(name.clone());
    }
    for (i, p) in parts.iter_mut().enumerate() {
        p.renditions.sort_by_key(|r| std::cmp::Reverse(height(r)));
        if i >= made_before {
            p.millicores = load(p).max(MIN_POD_MILLICORES);
        }
    }
    parts.sort_by(|a, b| a.name.cmp(&b.name));
    parts
}

/// `720p` -> 720 (ordering renditions top first).
fn height(rendition: &str) -> u32 {
    rendition.trim_end_matches('p').parse().unwrap_or(0)
}

/// One transcode pod as it reports itself.
#[derive(Debug, Clone, PartialEq)]
pub struct PodLoad {
    pub part: Part,
    /// Whether it has run slower than real time for long enough to act on.
    pub slow: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalance {
    /// Move a rendition to a pod with room (`to: None`: a new pod of its own).
    Move { rendition: String, from: String, to: Option<String> },
    /// A pod encoding a single rendition cannot keep up with it: shed the top of the ladder
    /// (viewers keep the source and what else runs).
    Shed { rendition: String, from: String },
}

/// For every slow pod: move its most expensive rendition away — to the healthy pod with the
/// most room that can take it (within the CPU it was given), else to a new pod (within `max`
/// pods) — or, when it encodes only that rendition, shed it.
pub fn rebalance(pods: &[PodLoad], max: usize) -> Vec<Rebalance> {
    let mut used: Vec<u32> = pods.iter().map(|p| load(&p.part)).collect();
    let mut count = pods.len();
    let mut out = Vec::new();
    for (i, pod) in pods.iter().enumerate().filter(|(_, p)| p.slow) {
        let from = pod.part.name.clone();
        let Some(name) = pod.part.renditions.iter().max_by_key(|r| cost_of(r)).cloned() else { continue };
        if pod.part.renditions.len() == 1 {
            out.push(Rebalance::Shed { rendition: name, from });
            continue;
        }
        let c = cost_of(&name);
        let target = (0..pods.len())
            .filter(|&j| j != i && !pods[j].slow && used[j] + c <= pods[j].part.millicores)
            .min_by_key(|&j| used[j]);
        used[i] -= c;
        let to = match target {
            Some(j) => {
                used[j] += c;
                Some(pods[j].part.name.clone())
            }
            None if count < max => {
                count += 1;
                None
            }
            None => {
                out.push(Rebalance::Shed { rendition: name, from });
                continue;
            }
        };
        out.push(Rebalance::Move { rendition: name, from, to });
    }
    out
}

/// The pods after the moves (a move to a new pod opens one, given what the rendition costs).
pub fn apply_moves(parts: &[Part], moves: &[Rebalance]) -> Vec<Part> {
    let mut parts = parts.to_vec();
    for m in moves {
        let Rebalance::Move { rendition, from, to } = m else { continue };
        if let Some(p) = parts.iter_mut().find(|p| &p.name == from) {
            p.renditions.retain(|r| r != rendition);
        }
        let at = match to.as_ref().and_then(|t| parts.iter().position(|p| &p.name == t)) {
            Some(i) => i,
            None => {
                let millicores = (SOURCE_DECODE_COST + cost_of(rendition)).max(MIN_POD_MILLICORES);
                parts.push(Part { name: fresh_name(&parts), renditions: Vec::new(), millicores });
                parts.len() - 1
            }
        };
        parts[at].renditions.push(rendition.clone());
        parts[at].renditions.sort_by_key(|r| std::cmp::Reverse(height(r)));
    }
    parts.retain(|p| !p.renditions.is_empty());
    parts
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
        assert_eq!(cost(LadderLevel::Reduced, &l), 30 + 60 + 90, "passthrough, the transcode pod's decode, 360p");
        assert_eq!(cost(LadderLevel::Full, &l), 30 + 60 + 350 + 160 + 90, "the measured 0.57 cores, rounded up");
    }

    fn wanted(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn parts(items: &[(&str, &[&str], u32)]) -> Vec<Part> {
        items.iter().map(|(n, r, m)| Part { name: n.to_string(), renditions: wanted(r), millicores: *m }).collect()
    }

    #[test]
    fn renditions_pack_into_pods_first_fit_largest_first_and_stay_where_they_run() {
        // Costs: 1080p 800, 720p 350, 480p 160, 360p 90, plus 60 per pod for the source's decode.
        let full = wanted(&["1080p", "720p", "480p", "360p"]);
        type Case<'a> = (&'a str, Vec<String>, u32, Vec<Part>, (usize, usize), Vec<Part>);
        let table: Vec<Case> = vec![
            (
                "all in one",
                wanted(&["720p", "480p", "360p"]),
                2000,
                vec![],
                (1, 4),
                parts(&[("t0", &["720p", "480p", "360p"], 660)]),
            ),
            (
                "two pods",
                full.clone(),
                1000,
                vec![],
                (1, 4),
                parts(&[("t0", &["1080p", "360p"], 950), ("t1", &["720p", "480p"], 570)]),
            ),
            (
                "oversized gets its own pod",
                wanted(&["1080p", "360p"]),
                500,
                vec![],
                (1, 4),
                parts(&[("t0", &["1080p"], 860), ("t1", &["360p"], 150)]),
            ),
            ("nothing wanted, no pods", vec![], 2000, parts(&[("t0", &["360p"], 100)]), (1, 4), vec![]),
            (
                "growing from reduced: 360p stays, its pod takes nothing beyond what it was given",
                full.clone(),
                2000,
                parts(&[("t3", &["360p"], 100)]),
                (1, 4),
                parts(&[("t0", &["1080p", "720p", "480p"], 1370), ("t3", &["360p"], 100)]),
            ),
            (
                "a running pod takes what fits in its request",
                wanted(&["480p", "360p"]),
                2000,
                parts(&[("t0", &["360p"], 320)]),
                (1, 4),
                parts(&[("t0", &["480p", "360p"], 320)]),
            ),
            (
                "shrinking to reduced empties and removes pods; requests stay",
                wanted(&["360p"]),
                2000,
                parts(&[("t0", &["1080p", "480p"], 960), ("t1", &["720p", "360p"], 440)]),
                (1, 4),
                parts(&[("t1", &["360p"], 440)]),
            ),
            (
                "at most max pods: the rest joins the least loaded",
                full.clone(),
                500,
                vec![],
                (1, 2),
                parts(&[("t0", &["1080p"], 860), ("t1", &["720p", "480p", "360p"], 660)]),
            ),
            (
                "at max, a new pod grows rather than overcommitting a running one",
                wanted(&["720p", "480p", "360p"]),
                500,
                parts(&[("t0", &["360p"], 150)]),
                (1, 2),
                parts(&[("t0", &["360p"], 150), ("t1", &["720p", "480p"], 570)]),
            ),
            (
                "at least min pods",
                wanted(&["720p", "480p", "360p"]),
                2000,
                vec![],
                (3, 4),
                parts(&[("t0", &["720p"], 410), ("t1", &["480p"], 220), ("t2", &["360p"], 150)]),
            ),
        ];
        for (case, wanted, cap, current, (min, max), want) in table {
            assert_eq!(pack(&wanted, cap, &current, min, max), want, "{case}");
        }
    }

    #[test]
    fn a_slow_pod_moves_its_top_rendition_or_sheds_it() {
        let pod = |n: &str, r: &[&str], millicores, slow| PodLoad {
            part: Part { name: n.into(), renditions: wanted(r), millicores },
            slow,
        };
        let to_b = rebalance(&[pod("a", &["720p", "480p"], 510, true), pod("b", &["360p"], 1000, false)], 4);
        assert_eq!(to_b, [Rebalance::Move { rendition: "720p".into(), from: "a".into(), to: Some("b".into()) }]);
        let full = [pod("a", &["720p", "480p"], 510, true), pod("b", &["360p"], 100, false)];
        assert_eq!(
            rebalance(&full, 4),
            [Rebalance::Move { rendition: "720p".into(), from: "a".into(), to: None }],
            "no pod has room: a new one"
        );
        assert_eq!(
            rebalance(&full, 2),
            [Rebalance::Shed { rendition: "720p".into(), from: "a".into() }],
            "no room and no more pods allowed: shed"
        );
        assert!(rebalance(&[pod("a", &["720p", "480p"], 510, false)], 4).is_empty());
        assert_eq!(
            rebalance(&[pod("a", &["720p"], 350, true)], 4),
            [Rebalance::Shed { rendition: "720p".into(), from: "a".into() }],
            "a pod with one rendition cannot give it away"
        );
        let moved = apply_moves(
            &parts(&[("t0", &["720p", "480p"], 510), ("t1", &["360p"], 300)]),
            &[
                Rebalance::Move { rendition: "720p".into(), from: "t0".into(), to: None },
                Rebalance::Move { rendition: "480p".into(), from: "t0".into(), to: Some("t1".into()) },
            ],
        );
        assert_eq!(moved, parts(&[("t1", &["480p", "360p"], 300), ("t2", &["720p"], 410)]), "t0 emptied and gone");
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
        // Full costs 690, reduced 180, passthrough 30.
        let d = [
            demand("free-old", StreamTier::Free, 1, true, Full),
            demand("partner", StreamTier::Partner, 9, true, Full),
            demand("free-new", StreamTier::Free, 5, false, Full),
        ];
        // 760: the partner's full ladder (690) + two passthroughs (60) + 10 left.
        let got = admit(760, &d);
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
