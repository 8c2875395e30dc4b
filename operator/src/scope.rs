//! Which namespaces this operator serves, and the LiveStreams outside them.
//!
//! A kube `Controller` watches one namespace or all of them, and a Role grants one namespace,
//! so a list of stream namespaces is a list of controllers sharing one context and one plan.
//! A LiveStream applied in a namespace nobody watches would do nothing, silently: at start-up
//! the operator lists LiveStreams cluster-wide (the chart grants `list` on them, nothing else
//! cluster-wide) and says which namespaces hold streams it will never run.

use std::collections::BTreeMap;

use kube::api::ListParams;
use kube::{Api, Client, ResourceExt as _};
use onair_crds::LiveStream;

/// One controller's scope: a namespace, or every namespace (`None`).
pub fn scopes(watched: Option<Vec<String>>) -> Vec<Option<String>> {
    match watched {
        Some(list) => list.into_iter().map(Some).collect(),
        None => vec![None],
    }
}

/// LiveStreams per namespace that `watched` (`None`: all) does not cover.
pub fn unwatched<'a>(
    namespaces: impl IntoIterator<Item = &'a str>,
    watched: Option<&[String]>,
) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let Some(watched) = watched else { return out };
    for ns in namespaces {
        if !watched.iter().any(|w| w == ns) {
            *out.entry(ns.to_string()).or_default() += 1;
        }
    }
    out
}

/// Log (once, at start-up) the LiveStreams this operator will not run, and set the gauge. A
/// cluster that does not grant the cluster-wide list gets one line saying the check is off.
pub async fn report_unwatched(client: Client, watched: Option<&[String]>, gauge: &crate::metrics::Metrics) {
    let Some(list) = watched else { return };
    let all: Api<LiveStream> = Api::all(client);
    let listed = match all.list_metadata(&ListParams::default()).await {
        Ok(l) => l,
        Err(e) => {
            tracing::info!(error = %e, "cannot list LiveStreams cluster-wide; streams outside the watched namespaces go unreported");
            return;
        }
    };
    let namespaces: Vec<String> = listed.items.iter().filter_map(|m| m.namespace()).collect();
    let missed = unwatched(namespaces.iter().map(String::as_str), Some(list));
    for (namespace, count) in &missed {
        tracing::warn!(
            %namespace,
            livestreams = count,
            watched = %list.join(","),
            "LiveStreams in a namespace this operator does not watch will not run: add it to the chart's streams.namespaces"
        );
    }
    gauge.unwatched(&missed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_one_scope_each_and_none_is_everything() {
        assert_eq!(scopes(Some(vec!["a".into(), "b".into()])), vec![Some("a".into()), Some("b".into())]);
        assert_eq!(scopes(None), vec![None]);
    }

    #[test]
    fn streams_outside_the_watched_namespaces_are_counted_per_namespace() {
        let watched = vec!["onair-streams".to_string()];
        let seen = ["onair-streams", "default", "team-a", "default"];
        let missed = unwatched(seen, Some(&watched));
        assert_eq!(missed, BTreeMap::from([("default".to_string(), 2), ("team-a".to_string(), 1)]));
        assert!(unwatched(seen, None).is_empty(), "watching everything misses nothing");
    }
}
