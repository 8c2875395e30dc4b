//! The capacity plan: on a timer, every LiveStream's audience level and admission under the
//! transcode budget, from the viewers its status reports (the worker's counts, the same Redis
//! data as the API). Reconciles read the plan; they never compute it per request.

use std::collections::HashMap;
use std::time::Duration;

use kube::ResourceExt as _;
use onair_crds::{LiveStream, Phase, StreamTier};

use crate::scaling::{self, Admission, AudiencePolicy, Demand, LadderLevel};

/// What the planner decided for one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What its audience earns.
    pub wanted: LadderLevel,
    pub admission: Admission,
}

pub fn key(ls: &LiveStream) -> String {
    format!("{}/{}", ls.namespace().unwrap_or_default(), ls.name_any())
}

/// A stream starts at what its tier and (no) audience earn: partners full, others reduced.
pub fn initial_level(tier: StreamTier) -> LadderLevel {
    if tier == StreamTier::Partner { LadderLevel::Full } else { LadderLevel::Reduced }
}

/// Whether a LiveStream takes part in the plan: wants media and can run.
fn takes_part(ls: &LiveStream) -> bool {
    !ls.spec.suspend
        && ls.metadata.deletion_timestamp.is_none()
        && !matches!(ls.status.as_ref().and_then(|s| s.phase), Some(Phase::Ended | Phase::Failed))
}

fn running(ls: &LiveStream) -> bool {
    matches!(
        ls.status.as_ref().and_then(|s| s.phase),
        Some(Phase::Starting | Phase::Ready | Phase::Live | Phase::Ending)
    )
}

/// The audience level `ls` earns now (`now_secs`: Unix seconds). `previous`: what the last plan
/// said it earned — the hysteresis band works on that, not on the level the budget let it
/// run at (a stream squeezed to passthrough still "holds" full in the band).
pub fn wanted(ls: &LiveStream, policy: &AudiencePolicy, now_secs: i64, previous: Option<LadderLevel>) -> LadderLevel {
    let status = ls.status.as_ref();
    let current =
        previous.or_else(|| status.and_then(|s| s.ladder_level)).unwrap_or_else(|| initial_level(ls.spec.tier));
    let since = status.and_then(|s| s.level_since.as_ref()).map(|t| t.0.as_second()).unwrap_or(now_secs);
    let held = Duration::from_secs(now_secs.saturating_sub(since).max(0) as u64);
    let viewers = status.and_then(|s| s.viewers).unwrap_or(0);
    let earned = scaling::audience_level(ls.spec.tier, viewers, current, held, policy);
    // An encoder that could not keep up has its ladder capped for a while (status::shed_if_slow).
    match status.and_then(|s| s.ladder_cap) {
        Some(cap) => earned.min(cap),
        None => earned,
    }
}

/// Plan every stream: `budget_millicores` `None` means no budget (everyone gets what their
/// audience earns).
pub fn plan<'a>(
    objects: impl IntoIterator<Item = &'a LiveStream>,
    budget_millicores: Option<u32>,
    policy: &AudiencePolicy,
    now_secs: i64,
    previous: &HashMap<String, Decision>,
) -> HashMap<String, Decision> {
    let mut wanted_by_key = HashMap::new();
    let mut demands = Vec::new();
    for ls in objects.into_iter().filter(|ls| takes_part(ls)) {
        let k = key(ls);
        let w = wanted(ls, policy, now_secs, previous.get(&k).map(|d| d.wanted));
        wanted_by_key.insert(k.clone(), w);
        demands.push(Demand {
            id: k,
            tier: ls.spec.tier,
            since: ls.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()).unwrap_or(now_secs),
            running: running(ls),
            wanted: w,
            ladder: ls.spec.ladder.resolve(),
        });
    }
    let budget = budget_millicores.unwrap_or(u32::MAX);
    scaling::admit(budget, &demands)
        .into_iter()
        .map(|(k, admission)| {
            let wanted = wanted_by_key[&k];
            (k, Decision { wanted, admission })
        })
        .collect()
}

/// Millicores the plan runs, and how many wait per tier.
pub fn usage(objects: &[&LiveStream], plan: &HashMap<String, Decision>) -> (u64, [u64; 2]) {
    let mut used = 0u64;
    let mut queued = [0u64; 2];
    for ls in objects {
        match plan.get(&key(ls)).map(|d| d.admission) {
            Some(Admission::Run(level)) => used += scaling::cost(level, &ls.spec.ladder.resolve()) as u64,
            Some(Admission::Queued(_)) => queued[usize::from(ls.spec.tier == StreamTier::Free)] += 1,
            None => {}
        }
    }
    (used, queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn ls(
        name: &str,
        tier: &str,
        created: i64,
        phase: Option<&str>,
        viewers: i64,
        level: Option<&str>,
        since: i64,
    ) -> LiveStream {
        let mut v = json!({
            "apiVersion": "onair.dev/v1alpha1", "kind": "LiveStream",
            "metadata": {"name": name, "namespace": "s", "creationTimestamp": Time(k8s_openapi::jiff::Timestamp::from_second(created).unwrap())},
            "spec": {"streamId": "0195e4a0-0000-7000-8000-000000000001", "userId": "0195e4a0-0000-7000-8000-000000000002",
                     "channel": name, "streamKeySecret": {"name": "k"}, "tier": tier},
        });
        if let Some(p) = phase {
            v["status"] = json!({"phase": p, "viewers": viewers, "levelSince": Time(k8s_openapi::jiff::Timestamp::from_second(since).unwrap())});
            if let Some(l) = level {
                v["status"]["ladderLevel"] = json!(l);
            }
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn without_a_budget_everyone_runs_at_what_the_audience_earns() {
        let now = 10_000;
        let objects = [
            ls("quiet", "Free", 1, Some("Live"), 3, Some("Reduced"), 0),
            ls("busy", "Free", 2, Some("Live"), 80, Some("Reduced"), 0),
            ls("partner", "Partner", 3, Some("Ready"), 0, None, 0),
            ls("new", "Free", 4, None, 0, None, 0),
            ls("ended", "Free", 5, Some("Ended"), 0, None, 0),
        ];
        let p = plan(&objects, None, &AudiencePolicy::default(), now, &HashMap::new());
        let run = |k: &str| p[&format!("s/{k}")].admission;
        assert_eq!(run("quiet"), Admission::Run(LadderLevel::Reduced));
        assert_eq!(run("busy"), Admission::Run(LadderLevel::Full));
        assert_eq!(run("partner"), Admission::Run(LadderLevel::Full));
        assert_eq!(run("new"), Admission::Run(LadderLevel::Reduced));
        assert!(!p.contains_key("s/ended"), "ended streams take no capacity");
    }

    #[test]
    fn the_hold_counts_from_the_last_level_change() {
        let policy = AudiencePolicy::default();
        let recent = ls("a", "Free", 1, Some("Live"), 5, Some("Full"), 9_900);
        let old = ls("b", "Free", 1, Some("Live"), 5, Some("Full"), 1_000);
        assert_eq!(wanted(&recent, &policy, 10_000, None), LadderLevel::Full, "held 100 s: stays");
        assert_eq!(wanted(&old, &policy, 10_000, None), LadderLevel::Reduced, "held long: steps down");
        // Squeezed to passthrough by the budget, 30 viewers (inside the band): the last plan's
        // "full" holds, it does not fall to reduced.
        let squeezed = ls("c", "Free", 1, Some("Live"), 30, Some("Passthrough"), 9_990);
        assert_eq!(wanted(&squeezed, &policy, 10_000, Some(LadderLevel::Full)), LadderLevel::Full);
        assert_eq!(wanted(&squeezed, &policy, 10_000, None), LadderLevel::Reduced, "without the plan it would flap");
        let mut capped = ls("d", "Partner", 1, Some("Live"), 900, Some("Full"), 0);
        capped.status.as_mut().unwrap().ladder_cap = Some(LadderLevel::Reduced);
        assert_eq!(wanted(&capped, &policy, 10_000, None), LadderLevel::Reduced, "a shed caps even a partner");
    }

    #[test]
    fn under_a_budget_new_streams_queue_by_tier_then_age_and_usage_is_counted() {
        let objects = [
            ls("running", "Free", 1, Some("Live"), 100, Some("Full"), 0),
            ls("free-new", "Free", 5, None, 0, None, 0),
            ls("partner-new", "Partner", 9, None, 0, None, 0),
        ];
        // Room for the running stream's passthrough only.
        let p = plan(&objects, Some(40), &AudiencePolicy::default(), 10_000, &HashMap::new());
        assert_eq!(
            p["s/running"],
            Decision { wanted: LadderLevel::Full, admission: Admission::Run(LadderLevel::Passthrough) }
        );
        assert_eq!(p["s/partner-new"].admission, Admission::Queued(1));
        assert_eq!(p["s/free-new"].admission, Admission::Queued(2));
        let refs: Vec<&LiveStream> = objects.iter().collect();
        assert_eq!(usage(&refs, &p), (30, [1, 1]));
    }
}
