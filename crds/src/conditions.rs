//! `status.conditions`: `metav1.Condition`s merged by type, as Kubernetes tools expect.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The condition types the operator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionType {
    /// The media pod is up and can take the publisher (or is live).
    Ready,
    /// A publisher is connected.
    IngestConnected,
    /// Renditions are being produced.
    Transcoding,
    /// Running, but not as asked (fewer renditions, crash-looping, slow encode).
    Degraded,
    /// Held back by capacity.
    Throttled,
    /// The spec cannot be run; the message names the field.
    SpecValid,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::IngestConnected => "IngestConnected",
            Self::Transcoding => "Transcoding",
            Self::Degraded => "Degraded",
            Self::Throttled => "Throttled",
            Self::SpecValid => "SpecValid",
        }
    }
}

/// Set `kind` in `conditions`: replaces the entry of that type, and keeps its
/// `lastTransitionTime` unless the status value changed (so the time says when it last flipped,
/// not when the operator last looked). Returns whether the status value changed.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    kind: ConditionType,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Time,
) -> bool {
    let status = if status { "True" } else { "False" }.to_string();
    let new = Condition {
        type_: kind.as_str().to_string(),
        status,
        reason: reason.to_string(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: now,
    };
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            let flipped = old.status != new.status;
            let time = if flipped { new.last_transition_time.clone() } else { old.last_transition_time.clone() };
            *old = Condition { last_transition_time: time, ..new };
            flipped
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// The condition of `kind`, if set.
pub fn condition(conditions: &[Condition], kind: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == kind.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn merges_by_type_and_keeps_transition_time_until_it_flips() {
        let mut c = Vec::new();
        assert!(set_condition(&mut c, ConditionType::Ready, false, "PodStarting", "waiting", Some(1), at(10)));
        assert!(!set_condition(&mut c, ConditionType::Ready, false, "PodStarting", "still", Some(2), at(20)));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, at(10), "same status keeps its time");
        assert_eq!(c[0].message, "still");
        assert_eq!(c[0].observed_generation, Some(2));
        assert!(set_condition(&mut c, ConditionType::Ready, true, "PodReady", "ok", Some(2), at(30)));
        assert_eq!(c[0].last_transition_time, at(30));
        set_condition(&mut c, ConditionType::Degraded, false, "AsSpecified", "", Some(2), at(30));
        assert_eq!(c.len(), 2);
        assert_eq!(condition(&c, ConditionType::Ready).map(|c| c.status.as_str()), Some("True"));
    }
}
