//! Field ownership for server-side apply, approximated: each field manager owns the set of leaf
//! paths it last wrote (objects are walked, lists and scalars are leaves; the real server uses
//! `managedFields` and keyed lists). An apply that changes a field another manager owns is a
//! conflict unless forced; an apply drops the fields its manager applied before and omits now.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

pub type Path = Vec<String>;

/// One manager's fields in one scope (the object, or its `status` subresource).
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub paths: BTreeSet<Path>,
    /// `Some(apiVersion, time)` for an update (non-apply) manager, as the conflict message names it.
    pub update: Option<(String, String)>,
}

/// Key: (manager, scope, is_apply).
pub type Managed = BTreeMap<(String, String, bool), Entry>;

/// `.spec.replicas`, as the conflict message prints a path.
pub fn render(p: &Path) -> String {
    p.iter().map(|s| format!(".{s}")).collect()
}

/// Fields the server owns or that name the object: never managed.
fn unmanaged(p: &Path) -> bool {
    match p.as_slice() {
        [a] => a == "apiVersion" || a == "kind",
        [m, f, ..] if m == "metadata" => matches!(
            f.as_str(),
            "name"
                | "namespace"
                | "uid"
                | "resourceVersion"
                | "generation"
                | "creationTimestamp"
                | "deletionTimestamp"
                | "deletionGracePeriodSeconds"
                | "managedFields"
                | "selfLink"
                | "generateName"
        ),
        _ => false,
    }
}

/// Leaf paths of `v` under `scope` (`status` for the status subresource, else everything else).
pub fn leaves(v: &Value, status_scope: bool, status_subresource: bool) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out.retain(|p| {
        let in_status = p.first().is_some_and(|s| s == "status");
        !unmanaged(p) && if status_scope { in_status } else { !(status_subresource && in_status) }
    });
    out
}

fn walk(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                prefix.push(k.clone());
                walk(c, prefix, out);
                prefix.pop();
            }
        }
        _ if prefix.is_empty() => {}
        _ => {
            out.insert(prefix.clone());
        }
    }
}

pub fn get<'a>(v: &'a Value, p: &Path) -> Option<&'a Value> {
    p.iter().try_fold(v, |cur, k| cur.get(k))
}

/// Remove `p`, and the objects it leaves empty.
pub fn remove(v: &mut Value, p: &[String]) {
    let Some((first, rest)) = p.split_first() else { return };
    let Some(m) = v.as_object_mut() else { return };
    if rest.is_empty() {
        m.remove(first);
        return;
    }
    if let Some(child) = m.get_mut(first) {
        remove(child, rest);
        if child.as_object().is_some_and(Map::is_empty) {
            m.remove(first);
        }
    }
}

/// Objects merge key by key; anything else replaces.
pub fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => drop(a.insert(k.clone(), v.clone())),
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

fn related(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// A manager's name as the conflict message shows it.
pub fn describe(manager: &str, scope: &str, entry: &Entry) -> String {
    let mut s = format!("{manager:?}");
    if !scope.is_empty() {
        s = format!("{s} with subresource {scope:?}");
    }
    if let Some((api_version, time)) = &entry.update {
        s = format!("{s} using {api_version} at {time}");
    }
    s
}

/// Apply `body` as `manager` onto `current` (None: the object is new). Returns the merged
/// object, or the conflicts as (manager description, path).
pub fn apply(
    current: Option<&Value>,
    body: &Value,
    manager: &str,
    scope: &str,
    status_subresource: bool,
    force: bool,
    managed: &mut Managed,
) -> Result<Value, Vec<(String, String)>> {
    let status_scope = scope == "status";
    let new = leaves(body, status_scope, status_subresource);
    let empty = Value::Object(Map::new());
    let cur = current.unwrap_or(&empty);
    let me = (manager.to_string(), scope.to_string(), true);

    let mut conflicts = Vec::new();
    let mut taken: Vec<((String, String, bool), Path)> = Vec::new();
    for (key, entry) in managed.iter() {
        if key.1 != scope || *key == me {
            continue;
        }
        for owned in &entry.paths {
            if new.iter().any(|l| related(l, owned)) && get(cur, owned) != get(body, owned) {
                let (m, s, _) = key;
                conflicts.push((describe(m, s, entry), render(owned)));
                taken.push((key.clone(), owned.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        // The message names the manager alone; causes keep the path.
        return Err(conflicts);
    }
    for (key, p) in taken {
        if let Some(e) = managed.get_mut(&key) {
            e.paths.remove(&p);
        }
    }

    let mut obj = cur.clone();
    let before = managed.get(&me).map(|e| e.paths.clone()).unwrap_or_default();
    for gone in before.difference(&new) {
        let owned_elsewhere =
            managed.iter().any(|(k, e)| *k != me && k.1 == scope && e.paths.iter().any(|p| related(p, gone)));
        if !owned_elsewhere {
            remove(&mut obj, gone);
        }
    }
    let mut intent = body.clone();
    if let Some(m) = intent.as_object_mut() {
        if status_scope {
            m.retain(|k, _| k == "status" || k == "apiVersion" || k == "kind");
        } else if status_subresource {
            m.remove("status");
        }
    }
    merge(&mut obj, &intent);
    managed.retain(|_, e| !e.paths.is_empty());
    managed.insert(me, Entry { paths: new, update: None });
    Ok(obj)
}

/// A write that is not an apply: its manager takes the leaves it changed from everyone else.
#[allow(clippy::too_many_arguments)]
pub fn record_update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    scope: &str,
    status_subresource: bool,
    api_version: &str,
    time: &str,
    managed: &mut Managed,
) {
    let status_scope = scope == "status";
    let empty = Value::Object(Map::new());
    let old = old.unwrap_or(&empty);
    let before = leaves(old, status_scope, status_subresource);
    let after = leaves(new, status_scope, status_subresource);
    let changed: BTreeSet<Path> = after.iter().filter(|p| get(old, p) != get(new, p)).cloned().collect();
    let removed: BTreeSet<Path> = before.difference(&after).cloned().collect();
    for (k, e) in managed.iter_mut() {
        if k.1 == scope {
            e.paths.retain(|p| !changed.iter().chain(&removed).any(|c| related(c, p)));
        }
    }
    if !changed.is_empty() {
        let entry = managed.entry((manager.to_string(), scope.to_string(), false)).or_default();
        entry.paths.extend(changed);
        entry.update = Some((api_version.to_string(), time.to_string()));
    }
    managed.retain(|_, e| !e.paths.is_empty());
}
