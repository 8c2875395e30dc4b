//! What a request path names: the resource's kind (from a table of the kinds onair reads and
//! writes), its namespace, the object's name and a subresource.

/// How object names of a kind are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    Dns1123Subdomain,
    Dns1123Label,
    Dns1035Label,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    /// Whether `status` is a subresource (main writes leave it alone, status writes change only it).
    pub status_subresource: bool,
    pub names: NameRule,
    /// A custom resource: generation follows every change outside metadata and status.
    pub custom: bool,
}

impl Kind {
    /// `schema.GroupKind.String()`: `Deployment.apps`, `Service`.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() { self.kind.clone() } else { format!("{}.{}", self.kind, self.group) }
    }

    /// `schema.GroupResource.String()`: `deployments.apps`, `secrets`.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The kind behind `/api/v1/...` or `/apis/{group}/{version}/...` for `plural`.
    pub fn lookup(group: &str, version: &str, plural: &str) -> Kind {
        use NameRule::*;
        let (kind, status, names) = match (group, plural) {
            ("", "namespaces") => ("Namespace", true, Dns1123Label),
            ("", "services") => ("Service", true, Dns1035Label),
            ("", "secrets") => ("Secret", false, Dns1123Subdomain),
            ("", "configmaps") => ("ConfigMap", false, Dns1123Subdomain),
            ("", "pods") => ("Pod", true, Dns1123Subdomain),
            ("", "events") | ("events.k8s.io", "events") => ("Event", false, Dns1123Subdomain),
            ("apps", "deployments") => ("Deployment", true, Dns1123Subdomain),
            ("policy", "poddisruptionbudgets") => ("PodDisruptionBudget", true, Dns1123Subdomain),
            ("networking.k8s.io", "ingresses") => ("Ingress", true, Dns1123Subdomain),
            ("coordination.k8s.io", "leases") => ("Lease", false, Dns1123Subdomain),
            ("onair.dev", "livestreams") => ("LiveStream", true, Dns1123Subdomain),
            _ => ("", false, Dns1123Subdomain),
        };
        let kind = if kind.is_empty() { guess_kind(plural) } else { kind.to_string() };
        Kind {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
            kind,
            namespaced: plural != "namespaces",
            status_subresource: status,
            names,
            custom: group == "onair.dev",
        }
    }
}

fn guess_kind(plural: &str) -> String {
    let singular = plural.strip_suffix('s').unwrap_or(plural);
    let mut c = singular.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// A parsed request path.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    /// `/api/v1/namespaces/ns/secrets/k`, `/apis/apps/v1/namespaces/ns/deployments/d/status`,
    /// `/api/v1/namespaces/ns`, `/apis/onair.dev/v1alpha1/livestreams` (all namespaces).
    pub fn parse(path: &str) -> Option<Target> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segs.as_slice() {
            ["api", v, rest @ ..] => ("", *v, rest),
            ["apis", g, v, rest @ ..] => (*g, *v, rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, plural, rest @ ..] => {
                (Some(ns.to_string()), std::iter::once(*plural).chain(rest.iter().copied()).collect::<Vec<_>>())
            }
            other => (None, other.to_vec()),
        };
        // `/api/v1/namespaces/{ns}` itself (and its status) is the Namespace object.
        if group.is_empty() && namespace.is_some() && rest.len() == 1 && rest[0] == "status" {
            return Some(Target {
                kind: Kind::lookup("", version, "namespaces"),
                name: namespace,
                namespace: None,
                subresource: Some("status".into()),
            });
        }
        let plural = rest.first()?;
        Some(Target {
            kind: Kind::lookup(group, version, plural),
            namespace,
            name: rest.get(1).map(|s| s.to_string()),
            subresource: rest.get(2).map(|s| s.to_string()),
        })
    }

    /// The store key of the object this path names (without subresource).
    pub fn object_path(&self) -> Option<String> {
        let name = self.name.as_ref()?;
        Some(format!("{}/{name}", self.collection_path()))
    }

    /// The collection path in this namespace.
    pub fn collection_path(&self) -> String {
        let base = if self.kind.group.is_empty() {
            format!("/api/{}", self.kind.version)
        } else {
            format!("/apis/{}/{}", self.kind.group, self.kind.version)
        };
        match &self.namespace {
            Some(ns) if self.kind.namespaced => format!("{base}/namespaces/{ns}/{}", self.kind.plural),
            _ => format!("{base}/{}", self.kind.plural),
        }
    }
}
