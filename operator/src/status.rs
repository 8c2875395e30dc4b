//! From what the operator observed (the Secret, the media pods, the worker's own report) to the
//! LiveStream's status: a pure function, so every path through it is a table test.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt as _;
use onair_crds::{ConditionType, LiveStream, LiveStreamStatus, Phase, set_condition};

use crate::scaling::Admission;

/// One media pod as the operator saw it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodObs {
    pub name: String,
    pub ready: bool,
    pub restarts: i32,
    /// The container's waiting reason (`ImagePullBackOff`, `CrashLoopBackOff`, ...).
    pub waiting_reason: Option<String>,
    pub waiting_message: Option<String>,
    /// The pod is going away (deleted, evicted).
    pub terminating: bool,
    /// `ingest` or `transcode` (its role label).
    pub role: Option<String>,
}

impl PodObs {
    pub fn from_pod(pod: &Pod) -> Self {
        let status = pod.status.as_ref();
        let cs = status.and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first());
        let waiting = cs.and_then(|c| c.state.as_ref()).and_then(|s| s.waiting.as_ref());
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Self {
            name: pod.name_any(),
            ready,
            restarts: cs.map(|c| c.restart_count).unwrap_or(0),
            waiting_reason: waiting.and_then(|w| w.reason.clone()),
            waiting_message: waiting.and_then(|w| w.message.clone()),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            role: pod.labels().get(crate::desired::LABEL_ROLE).cloned(),
        }
    }

    /// The pod that takes the publisher and serves the stream.
    pub fn is_ingest(&self) -> bool {
        self.role.as_deref() != Some("transcode")
    }
}

/// What the stream's ingest pod says about it (`GET /internal/streams/{id}`), and about each of
/// its transcode pods: the worker's own contract types.
pub use onair_domain::contracts::media::{StreamState as WorkerObs, TranscoderState as TranscoderObs};

/// Everything one reconcile looked at.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// Why the stream key Secret (or its key) is missing, if it is.
    pub secret_missing: Option<String>,
    pub pods: Vec<PodObs>,
    pub worker: Option<WorkerObs>,
    /// RTMP base URL the streamer publishes to.
    pub ingest_url: Option<String>,
    pub playback_url: Option<String>,
    /// The spec could not be run: (field, why).
    pub invalid: Option<(String, String)>,
    /// The media is being (or has been) stopped: suspend or deletion.
    pub stopping: bool,
    /// The capacity plan's decision (none: no plan yet, run as the audience earns).
    pub decision: Option<crate::plan::Decision>,
    /// The transcode pods and what happened to them (`parts::for_stream`).
    pub parts: crate::parts::StreamParts,
}

/// Waiting reasons that will not fix themselves without a person (or take long enough that
/// the stream should say so).
const FAILING: &[&str] =
    &["ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError", "CrashLoopBackOff"];

/// The new status of `ls` given `obs`; conditions keep their transition times when unchanged.
pub fn derive(ls: &LiveStream, obs: &Observed, now: Time) -> LiveStreamStatus {
    let old = ls.status.clone().unwrap_or_default();
    let generation = ls.metadata.generation;
    let mut st =
        LiveStreamStatus { observed_generation: generation, conditions: old.conditions.clone(), ..old.clone() };
    // A transcode pod that cannot keep up with its only rendition sheds the top of the ladder.
    shed_if_slow(&mut st, obs.parts.shed && !obs.stopping, &now);
    st.transcoders = obs.parts.parts.clone();
    let cap = st.ladder_cap;
    let mut set = |kind, ok, reason: &str, message: String| {
        set_condition(&mut st.conditions, kind, ok, reason, message, generation, now.clone());
    };

    if let Some((field, why)) = &obs.invalid {
        set(ConditionType::SpecValid, false, "InvalidSpec", format!("{field}: {why}"));
        set(ConditionType::Ready, false, "InvalidSpec", format!("{field}: {why}"));
        st.phase = Some(Phase::Failed);
        return finish(st, obs);
    }
    set(ConditionType::SpecValid, true, "Valid", String::new());
    if let Some(why) = &obs.secret_missing {
        set(ConditionType::Ready, false, "SecretNotFound", format!("spec.streamKeySecret: {why}"));
        st.phase = Some(Phase::Failed);
        return finish(st, obs);
    }
    let live_pods: Vec<&PodObs> = obs.pods.iter().filter(|p| !p.terminating).collect();
    let ingest_pods: Vec<&&PodObs> = live_pods.iter().filter(|p| p.is_ingest()).collect();
    // Capacity: queued (nothing runs yet), degraded below what the audience earns, or fine.
    st.queue_position = None;
    match obs.decision.map(|d| (d.wanted, d.admission)) {
        Some((_, Admission::Queued(pos))) if obs.pods.is_empty() && !obs.stopping => {
            let msg = if pos == 0 {
                "waiting for the next capacity plan".to_string()
            } else {
                format!("position {pos} in the transcode queue")
            };
            set(ConditionType::Throttled, true, "WaitingForCapacity", msg);
            set(ConditionType::Ready, false, "WaitingForCapacity", "queued for transcode capacity".into());
            st.phase = Some(Phase::Queued);
            st.queue_position = Some(pos as u32);
            return finish(st, obs);
        }
        Some((wanted, Admission::Run(level))) if level < wanted => set(
            ConditionType::Throttled,
            true,
            "CapacityDegraded",
            format!("running at {level:?}; the audience earns {wanted:?} but the transcode budget is used up"),
        ),
        _ => set(ConditionType::Throttled, false, "WithinCapacity", String::new()),
    }
    if let Some(Admission::Run(level)) = obs.decision.map(|d| d.admission)
        && st.ladder_level != Some(level)
    {
        st.ladder_level = Some(level);
        st.level_since = Some(now.clone());
    }
    if obs.stopping {
        let running = !obs.pods.is_empty();
        st.phase = Some(if running { Phase::Ending } else { Phase::Ended });
        set(ConditionType::Ready, false, "Stopped", "the media is stopped (suspended or deleted)".into());
        set(ConditionType::IngestConnected, false, "Stopped", String::new());
        set(ConditionType::Transcoding, false, "Stopped", String::new());
        set(ConditionType::Degraded, false, "Stopped", String::new());
        if !running && st.ended_at.is_none() {
            st.ended_at = Some(now.clone());
        }
        st.viewers = Some(0);
        st.renditions.clear();
        return finish(st, obs);
    }
    st.ended_at = None;

    let failing = live_pods
        .iter()
        .find(|p| p.waiting_reason.as_deref().is_some_and(|r| FAILING.contains(&r)) && !(p.ready && p.restarts == 0));
    let ready = ingest_pods.iter().any(|p| p.ready);
    let worker = obs.worker.as_ref().filter(|_| ready);
    let publishing = worker.is_some_and(|w| w.publishing);
    let renditions = worker.map(|w| w.renditions.clone()).unwrap_or_default();

    match failing {
        None if cap.is_some() => set(
            ConditionType::Degraded,
            true,
            "SlowEncode",
            format!(
                "the encoder fell behind real time; the ladder is capped at {}",
                cap.map(|c| format!("{c:?}")).unwrap_or_default()
            ),
        ),
        Some(p) => {
            let reason = p.waiting_reason.clone().unwrap_or_default();
            let msg = format!("pod {}: {reason}: {}", p.name, p.waiting_message.clone().unwrap_or_default());
            set(ConditionType::Degraded, true, &reason, msg);
        }
        None => match obs.decision.map(|d| (d.wanted, d.admission)) {
            Some((wanted, Admission::Run(level))) if level < wanted => {
                set(ConditionType::Degraded, true, "CapacityDegraded", format!("{level:?} instead of {wanted:?}"))
            }
            _ => set(ConditionType::Degraded, false, "AsSpecified", String::new()),
        },
    }
    if ready {
        let running = live_pods.iter().filter(|p| p.ready).count();
        set(ConditionType::Ready, true, "PodReady", format!("{running} of {} pods ready", live_pods.len()));
    } else if let Some(p) = failing {
        set(
            ConditionType::Ready,
            false,
            p.waiting_reason.as_deref().unwrap_or("PodFailing"),
            format!("pod {} is not starting", p.name),
        );
    } else {
        set(ConditionType::Ready, false, "PodStarting", "waiting for the ingest pod".into());
    }
    if publishing {
        set(ConditionType::IngestConnected, true, "PublisherConnected", String::new());
    } else {
        set(ConditionType::IngestConnected, false, "NoPublisher", "waiting for the streamer to publish".into());
    }
    if renditions.is_empty() {
        set(ConditionType::Transcoding, false, "NotTranscoding", String::new());
    } else {
        set(ConditionType::Transcoding, true, "Transcoding", renditions.join(","));
    }

    st.phase = Some(match (failing, ready, publishing) {
        (_, true, true) => Phase::Live,
        (_, true, false) => Phase::Ready,
        (Some(_), false, _) => Phase::Failed,
        (None, false, _) => Phase::Starting,
    });
    if publishing && st.started_at.is_none() {
        st.started_at = Some(now);
    }
    st.viewers = match worker {
        Some(w) => w.viewers.or(st.viewers),
        None => Some(0),
    };
    st.renditions = renditions;
    // Kept across a publisher's reconnect, so the transcode pods do not come and go with it.
    st.source_height = worker.and_then(|w| w.source_height).or(st.source_height);
    finish(st, obs)
}

/// How long a shed holds before the ladder may grow again.
pub const SHED_HOLD: i64 = 600;

/// `shed`: a transcode pod could not keep up with its only rendition (see `parts::for_stream`): the
/// cap goes one below what runs. The cap lifts after `SHED_HOLD`.
fn shed_if_slow(st: &mut LiveStreamStatus, shed: bool, now: &Time) {
    let held = st.cap_since.as_ref().map(|t| now.0.as_second() - t.0.as_second());
    if held.is_some_and(|s| s >= SHED_HOLD) {
        st.ladder_cap = None;
        st.cap_since = None;
    }
    let level = st.ladder_level.unwrap_or(onair_crds::LadderLevel::Full);
    if shed && level > onair_crds::LadderLevel::Passthrough && st.ladder_cap.is_none_or(|c| c >= level) {
        st.ladder_cap = Some(match level {
            onair_crds::LadderLevel::Full => onair_crds::LadderLevel::Reduced,
            _ => onair_crds::LadderLevel::Passthrough,
        });
        st.cap_since = Some(now.clone());
    }
}

fn finish(mut st: LiveStreamStatus, obs: &Observed) -> LiveStreamStatus {
    st.pods = obs.pods.iter().map(|p| p.name.clone()).collect();
    st.pods.sort();
    if obs.ingest_url.is_some() {
        st.ingest_url = obs.ingest_url.clone();
    }
    if obs.playback_url.is_some() {
        st.playback_url = obs.playback_url.clone();
    }
    st
}

/// A phase change a person would want in `kubectl describe`: (type, reason, note).
pub fn transition(ls: &LiveStream, new: &LiveStreamStatus) -> Option<(bool, String, String)> {
    let old = ls.status.as_ref().and_then(|s| s.phase);
    let phase = new.phase?;
    if old == Some(phase) {
        return None;
    }
    let why = |kind: ConditionType| {
        onair_crds::conditions::condition(&new.conditions, kind).map(|c| c.message.clone()).unwrap_or_default()
    };
    let note = match phase {
        Phase::Failed => {
            let spec = onair_crds::conditions::condition(&new.conditions, ConditionType::SpecValid);
            if spec.is_some_and(|c| c.status == "False") {
                why(ConditionType::SpecValid)
            } else {
                why(ConditionType::Ready)
            }
        }
        Phase::Live => format!("publisher connected; renditions {}", new.renditions.join(",")),
        Phase::Ready => "ingest pod ready; waiting for the publisher".into(),
        Phase::Starting => "media pods created".into(),
        Phase::Ending => "finishing the playlist".into(),
        Phase::Ended => "media stopped".into(),
        Phase::Queued => format!("waiting for transcode capacity (position {})", new.queue_position.unwrap_or(0)),
        Phase::Pending => String::new(),
    };
    Some((phase == Phase::Failed, phase.as_str().to_string(), format!("{}: {note}", ls.name_any())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    fn ls(status: Option<LiveStreamStatus>) -> LiveStream {
        let mut ls: LiveStream = serde_json::from_value(json!({
            "apiVersion": "onair.dev/v1alpha1", "kind": "LiveStream",
            "metadata": {"name": "alice", "namespace": "streams", "generation": 2},
            "spec": {"streamId": "0195e4a0-0000-7000-8000-000000000001", "userId": "0195e4a0-0000-7000-8000-000000000002",
                     "channel": "alice", "streamKeySecret": {"name": "k"}},
        }))
        .unwrap();
        ls.status = status;
        ls
    }

    fn pod(ready: bool, waiting: Option<&str>, restarts: i32) -> PodObs {
        PodObs {
            name: "alice-media-abc".into(),
            ready,
            restarts,
            waiting_reason: waiting.map(str::to_string),
            waiting_message: waiting.map(|w| format!("{w} details")),
            terminating: false,
            role: Some("ingest".into()),
        }
    }

    fn worker(publishing: bool, renditions: &[&str], viewers: i64) -> Option<WorkerObs> {
        Some(WorkerObs {
            publishing,
            stopped: false,
            renditions: renditions.iter().map(|s| s.to_string()).collect(),
            viewers: Some(viewers),
            ..Default::default()
        })
    }

    fn cond(st: &LiveStreamStatus, kind: ConditionType) -> (String, String) {
        let c = onair_crds::conditions::condition(&st.conditions, kind).unwrap();
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn phases_follow_what_was_observed() {
        let table: Vec<(&str, Observed, Phase, (&str, &str))> = vec![
            ("nothing yet", Observed { ..Default::default() }, Phase::Starting, ("False", "PodStarting")),
            (
                "pod not ready",
                Observed { pods: vec![pod(false, Some("ContainerCreating"), 0)], ..Default::default() },
                Phase::Starting,
                ("False", "PodStarting"),
            ),
            (
                "pod ready, no publisher",
                Observed { pods: vec![pod(true, None, 0)], worker: worker(false, &[], 0), ..Default::default() },
                Phase::Ready,
                ("True", "PodReady"),
            ),
            (
                "publishing",
                Observed {
                    pods: vec![pod(true, None, 0)],
                    worker: worker(true, &["720p", "480p"], 12),
                    ..Default::default()
                },
                Phase::Live,
                ("True", "PodReady"),
            ),
            (
                "image cannot be pulled",
                Observed { pods: vec![pod(false, Some("ImagePullBackOff"), 0)], ..Default::default() },
                Phase::Failed,
                ("False", "ImagePullBackOff"),
            ),
            (
                "crash looping",
                Observed { pods: vec![pod(false, Some("CrashLoopBackOff"), 4)], ..Default::default() },
                Phase::Failed,
                ("False", "CrashLoopBackOff"),
            ),
            (
                "secret missing",
                Observed { secret_missing: Some("Secret k not found".into()), ..Default::default() },
                Phase::Failed,
                ("False", "SecretNotFound"),
            ),
            (
                "invalid spec",
                Observed { invalid: Some(("spec.ladder".into(), "bad".into())), ..Default::default() },
                Phase::Failed,
                ("False", "InvalidSpec"),
            ),
            (
                "stopping with a pod left",
                Observed { pods: vec![pod(true, None, 0)], stopping: true, ..Default::default() },
                Phase::Ending,
                ("False", "Stopped"),
            ),
            ("stopped", Observed { stopping: true, ..Default::default() }, Phase::Ended, ("False", "Stopped")),
        ];
        for (case, obs, phase, ready) in table {
            let st = derive(&ls(None), &obs, at(100));
            assert_eq!(st.phase, Some(phase), "{case}");
            assert_eq!(cond(&st, ConditionType::Ready), (ready.0.to_string(), ready.1.to_string()), "{case}");
            assert_eq!(st.observed_generation, Some(2), "{case}");
        }
    }

    #[test]
    fn live_status_carries_renditions_viewers_and_start_time() {
        let obs = Observed {
            pods: vec![pod(true, None, 0)],
            worker: worker(true, &["720p", "480p"], 12).map(|w| WorkerObs { source_height: Some(720), ..w }),
            ingest_url: Some("rtmp://1.2.3.4:1935/live".into()),
            playback_url: Some("https://x/hls/1/master.m3u8".into()),
            ..Default::default()
        };
        let st = derive(&ls(None), &obs, at(100));
        assert_eq!(st.viewers, Some(12));
        assert_eq!(st.renditions, ["720p", "480p"]);
        assert_eq!(st.pods, ["alice-media-abc"]);
        assert_eq!(st.started_at, Some(at(100)));
        assert_eq!(st.ingest_url.as_deref(), Some("rtmp://1.2.3.4:1935/live"));
        assert_eq!(cond(&st, ConditionType::IngestConnected).0, "True");
        assert_eq!(cond(&st, ConditionType::Transcoding), ("True".into(), "Transcoding".into()));
        assert_eq!(cond(&st, ConditionType::Degraded).0, "False");
        // A later look keeps the start time and the transition times of unchanged conditions.
        let again = derive(&ls(Some(st.clone())), &obs, at(200));
        assert_eq!(again.started_at, Some(at(100)));
        assert_eq!(again.conditions, st.conditions);
        assert_eq!(transition(&ls(Some(st.clone())), &again), None, "no event without a phase change");
        // The publisher leaves: Ready again, with an event.
        let left = Observed { worker: worker(false, &[], 3), ..obs };
        let st2 = derive(&ls(Some(again.clone())), &left, at(300));
        assert_eq!(st2.phase, Some(Phase::Ready));
        assert!(st2.renditions.is_empty());
        assert_eq!((st.source_height, st2.source_height), (Some(720), Some(720)), "kept while the publisher is away");
        let (warning, reason, _) = transition(&ls(Some(again)), &st2).unwrap();
        assert_eq!((warning, reason.as_str()), (false, "Ready"));
    }

    #[test]
    fn a_worker_that_cannot_count_keeps_the_last_count() {
        let counted =
            Observed { pods: vec![pod(true, None, 0)], worker: worker(true, &["720p"], 40), ..Default::default() };
        let st = derive(&ls(None), &counted, at(1));
        assert_eq!(st.viewers, Some(40));
        let mut blind = counted.clone();
        blind.worker.as_mut().unwrap().viewers = None;
        assert_eq!(derive(&ls(Some(st)), &blind, at(2)).viewers, Some(40), "not 0: the ladder must not step down");
    }

    #[test]
    fn a_worker_report_counts_only_once_the_pod_is_ready() {
        let obs =
            Observed { pods: vec![pod(false, None, 0)], worker: worker(true, &["720p"], 5), ..Default::default() };
        let st = derive(&ls(None), &obs, at(1));
        assert_eq!(st.phase, Some(Phase::Starting));
        assert_eq!(st.viewers, Some(0));
    }

    #[test]
    fn failures_raise_a_warning_event_that_says_why() {
        let obs = Observed { secret_missing: Some("Secret k not found".into()), ..Default::default() };
        let st = derive(&ls(None), &obs, at(1));
        let (warning, reason, note) = transition(&ls(None), &st).unwrap();
        assert!(warning);
        assert_eq!(reason, "Failed");
        assert!(note.contains("spec.streamKeySecret: Secret k not found"), "{note}");
        let invalid = Observed { invalid: Some(("metadata.name".into(), "too long".into())), ..Default::default() };
        let st = derive(&ls(None), &invalid, at(1));
        assert!(transition(&ls(None), &st).unwrap().2.contains("metadata.name: too long"));
    }

    #[test]
    fn ended_time_is_set_once_and_cleared_on_resume() {
        let stopped = Observed { stopping: true, ..Default::default() };
        let st = derive(&ls(None), &stopped, at(10));
        assert_eq!(st.ended_at, Some(at(10)));
        let later = derive(&ls(Some(st.clone())), &stopped, at(20));
        assert_eq!(later.ended_at, Some(at(10)));
        let resumed = Observed { ..Default::default() };
        assert_eq!(derive(&ls(Some(later)), &resumed, at(30)).ended_at, None);
    }

    #[test]
    fn pod_observations_come_from_pod_status() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "alice-transcode-0-x", "labels": {"onair.dev/role": "transcode"}},
            "status": {
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "media", "image": "x", "imageID": "", "ready": false, "restartCount": 2,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}}]
            }
        }))
        .unwrap();
        let o = PodObs::from_pod(&p);
        assert_eq!(
            o,
            PodObs {
                name: "alice-transcode-0-x".into(),
                ready: false,
                restarts: 2,
                waiting_reason: Some("CrashLoopBackOff".into()),
                waiting_message: Some("back-off 40s".into()),
                terminating: false,
                role: Some("transcode".into()),
            }
        );
        assert!(!o.is_ingest());
    }
}

#[cfg(test)]
mod capacity_tests {
    use super::*;
    use crate::plan::Decision;
    use crate::scaling::LadderLevel;
    use serde_json::json;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    fn ls() -> LiveStream {
        serde_json::from_value(json!({
            "apiVersion": "onair.dev/v1alpha1", "kind": "LiveStream",
            "metadata": {"name": "q", "namespace": "s", "generation": 1},
            "spec": {"streamId": "0195e4a0-0000-7000-8000-000000000001", "userId": "0195e4a0-0000-7000-8000-000000000002",
                     "channel": "q", "streamKeySecret": {"name": "k"}},
        }))
        .unwrap()
    }

    fn cond(st: &LiveStreamStatus, kind: ConditionType) -> (String, String) {
        let c = onair_crds::conditions::condition(&st.conditions, kind).unwrap();
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn a_queued_stream_says_its_place_and_runs_nothing() {
        let obs = Observed {
            decision: Some(Decision { wanted: LadderLevel::Reduced, admission: Admission::Queued(3) }),
            ..Default::default()
        };
        let st = derive(&ls(), &obs, at(1));
        assert_eq!(st.phase, Some(Phase::Queued));
        assert_eq!(st.queue_position, Some(3));
        assert_eq!(cond(&st, ConditionType::Throttled), ("True".into(), "WaitingForCapacity".into()));
        let (_, reason, note) = transition(&ls(), &st).unwrap();
        assert_eq!(reason, "Queued");
        assert!(note.contains("position 3"), "{note}");
    }

    #[test]
    fn a_degraded_stream_records_its_level_and_why() {
        let obs = Observed {
            pods: vec![PodObs { name: "p".into(), ready: true, ..Default::default() }],
            decision: Some(Decision { wanted: LadderLevel::Full, admission: Admission::Run(LadderLevel::Passthrough) }),
            ..Default::default()
        };
        let st = derive(&ls(), &obs, at(5));
        assert_eq!((st.ladder_level, st.level_since.clone()), (Some(LadderLevel::Passthrough), Some(at(5))));
        assert_eq!(cond(&st, ConditionType::Throttled), ("True".into(), "CapacityDegraded".into()));
        assert_eq!(cond(&st, ConditionType::Degraded), ("True".into(), "CapacityDegraded".into()));
        // The level holds: its time does not move; capacity back: both conditions clear.
        let mut again = ls();
        again.status = Some(st);
        let ok = Observed {
            decision: Some(Decision { wanted: LadderLevel::Full, admission: Admission::Run(LadderLevel::Full) }),
            ..obs
        };
        let st2 = derive(&again, &ok, at(50));
        assert_eq!((st2.ladder_level, st2.level_since.clone()), (Some(LadderLevel::Full), Some(at(50))));
        assert_eq!(cond(&st2, ConditionType::Throttled).0, "False");
        assert_eq!(cond(&st2, ConditionType::Degraded).0, "False");
    }
}

#[cfg(test)]
mod shed_tests {
    use super::*;
    use onair_crds::LadderLevel;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    fn running(level: LadderLevel) -> LiveStreamStatus {
        LiveStreamStatus { ladder_level: Some(level), ..Default::default() }
    }

    #[test]
    fn a_shed_caps_the_ladder_below_what_runs_until_the_hold_passes() {
        let mut st = running(LadderLevel::Full);
        shed_if_slow(&mut st, false, &at(0));
        assert_eq!(st.ladder_cap, None, "nothing to shed");
        shed_if_slow(&mut st, true, &at(10));
        assert_eq!((st.ladder_cap, st.cap_since.clone()), (Some(LadderLevel::Reduced), Some(at(10))));
        st.ladder_level = Some(LadderLevel::Reduced);
        shed_if_slow(&mut st, false, &at(100));
        assert_eq!(st.ladder_cap, Some(LadderLevel::Reduced), "the cap holds");
        shed_if_slow(&mut st, true, &at(200));
        assert_eq!(st.ladder_cap, Some(LadderLevel::Passthrough), "still too slow at reduced: down again");
        shed_if_slow(&mut st, false, &at(200 + SHED_HOLD));
        assert_eq!(st.ladder_cap, None, "after the hold the ladder may grow again");
        let mut bottom = running(LadderLevel::Passthrough);
        shed_if_slow(&mut bottom, true, &at(0));
        assert_eq!(bottom.ladder_cap, None, "nothing below passthrough to shed");
    }
}
