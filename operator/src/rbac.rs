//! The API permissions the operator's code needs, stated once. The chart's Roles must grant
//! exactly these (`tests/packaging.rs`), and every request the operator makes in the
//! platform-team walkthrough must be covered by them while each is used (`tests/walkthrough.rs`),
//! so a grant the code stops needing, or a call the chart does not allow, fails a test.

/// One RBAC rule: `verbs` on `group`/`resource`, limited to `names` when not empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub names: &'static [&'static str],
}

const fn grant(group: &'static str, resource: &'static str, verbs: &'static [&'static str]) -> Grant {
    Grant { group, resource, verbs, names: &[] }
}

/// The kinds the controllers watch (list + watch): LiveStreams, the Deployments they own and
/// the media pods (`run_controller`). The walkthrough calls reconcile directly, so these are
/// the grants it cannot observe.
pub const WATCHED: &[(&str, &str)] = &[("onair.dev", "livestreams"), ("apps", "deployments"), ("", "pods")];

/// In each stream namespace (a Role there; the ClusterRole when watching every namespace).
pub const STREAM_NAMESPACE: &[Grant] = &[
    // Watched; the finalizer is added and removed with a JSON patch.
    grant("onair.dev", "livestreams", &["list", "watch", "patch"]),
    grant("onair.dev", "livestreams/status", &["patch"]),
    // Objects it owns carry blockOwnerDeletion: clusters enforcing owner references
    // (OwnerReferencesPermissionEnforcement) demand update on the owner's finalizers.
    grant("onair.dev", "livestreams/finalizers", &["update"]),
    // Server-side apply creates (create) and updates (patch); unassigned transcoders go.
    grant("apps", "deployments", &["list", "watch", "create", "patch", "delete"]),
    grant("", "services", &["create", "patch"]),
    grant("policy", "poddisruptionbudgets", &["create", "patch", "delete"]),
    grant("networking.k8s.io", "ingresses", &["create", "patch"]),
    grant("", "pods", &["list", "watch"]),
    // The stream key Secret is read by name (any name a LiveStream gives); the media Secret is
    // created, and only it is ever changed.
    grant("", "secrets", &["get", "create"]),
    Grant { group: "", resource: "secrets", verbs: &["patch"], names: &["onair-media"] },
    grant("events.k8s.io", "events", &["create", "patch"]),
];

/// Cluster-wide: only listing LiveStreams, to report those in namespaces nobody watches.
pub const CLUSTER: &[Grant] = &[grant("onair.dev", "livestreams", &["list"])];

/// In the operator's own namespace: its leader-election Lease (created, then read and renewed
/// by name).
pub const LEASE: &[Grant] = &[
    grant("coordination.k8s.io", "leases", &["create"]),
    Grant { group: "coordination.k8s.io", resource: "leases", verbs: &["get", "patch"], names: &["{lease}"] },
];

/// Whether `grants` allow `verb` on `group`/`resource` named `name`.
pub fn allows(grants: &[Grant], group: &str, resource: &str, verb: &str, name: Option<&str>) -> bool {
    grants.iter().any(|g| {
        g.group == group
            && g.resource == resource
            && g.verbs.contains(&verb)
            && (g.names.is_empty() || name.is_some_and(|n| g.names.contains(&n)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_limit_a_grant() {
        assert!(allows(STREAM_NAMESPACE, "", "secrets", "patch", Some("onair-media")));
        assert!(!allows(STREAM_NAMESPACE, "", "secrets", "patch", Some("alice-key")), "key Secrets are never changed");
        assert!(allows(STREAM_NAMESPACE, "", "secrets", "get", Some("alice-key")));
        assert!(!allows(STREAM_NAMESPACE, "", "secrets", "list", None));
        assert!(!allows(CLUSTER, "", "secrets", "get", Some("x")), "nothing cluster-wide but listing LiveStreams");
    }

    #[test]
    fn the_media_secret_grant_names_the_default_media_secret() {
        let config = crate::OperatorConfig::from_args(["--internal-token", "t"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(allows(STREAM_NAMESPACE, "", "secrets", "patch", Some(&config.media_secret)));
    }
}
