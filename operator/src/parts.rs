//! A stream's transcode pods: which renditions each encodes, kept where they run across
//! reconciles, with a slow pod's top rendition moved to another pod or shed. A pure function of
//! the last status, the level the plan admitted and what the transcoders report, so every path
//! is a table test; the controller applies the result.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use onair_crds::{LiveStream, TranscoderStatus};
use onair_domain::contracts::media::StreamState as WorkerObs;

use crate::scaling::{self, LadderLevel, Part, PodLoad, Rebalance, SLOW_FOR, SLOW_SPEED};

/// A stream's transcode pods as [`for_stream`] lays them out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamParts {
    /// The transcode pods to run, in name order (the status's `transcoders`).
    pub parts: Vec<TranscoderStatus>,
    /// What moved or was shed this time (for Events and metrics).
    pub rebalanced: Vec<Rebalance>,
    /// A pod could not keep up with its only rendition: the top of the ladder is shed.
    pub shed: bool,
}

/// The renditions `level` runs, named as the workers name them, none above the source (the
/// workers would not encode it, and its pod would sit idle with CPU reserved).
fn wanted(level: LadderLevel, ls: &LiveStream, source_height: Option<u32>) -> Vec<String> {
    scaling::renditions(level, &ls.spec.ladder.resolve())
        .iter()
        .filter(|r| source_height.is_none_or(|h| r.height <= h))
        .map(|r| format!("{}p", r.height))
        .collect()
}

pub fn part(t: &TranscoderStatus) -> Part {
    Part { name: t.name.clone(), renditions: t.renditions.clone(), millicores: t.millicores }
}

/// `level`: what the plan lets the stream run (`None`: nothing transcodes: queued, stopping).
/// `capacity`: millicores one transcode pod may take.
pub fn for_stream(
    ls: &LiveStream,
    level: Option<LadderLevel>,
    worker: Option<&WorkerObs>,
    capacity: u32,
    now: &Time,
) -> StreamParts {
    let previous = ls.status.as_ref().map(|s| s.transcoders.clone()).unwrap_or_default();
    let scaling = &ls.spec.scaling;
    let (min, max) = (scaling.min_transcoders as usize, scaling.max_transcoders as usize);
    // What each pod says now: a speed under real time starts (or continues) its slow spell.
    let tracked: Vec<TranscoderStatus> = previous
        .iter()
        .map(|p| {
            let report = worker.and_then(|w| w.transcoders.iter().find(|t| t.part == p.name));
            let speed = report.and_then(|t| t.encode_speed).map(|s| (s * 100.0).round() / 100.0);
            let slow_since = match speed {
                Some(s) if s < SLOW_SPEED => p.slow_since.clone().or_else(|| Some(now.clone())),
                Some(_) => None,
                // Not reporting (starting, or gone): neither slow nor recovered.
                None => p.slow_since.clone(),
            };
            TranscoderStatus { encode_speed: speed.or(p.encode_speed), slow_since, ..p.clone() }
        })
        .collect();
    let slow_long =
        |t: &TranscoderStatus| t.slow_since.as_ref().is_some_and(|s| now.0.as_second() - s.0.as_second() >= SLOW_FOR);
    let loads: Vec<PodLoad> = tracked.iter().map(|t| PodLoad { part: part(t), slow: slow_long(t) }).collect();
    let rebalanced = if level.is_some() { scaling::rebalance(&loads, max) } else { Vec::new() };
    let shed = rebalanced.iter().any(|r| matches!(r, Rebalance::Shed { .. }));
    // A pod that shed starts a new spell: the next shed needs another `SLOW_FOR` at the lower
    // level, not the next reconcile.
    let tracked: Vec<TranscoderStatus> = tracked
        .into_iter()
        .map(|t| {
            let shed_here = rebalanced.iter().any(|r| matches!(r, Rebalance::Shed { from, .. } if *from == t.name));
            TranscoderStatus { slow_since: if shed_here { None } else { t.slow_since.clone() }, ..t }
        })
        .collect();
    let current: Vec<Part> = tracked.iter().map(part).collect();
    let moved = scaling::apply_moves(&current, &rebalanced);
    let source = worker.and_then(|w| w.source_height).or(ls.status.as_ref().and_then(|s| s.source_height));
    let wanted = level.map(|l| wanted(l, ls, source)).unwrap_or_default();
    let assigned = scaling::pack(&wanted, capacity, &moved, min, max);
    let parts = assigned
        .into_iter()
        .map(|a| match tracked.iter().find(|t| t.name == a.name && t.renditions == a.renditions) {
            // Unchanged: its speed and slow spell carry on. Changed or new: a fresh start.
            Some(t) => t.clone(),
            None => TranscoderStatus {
                name: a.name,
                renditions: a.renditions,
                millicores: a.millicores,
                encode_speed: None,
                slow_since: None,
            },
        })
        .collect();
    StreamParts { parts, rebalanced, shed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_domain::contracts::media::TranscoderState as TranscoderObs;
    use serde_json::json;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap())
    }

    fn ls(transcoders: serde_json::Value, scaling: serde_json::Value) -> LiveStream {
        serde_json::from_value(json!({
            "apiVersion": "onair.dev/v1alpha1", "kind": "LiveStream",
            "metadata": {"name": "alice", "namespace": "streams"},
            "spec": {"streamId": "0195e4a0-0000-7000-8000-000000000001", "userId": "0195e4a0-0000-7000-8000-000000000002",
                     "channel": "alice", "streamKeySecret": {"name": "k"}, "scaling": scaling},
            "status": {"transcoders": transcoders},
        }))
        .unwrap()
    }

    fn worker(reports: &[(&str, f64)]) -> WorkerObs {
        WorkerObs {
            publishing: true,
            transcoders: reports
                .iter()
                .map(|(p, s)| TranscoderObs { part: p.to_string(), renditions: vec![], encode_speed: Some(*s) })
                .collect(),
            ..Default::default()
        }
    }

    fn names(p: &StreamParts) -> Vec<(String, Vec<String>)> {
        p.parts.iter().map(|t| (t.name.clone(), t.renditions.clone())).collect()
    }

    fn pair(name: &str, r: &[&str]) -> (String, Vec<String>) {
        (name.into(), r.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn the_level_decides_the_renditions_and_pods_keep_theirs() {
        let scale = json!({"minTranscoders": 1, "maxTranscoders": 4});
        let fresh = ls(json!([]), scale.clone());
        let reduced = for_stream(&fresh, Some(LadderLevel::Reduced), None, 2000, &at(0));
        assert_eq!(names(&reduced), [pair("t0", &["360p"])]);
        let full = for_stream(&fresh, Some(LadderLevel::Full), None, 2000, &at(0));
        assert_eq!(names(&full), [pair("t0", &["720p", "480p", "360p"])]);
        assert!(for_stream(&fresh, Some(LadderLevel::Passthrough), None, 2000, &at(0)).parts.is_empty());
        // Nothing above the source: a 480p publisher gets 480p and 360p, as last seen when it
        // is between connections.
        let small = WorkerObs { source_height: Some(480), ..worker(&[]) };
        let fitted = for_stream(&fresh, Some(LadderLevel::Full), Some(&small), 2000, &at(0));
        assert_eq!(names(&fitted), [pair("t0", &["480p", "360p"])]);
        let mut seen = fresh.clone();
        seen.status.get_or_insert_with(Default::default).source_height = Some(480);
        assert_eq!(
            names(&for_stream(&seen, Some(LadderLevel::Full), None, 2000, &at(0))),
            [pair("t0", &["480p", "360p"])]
        );

        // Growing: 360p stays on its pod, the rest joins where it fits.
        let running =
            ls(json!([{"name": "t0", "renditions": ["360p"], "millicores": 100, "encodeSpeed": 1.4}]), scale.clone());
        let grown = for_stream(&running, Some(LadderLevel::Full), Some(&worker(&[("t0", 1.3)])), 2000, &at(0));
        assert_eq!(names(&grown), [pair("t0", &["360p"]), pair("t1", &["720p", "480p"])]);
        assert_eq!((grown.parts[0].encode_speed, grown.parts[1].millicores), (Some(1.3), 570));
        // Shrinking: pods left with nothing go.
        let big =
            ls(json!([{"name": "t0", "renditions": ["480p", "360p"]}, {"name": "t1", "renditions": ["720p"]}]), scale);
        let shrunk = for_stream(&big, Some(LadderLevel::Reduced), None, 500, &at(0));
        assert_eq!(names(&shrunk), [pair("t0", &["360p"])]);
        assert!(for_stream(&big, None, None, 500, &at(0)).parts.is_empty(), "queued or stopping: no transcode pods");
    }

    #[test]
    fn a_pod_slow_for_long_enough_moves_its_top_rendition_or_sheds() {
        let scale = json!({"minTranscoders": 1, "maxTranscoders": 4});
        let both = json!([{"name": "t0", "renditions": ["720p", "480p"], "millicores": 510}, {"name": "t1", "renditions": ["360p"], "millicores": 1000}]);
        let stream = ls(both.clone(), scale.clone());
        let first =
            for_stream(&stream, Some(LadderLevel::Full), Some(&worker(&[("t0", 0.8), ("t1", 1.2)])), 2000, &at(0));
        assert_eq!(first.parts[0].slow_since, Some(at(0)), "the slow spell starts");
        assert_eq!(names(&first), [pair("t0", &["720p", "480p"]), pair("t1", &["360p"])], "not yet: nothing moves");
        assert!(first.rebalanced.is_empty());

        let slow = json!([
            {"name": "t0", "renditions": ["720p", "480p"], "millicores": 510, "slowSince": at(0)},
            {"name": "t1", "renditions": ["360p"], "millicores": 1000},
        ]);
        let stream = ls(slow.clone(), scale.clone());
        let recovered =
            for_stream(&stream, Some(LadderLevel::Full), Some(&worker(&[("t0", 1.1)])), 2000, &at(SLOW_FOR));
        assert_eq!(recovered.parts[0].slow_since, None, "keeping up again ends the spell");
        let moved = for_stream(
            &stream,
            Some(LadderLevel::Full),
            Some(&worker(&[("t0", 0.8), ("t1", 1.2)])),
            2000,
            &at(SLOW_FOR),
        );
        assert_eq!(
            moved.rebalanced,
            [Rebalance::Move { rendition: "720p".into(), from: "t0".into(), to: Some("t1".into()) }]
        );
        assert_eq!(names(&moved), [pair("t0", &["480p"]), pair("t1", &["720p", "360p"])]);
        assert!(!moved.shed, "a move keeps every rendition");
        assert!(moved.parts.iter().all(|p| p.slow_since.is_none()), "moved pods start over");

        // No pod has room and no more pods are allowed: shed.
        let tight = json!([
            {"name": "t0", "renditions": ["720p", "480p"], "millicores": 510, "slowSince": at(0)},
            {"name": "t1", "renditions": ["360p"], "millicores": 100},
        ]);
        let tight = ls(tight, json!({"minTranscoders": 1, "maxTranscoders": 2}));
        let shed = for_stream(&tight, Some(LadderLevel::Full), Some(&worker(&[("t0", 0.8)])), 2000, &at(SLOW_FOR));
        assert!(shed.shed);
        // A pod with a single rendition that cannot keep up sheds too, and its spell starts over.
        let single = ls(json!([{"name": "t0", "renditions": ["360p"], "millicores": 150, "slowSince": at(0)}]), scale);
        let first = for_stream(&single, Some(LadderLevel::Reduced), Some(&worker(&[("t0", 0.5)])), 2000, &at(SLOW_FOR));
        assert!(first.shed);
        assert_eq!(first.parts[0].slow_since, None, "no second shed on the next reconcile");
        // Just under real time is keeping up (ffmpeg's speed is averaged from its start).
        let steady = ls(json!([{"name": "t0", "renditions": ["360p"], "millicores": 150}]), json!({}));
        let fine = for_stream(&steady, Some(LadderLevel::Reduced), Some(&worker(&[("t0", 0.97)])), 2000, &at(0));
        assert_eq!(fine.parts[0].slow_since, None);
    }
}
