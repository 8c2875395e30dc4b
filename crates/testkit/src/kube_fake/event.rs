//! Events, after k8s.io/kubernetes `pkg/apis/core/validation/events.go`: the legacy checks every
//! Event passes, and the strict ones for events.k8s.io/v1. Field paths are the internal type's
//! (`message` for `note`, `involvedObject` for `regarding`), as the real server reports them.

use serde_json::Value;

use super::format;
use super::resource::Kind;
use super::status::FieldError;
use super::validate::{Errors, object_meta};

const REPORTING_INSTANCE_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REASON_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

/// The internal Event's fields, read from either API version.
struct Internal<'a> {
    namespace: &'a str,
    involved_namespace: &'a str,
    event_time_set: bool,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
    action: &'a str,
    reason: &'a str,
    message: &'a str,
}

fn s<'a>(v: &'a Value, f: &str) -> &'a str {
    v[f].as_str().unwrap_or_default()
}

fn set(v: &Value) -> bool {
    !v.is_null() && v.as_str() != Some("")
}

fn legacy(ev: &Internal<'_>) -> Errors {
    let mut errs = Vec::new();
    let mismatch =
        || FieldError::invalid("involvedObject.namespace", ev.involved_namespace, "does not match event.namespace");
    if !ev.event_time_set {
        if ev.involved_namespace.is_empty() {
            if !ev.namespace.is_empty() && ev.namespace != "default" {
                errs.push(mismatch());
            }
        } else if ev.namespace != ev.involved_namespace {
            errs.push(mismatch());
        }
    } else {
        if ev.involved_namespace.is_empty() && ev.namespace != "default" && ev.namespace != "kube-system" {
            errs.push(mismatch());
        }
        if ev.reporting_controller.is_empty() {
            errs.push(FieldError::required("reportingController", ""));
        }
        errs.extend(
            format::qualified_name(ev.reporting_controller)
                .into_iter()
                .map(|m| FieldError::invalid("reportingController", ev.reporting_controller, m)),
        );
        let limited = |errs: &mut Errors, field: &str, v: &str, limit: usize, required: bool| {
            if required && v.is_empty() {
                errs.push(FieldError::required(field, ""));
            }
            if v.len() > limit {
                errs.push(FieldError::invalid(field, "", format!("can have at most {limit} characters")));
            }
        };
        limited(&mut errs, "reportingInstance", ev.reporting_instance, REPORTING_INSTANCE_LIMIT, true);
        limited(&mut errs, "action", ev.action, ACTION_LIMIT, true);
        limited(&mut errs, "reason", ev.reason, REASON_LIMIT, true);
        limited(&mut errs, "message", ev.message, NOTE_LIMIT, false);
    }
    errs.extend(
        format::dns1123_subdomain(ev.namespace).into_iter().map(|m| FieldError::invalid("namespace", ev.namespace, m)),
    );
    errs
}

/// A core/v1 Event: the legacy checks only.
pub fn core_v1(obj: &Value) -> Errors {
    legacy(&Internal {
        namespace: s(&obj["metadata"], "namespace"),
        involved_namespace: s(&obj["involvedObject"], "namespace"),
        event_time_set: set(&obj["eventTime"]),
        reporting_controller: s(obj, "reportingComponent"),
        reporting_instance: s(obj, "reportingInstance"),
        action: s(obj, "action"),
        reason: s(obj, "reason"),
        message: s(obj, "message"),
    })
}

/// An events.k8s.io/v1 Event: legacy, object metadata, then the strict checks.
pub fn events_v1(kind: &Kind, obj: &Value) -> Errors {
    let mut errs = legacy(&Internal {
        namespace: s(&obj["metadata"], "namespace"),
        involved_namespace: s(&obj["regarding"], "namespace"),
        event_time_set: set(&obj["eventTime"]),
        reporting_controller: s(obj, "reportingController"),
        reporting_instance: s(obj, "reportingInstance"),
        action: s(obj, "action"),
        reason: s(obj, "reason"),
        message: s(obj, "note"),
    });
    errs.extend(object_meta(kind, &obj["metadata"]));
    let series = &obj["series"];
    if !series.is_null() {
        if series["count"].as_i64().unwrap_or_default() < 2 {
            errs.push(FieldError::invalid("series.count", "", "should be at least 2"));
        }
        if !set(&series["lastObservedTime"]) {
            errs.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
    if !set(&obj["eventTime"]) {
        errs.push(FieldError::required("eventTime", ""));
    }
    let type_ = s(obj, "type");
    if type_ != "Normal" && type_ != "Warning" {
        errs.push(FieldError::invalid("type", "", format!("has invalid value: {type_}")));
    }
    for (field, internal) in
        [("deprecatedFirstTimestamp", "firstTimestamp"), ("deprecatedLastTimestamp", "lastTimestamp")]
    {
        if set(&obj[field]) {
            errs.push(FieldError::invalid(internal, "", "needs to be unset"));
        }
    }
    if obj["deprecatedCount"].as_i64().unwrap_or_default() != 0 {
        errs.push(FieldError::invalid("count", "", "needs to be unset"));
    }
    if set(&obj["deprecatedSource"]["component"]) || set(&obj["deprecatedSource"]["host"]) {
        errs.push(FieldError::invalid("source", "", "needs to be unset"));
    }
    errs
}
