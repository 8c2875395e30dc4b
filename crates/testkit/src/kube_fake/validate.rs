//! What the real API server refuses in an object, kind by kind, in the words of
//! k8s.io/apimachinery `pkg/api/validation` (object metadata) and k8s.io/kubernetes
//! `pkg/apis/*/validation`. Pod templates are in `pod.rs`, Events in `event.rs`.

use serde_json::{Value, json};

use super::format;
use super::resource::{Kind, NameRule};
use super::status::FieldError;
use super::{event, pod};

pub type Errors = Vec<FieldError>;

pub const FIELD_IMMUTABLE: &str = "field is immutable";
const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

fn str_map(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

/// `ValidateLabels`: keys are qualified names, values label values.
pub fn labels(v: &Value, path: &str) -> Errors {
    let mut errs = Vec::new();
    for (k, val) in str_map(v) {
        errs.extend(format::qualified_name(&k).into_iter().map(|m| FieldError::invalid(path, k.as_str(), m)));
        errs.extend(format::label_value(&val).into_iter().map(|m| FieldError::invalid(path, val.as_str(), m)));
    }
    errs
}

/// `ValidateLabelSelector`.
pub fn label_selector(sel: &Value, path: &str) -> Errors {
    let mut errs = labels(&sel["matchLabels"], &format!("{path}.matchLabels"));
    for (i, expr) in sel["matchExpressions"].as_array().into_iter().flatten().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        let values = expr["values"].as_array().cloned().unwrap_or_default();
        match expr["operator"].as_str().unwrap_or_default() {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                format!("{p}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(
                format!("{p}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => errs.push(FieldError::invalid(format!("{p}.operator"), op, "not a valid selector operator")),
        }
        let key = expr["key"].as_str().unwrap_or_default();
        errs.extend(format::qualified_name(key).into_iter().map(|m| FieldError::invalid(format!("{p}.key"), key, m)));
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or_default();
            errs.extend(
                format::label_value(v).into_iter().map(|m| FieldError::invalid(format!("{p}.values[{j}]"), v, m)),
            );
        }
    }
    errs
}

/// Whether `sel` (a LabelSelector) selects `labels`.
pub fn selector_matches(sel: &Value, labels: &Value) -> bool {
    let has = |k: &str| labels.get(k).and_then(Value::as_str);
    let ml = str_map(&sel["matchLabels"]).into_iter().all(|(k, v)| has(&k) == Some(v.as_str()));
    let me = sel["matchExpressions"].as_array().into_iter().flatten().all(|e| {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        match e["operator"].as_str() {
            Some("In") => has(key).is_some_and(|v| values.contains(&v)),
            Some("NotIn") => !has(key).is_some_and(|v| values.contains(&v)),
            Some("Exists") => has(key).is_some(),
            Some("DoesNotExist") => has(key).is_none(),
            _ => false,
        }
    });
    ml && me
}

fn name_messages(rule: NameRule, name: &str) -> Vec<String> {
    match rule {
        NameRule::Dns1123Subdomain => format::dns1123_subdomain(name),
        NameRule::Dns1123Label => format::dns1123_label(name),
        NameRule::Dns1035Label => format::dns1035_label(name),
    }
}

/// `ValidateObjectMeta` (create) for `kind`.
pub fn object_meta(kind: &Kind, meta: &Value) -> Errors {
    let mut errs = Vec::new();
    let name = meta["name"].as_str().unwrap_or_default();
    if let Some(g) = meta["generateName"].as_str().filter(|g| !g.is_empty()) {
        let masked = format::mask_trailing_dash(g);
        errs.extend(
            name_messages(kind.names, &masked).into_iter().map(|m| FieldError::invalid("metadata.generateName", g, m)),
        );
    }
    if name.is_empty() {
        errs.push(FieldError::required("metadata.name", "name or generateName is required"));
    } else {
        errs.extend(name_messages(kind.names, name).into_iter().map(|m| FieldError::invalid("metadata.name", name, m)));
    }
    errs.extend(meta_common(kind, meta));
    errs
}

fn meta_common(kind: &Kind, meta: &Value) -> Errors {
    let mut errs = Vec::new();
    let ns = meta["namespace"].as_str().unwrap_or_default();
    if kind.namespaced {
        if ns.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            errs.extend(
                format::dns1123_label(ns).into_iter().map(|m| FieldError::invalid("metadata.namespace", ns, m)),
            );
        }
    } else if !ns.is_empty() {
        errs.push(FieldError::forbidden("metadata.namespace", "not allowed on this type"));
    }
    errs.extend(labels(&meta["labels"], "metadata.labels"));
    errs.extend(annotations(&meta["annotations"]));
    errs.extend(owner_references(&meta["ownerReferences"]));
    for f in meta["finalizers"].as_array().into_iter().flatten() {
        let f = f.as_str().unwrap_or_default();
        errs.extend(format::qualified_name(f).into_iter().map(|m| FieldError::invalid("metadata.finalizers", f, m)));
    }
    errs
}

/// `ValidateAnnotations`: keys as qualified names (case-insensitive), 256 KiB in all.
pub fn annotations(v: &Value) -> Errors {
    let mut errs = Vec::new();
    let mut total = 0;
    for (k, val) in str_map(v) {
        errs.extend(
            format::qualified_name(&k.to_lowercase())
                .into_iter()
                .map(|m| FieldError::invalid("metadata.annotations", k.as_str(), m)),
        );
        total += k.len() + val.len();
    }
    if total > TOTAL_ANNOTATION_SIZE {
        errs.push(FieldError::too_long("metadata.annotations", TOTAL_ANNOTATION_SIZE));
    }
    errs
}

fn owner_references(refs: &Value) -> Errors {
    let mut errs = Vec::new();
    let path = "metadata.ownerReferences";
    let mut controller: Option<String> = None;
    for r in refs.as_array().into_iter().flatten() {
        let api_version = r["apiVersion"].as_str().unwrap_or_default();
        let version = api_version.rsplit('/').next().unwrap_or_default();
        if version.is_empty() {
            errs.push(FieldError::invalid(format!("{path}.apiVersion"), api_version, "version must not be empty"));
        }
        for f in ["kind", "name", "uid"] {
            let v = r[f].as_str().unwrap_or_default();
            if v.is_empty() {
                errs.push(FieldError::invalid(format!("{path}.{f}"), v, "must not be empty"));
            }
        }
        if api_version == "v1" && r["kind"] == "Event" {
            errs.push(FieldError::invalid(path, r, "/v1, Kind=Event is disallowed from being an owner"));
        }
        if r["controller"] == json!(true) {
            let this = format!("{}/{}", r["kind"].as_str().unwrap_or_default(), r["name"].as_str().unwrap_or_default());
            match &controller {
                Some(first) => errs.push(FieldError::invalid(
                    path,
                    refs,
                    format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"),
                )),
                None => controller = Some(this),
            }
        }
    }
    errs
}

/// `ValidateObjectMetaUpdate`: what may not change.
pub fn object_meta_update(new: &Value, old: &Value) -> Errors {
    let mut errs = Vec::new();
    for f in ["name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"] {
        if new[f] != old[f] {
            errs.push(FieldError::invalid(format!("metadata.{f}"), &new[f], FIELD_IMMUTABLE));
        }
    }
    if !old["deletionTimestamp"].is_null() {
        let had: Vec<&Value> = old["finalizers"].as_array().into_iter().flatten().collect();
        let mut extra: Vec<&str> = new["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| !had.contains(f))
            .filter_map(Value::as_str)
            .collect();
        extra.sort();
        extra.dedup();
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(|f| format!("{f:?}")).collect();
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            ));
        }
    }
    errs
}

/// Every check for `obj` of `kind`; `old` is the stored object on an update.
pub fn object(kind: &Kind, obj: &Value, old: Option<&Value>) -> Errors {
    let meta = &obj["metadata"];
    // Events check their metadata themselves (core/v1 ones hardly at all).
    match (kind.group.as_str(), kind.kind.as_str()) {
        ("events.k8s.io", "Event") => return event::events_v1(kind, obj),
        ("", "Event") => return event::core_v1(obj),
        _ => {}
    }
    let mut errs = object_meta(kind, meta);
    if let Some(old) = old {
        errs.extend(object_meta_update(meta, &old["metadata"]));
    }
    let spec = &obj["spec"];
    match (kind.group.as_str(), kind.kind.as_str()) {
        ("apps", "Deployment") => errs.extend(deployment(obj, old)),
        ("", "Service") => errs.extend(service(spec)),
        ("", "Secret") => errs.extend(secret(obj, old)),
        ("", "Pod") => errs.extend(pod::pod_spec(spec, "spec")),
        ("policy", "PodDisruptionBudget") => errs.extend(pdb(spec)),
        ("networking.k8s.io", "Ingress") => errs.extend(ingress(spec)),
        ("coordination.k8s.io", "Lease") => errs.extend(lease(spec)),
        _ => {}
    }
    errs
}

fn deployment(obj: &Value, old: Option<&Value>) -> Errors {
    let spec = &obj["spec"];
    let mut errs = Vec::new();
    if let Some(r) = spec["replicas"].as_i64().filter(|r| *r < 0) {
        errs.push(FieldError::invalid("spec.replicas", r, "must be greater than or equal to 0"));
    }
    let sel = &spec["selector"];
    if sel.is_null() {
        errs.push(FieldError::required("spec.selector", ""));
    } else {
        errs.extend(label_selector(sel, "spec.selector"));
        let n = sel["matchLabels"].as_object().map_or(0, |m| m.len())
            + sel["matchExpressions"].as_array().map_or(0, |a| a.len());
        if n == 0 {
            errs.push(FieldError::invalid("spec.selector", sel, "empty selector is invalid for deployment"));
        }
    }
    let template = &spec["template"];
    let tlabels = &template["metadata"]["labels"];
    if !sel.is_null() && !selector_matches(sel, tlabels) {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            &json!(tlabels.as_object().cloned().unwrap_or_default()),
            "`selector` does not match template `labels`",
        ));
    }
    errs.extend(labels(tlabels, "spec.template.metadata.labels"));
    errs.extend(pod::pod_spec(&template["spec"], "spec.template.spec"));
    if let Some(policy) = template["spec"]["restartPolicy"].as_str().filter(|p| *p != "Always") {
        errs.push(FieldError::not_supported("spec.template.spec.restartPolicy", policy, &["Always"]));
    }
    if let Some(old) = old
        && old["spec"]["selector"] != *sel
    {
        errs.push(FieldError::invalid("spec.selector", sel, FIELD_IMMUTABLE));
    }
    errs
}

fn service(spec: &Value) -> Errors {
    let mut errs = Vec::new();
    let type_ = spec["type"].as_str().unwrap_or("ClusterIP");
    const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !TYPES.contains(&type_) {
        errs.push(FieldError::not_supported("spec.type", type_, &TYPES));
    }
    let headless = spec["clusterIP"] == "None";
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    if ports.is_empty() && !headless && type_ != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let mut names: Vec<String> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let name = p["name"].as_str().unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), ""));
        } else if !name.is_empty() {
            errs.extend(
                format::dns1123_label(name).into_iter().map(|m| FieldError::invalid(format!("{path}.name"), name, m)),
            );
            if names.iter().any(|n| n == name) {
                errs.push(FieldError::duplicate(format!("{path}.name"), name));
            } else {
                names.push(name.to_string());
            }
        }
        let port = p["port"].as_i64().unwrap_or_default();
        errs.extend(format::port_num(port).into_iter().map(|m| FieldError::invalid(format!("{path}.port"), port, m)));
        if let Some(proto) = p["protocol"].as_str()
            && !["SCTP", "TCP", "UDP"].contains(&proto)
        {
            errs.push(FieldError::not_supported(format!("{path}.protocol"), proto, &["SCTP", "TCP", "UDP"]));
        }
        errs.extend(port_num_or_name(&p["targetPort"], &format!("{path}.targetPort")));
    }
    errs.extend(labels(&spec["selector"], "spec.selector"));
    errs
}

/// `ValidatePortNumOrName` for an IntOrString (absent: defaulted, fine).
pub fn port_num_or_name(v: &Value, path: &str) -> Errors {
    match v {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or_default();
            format::port_num(n).into_iter().map(|m| FieldError::invalid(path, n, m)).collect()
        }
        Value::String(s) => {
            format::port_name(s).into_iter().map(|m| FieldError::invalid(path, s.as_str(), m)).collect()
        }
        _ => Vec::new(),
    }
}

fn secret(obj: &Value, old: Option<&Value>) -> Errors {
    let mut errs = Vec::new();
    let mut total = 0;
    for field in ["data", "stringData"] {
        for (k, v) in obj[field].as_object().into_iter().flatten() {
            errs.extend(
                format::config_map_key(k).into_iter().map(|m| FieldError::invalid(format!("data[{k}]"), k.as_str(), m)),
            );
            total += v.as_str().map_or(0, str::len);
        }
    }
    if total > 1024 * 1024 {
        errs.push(FieldError::too_long("data", 1024 * 1024));
    }
    if let Some(old) = old {
        let t = |o: &Value| o["type"].as_str().unwrap_or("Opaque").to_string();
        if t(obj) != t(old) {
            errs.push(FieldError::invalid("type", t(obj), FIELD_IMMUTABLE));
        }
    }
    errs
}

fn int_or_percent(v: &Value, path: &str) -> Errors {
    match v {
        Value::Number(n) if n.as_i64().unwrap_or_default() < 0 => {
            vec![FieldError::invalid(path, n.as_i64().unwrap_or_default(), "must be greater than or equal to 0")]
        }
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            None => vec![FieldError::invalid(
                path,
                s.as_str(),
                format::regex_error(
                    "a valid percent string must be a numeric string followed by an ending '%'",
                    "[0-9]+%",
                    &["1%", "93%"],
                ),
            )],
            Some(p) if p > 100 => vec![FieldError::invalid(path, s.as_str(), "must not be greater than 100%")],
            Some(_) => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn pdb(spec: &Value) -> Errors {
    let mut errs = Vec::new();
    if !spec["minAvailable"].is_null() && !spec["maxUnavailable"].is_null() {
        errs.push(FieldError::invalid(
            "spec.minAvailable",
            &spec["minAvailable"],
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    errs.extend(int_or_percent(&spec["minAvailable"], "spec.minAvailable"));
    errs.extend(int_or_percent(&spec["maxUnavailable"], "spec.maxUnavailable"));
    if !spec["selector"].is_null() {
        errs.extend(label_selector(&spec["selector"], "spec.selector"));
    }
    errs
}

fn ingress(spec: &Value) -> Errors {
    let mut errs = Vec::new();
    if let Some(class) = spec["ingressClassName"].as_str() {
        errs.extend(
            format::dns1123_subdomain(class)
                .into_iter()
                .map(|m| FieldError::invalid("spec.ingressClassName", class, m)),
        );
    }
    if !spec["defaultBackend"].is_null() {
        errs.extend(ingress_backend(&spec["defaultBackend"], "spec.defaultBackend"));
    } else if spec["rules"].as_array().is_none_or(|r| r.is_empty()) {
        errs.push(FieldError::invalid(
            "spec.rules",
            &json!([]),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    for (i, rule) in spec["rules"].as_array().into_iter().flatten().enumerate() {
        let rp = format!("spec.rules[{i}]");
        if let Some(host) = rule["host"].as_str().filter(|h| !h.is_empty()) {
            let msgs = if host.contains('*') {
                format::wildcard_dns1123_subdomain(host)
            } else {
                format::dns1123_subdomain(host)
            };
            errs.extend(msgs.into_iter().map(|m| FieldError::invalid(format!("{rp}.host"), host, m)));
        }
        let Some(paths) = rule["http"]["paths"].as_array() else { continue };
        if paths.is_empty() {
            errs.push(FieldError::required(format!("{rp}.http.paths"), ""));
        }
        for (j, p) in paths.iter().enumerate() {
            let pp = format!("{rp}.http.paths[{j}]");
            let path = p["path"].as_str().unwrap_or_default();
            match p["pathType"].as_str() {
                None => {
                    errs.push(FieldError::required(format!("{pp}.pathType"), "pathType must be specified"));
                    continue;
                }
                Some("Exact" | "Prefix") => {
                    if !path.starts_with('/') {
                        errs.push(FieldError::invalid(format!("{pp}.path"), path, "must be an absolute path"));
                    }
                    for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                        if path.contains(seq) {
                            errs.push(FieldError::invalid(
                                format!("{pp}.path"),
                                path,
                                format!("must not contain '{seq}'"),
                            ));
                        }
                    }
                    for suffix in ["/..", "/."] {
                        if path.ends_with(suffix) {
                            errs.push(FieldError::invalid(
                                format!("{pp}.path"),
                                path,
                                format!("cannot end with '{suffix}'"),
                            ));
                        }
                    }
                }
                Some("ImplementationSpecific") => {
                    if !path.is_empty() && !path.starts_with('/') {
                        errs.push(FieldError::invalid(format!("{pp}.path"), path, "must be an absolute path"));
                    }
                }
                Some(other) => errs.push(FieldError::not_supported(
                    format!("{pp}.pathType"),
                    other,
                    &["Exact", "ImplementationSpecific", "Prefix"],
                )),
            }
            errs.extend(ingress_backend(&p["backend"], &format!("{pp}.backend")));
        }
    }
    errs
}

fn ingress_backend(b: &Value, path: &str) -> Errors {
    let mut errs = Vec::new();
    let svc = &b["service"];
    match (svc.is_null(), b["resource"].is_null()) {
        (false, false) => errs.push(FieldError::invalid(path, "", "cannot set both resource and service backends")),
        (true, true) => errs.push(FieldError::invalid(path, "", "resource or service backend is required")),
        (true, false) => {}
        (false, true) => {
            let name = svc["name"].as_str().unwrap_or_default();
            if name.is_empty() {
                errs.push(FieldError::required(format!("{path}.service.name"), ""));
            } else {
                errs.extend(
                    format::dns1035_label(name)
                        .into_iter()
                        .map(|m| FieldError::invalid(format!("{path}.service.name"), name, m)),
                );
            }
            let pname = svc["port"]["name"].as_str().unwrap_or_default();
            let pnum = svc["port"]["number"].as_i64().unwrap_or_default();
            match (pname.is_empty(), pnum == 0) {
                (false, false) => errs.push(FieldError::invalid(path, "", "cannot set both port name & port number")),
                (false, true) => errs.extend(
                    format::port_name(pname)
                        .into_iter()
                        .map(|m| FieldError::invalid(format!("{path}.service.port.name"), pname, m)),
                ),
                (true, false) => errs.extend(
                    format::port_num(pnum)
                        .into_iter()
                        .map(|m| FieldError::invalid(format!("{path}.service.port.number"), pnum, m)),
                ),
                (true, true) => errs.push(FieldError::required(path, "port name or number is required")),
            }
        }
    }
    errs
}

fn lease(spec: &Value) -> Errors {
    let mut errs = Vec::new();
    if let Some(d) = spec["leaseDurationSeconds"].as_i64().filter(|d| *d <= 0) {
        errs.push(FieldError::invalid("spec.leaseDurationSeconds", d, "must be greater than 0"));
    }
    if let Some(t) = spec["leaseTransitions"].as_i64().filter(|t| *t < 0) {
        errs.push(FieldError::invalid("spec.leaseTransitions", t, "must be greater than or equal to 0"));
    }
    errs
}
