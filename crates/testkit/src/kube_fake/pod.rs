//! Pod specs (in Pods and in workload templates), after k8s.io/kubernetes
//! `pkg/apis/core/validation`: containers, their ports, env, resources and volume mounts, and
//! the pod's volumes.

use serde_json::Value;

use super::format;
use super::quantity;
use super::status::FieldError;
use super::validate::{Errors, port_num_or_name};

/// The pod spec at `path` (`spec.template.spec`).
pub fn pod_spec(spec: &Value, path: &str) -> Errors {
    let mut errs = Vec::new();
    let mut volumes: Vec<String> = Vec::new();
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let vp = format!("{path}.volumes[{i}].name");
        let name = v["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            errs.push(FieldError::required(vp, ""));
            continue;
        }
        errs.extend(format::dns1123_label(name).into_iter().map(|m| FieldError::invalid(&vp, name, m)));
        if volumes.iter().any(|n| n == name) {
            errs.push(FieldError::duplicate(vp, name));
        } else {
            volumes.push(name.to_string());
        }
    }
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let mut names: Vec<String> = Vec::new();
    for (field, list) in
        [("initContainers", spec["initContainers"].as_array().cloned().unwrap_or_default()), ("containers", containers)]
    {
        for (i, c) in list.iter().enumerate() {
            let cp = format!("{path}.{field}[{i}]");
            let name = c["name"].as_str().unwrap_or_default();
            if name.is_empty() {
                errs.push(FieldError::required(format!("{cp}.name"), ""));
            } else {
                errs.extend(
                    format::dns1123_label(name).into_iter().map(|m| FieldError::invalid(format!("{cp}.name"), name, m)),
                );
                if names.iter().any(|n| n == name) {
                    errs.push(FieldError::duplicate(format!("{cp}.name"), name));
                } else {
                    names.push(name.to_string());
                }
            }
            errs.extend(container(c, &cp, &volumes));
        }
    }
    errs
}

fn container(c: &Value, cp: &str, volumes: &[String]) -> Errors {
    let mut errs = Vec::new();
    let mut port_names: Vec<String> = Vec::new();
    for (j, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
        let pp = format!("{cp}.ports[{j}]");
        if let Some(name) = p["name"].as_str().filter(|n| !n.is_empty()) {
            errs.extend(
                format::port_name(name).into_iter().map(|m| FieldError::invalid(format!("{pp}.name"), name, m)),
            );
            if port_names.iter().any(|n| n == name) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), name));
            } else {
                port_names.push(name.to_string());
            }
        }
        match p["containerPort"].as_i64().unwrap_or_default() {
            0 => errs.push(FieldError::required(format!("{pp}.containerPort"), "")),
            n => errs.extend(
                format::port_num(n).into_iter().map(|m| FieldError::invalid(format!("{pp}.containerPort"), n, m)),
            ),
        }
    }
    for (j, e) in c["env"].as_array().into_iter().flatten().enumerate() {
        let ep = format!("{cp}.env[{j}]");
        let name = e["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            errs.push(FieldError::required(format!("{ep}.name"), ""));
        } else {
            errs.extend(
                format::env_var_name(name).into_iter().map(|m| FieldError::invalid(format!("{ep}.name"), name, m)),
            );
        }
        let sk = &e["valueFrom"]["secretKeyRef"];
        if !sk.is_null() {
            let sp = format!("{ep}.valueFrom.secretKeyRef");
            if sk["name"].as_str().unwrap_or_default().is_empty() {
                errs.push(FieldError::required(format!("{sp}.name"), ""));
            }
            let key = sk["key"].as_str().unwrap_or_default();
            if key.is_empty() {
                errs.push(FieldError::required(format!("{sp}.key"), ""));
            } else {
                errs.extend(
                    format::config_map_key(key).into_iter().map(|m| FieldError::invalid(format!("{sp}.key"), key, m)),
                );
            }
        }
    }
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        let port = &c[probe]["httpGet"]["port"];
        errs.extend(port_num_or_name(port, &format!("{cp}.{probe}.httpGet.port")));
    }
    errs.extend(resources(&c["resources"], &format!("{cp}.resources")));
    for (j, m) in c["volumeMounts"].as_array().into_iter().flatten().enumerate() {
        let mp = format!("{cp}.volumeMounts[{j}]");
        let name = m["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            errs.push(FieldError::required(format!("{mp}.name"), ""));
        } else if !volumes.iter().any(|v| v == name) {
            errs.push(FieldError::not_found(format!("{mp}.name"), name));
        }
        if m["mountPath"].as_str().unwrap_or_default().is_empty() {
            errs.push(FieldError::required(format!("{mp}.mountPath"), ""));
        }
    }
    errs
}

/// `ValidateResourceRequirements`: no negative amounts, requests within limits.
fn resources(r: &Value, path: &str) -> Errors {
    let mut errs = Vec::new();
    for field in ["limits", "requests"] {
        for (name, q) in r[field].as_object().into_iter().flatten() {
            let s = quantity_text(q);
            if quantity::parse(&s).is_ok_and(|v| v < 0.0) {
                errs.push(FieldError::invalid(
                    format!("{path}.{field}[{name}]"),
                    s.as_str(),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    for (name, req) in r["requests"].as_object().into_iter().flatten() {
        let Some(limit) = r["limits"].get(name) else { continue };
        let (req, limit) = (quantity_text(req), quantity_text(limit));
        if let (Ok(a), Ok(b)) = (quantity::parse(&req), quantity::parse(&limit))
            && a > b
        {
            errs.push(FieldError::invalid(
                format!("{path}.requests[{name}]"),
                req.as_str(),
                format!("must be less than or equal to {name} limit of {limit}"),
            ));
        }
    }
    errs
}

fn quantity_text(q: &Value) -> String {
    match q {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The first quantity in `pod` (a pod spec) that does not parse: decoding the object fails.
pub fn bad_quantity(spec: &Value) -> Option<&'static str> {
    let containers =
        ["containers", "initContainers"].into_iter().flat_map(|f| spec[f].as_array().into_iter().flatten());
    for c in containers {
        for field in ["limits", "requests"] {
            for q in c["resources"][field].as_object().into_iter().flat_map(|m| m.values()) {
                if let Err(e) = quantity::parse(&quantity_text(q)) {
                    return Some(e);
                }
            }
        }
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        if let Some(q) = v["emptyDir"].get("sizeLimit")
            && let Err(e) = quantity::parse(&quantity_text(q))
        {
            return Some(e);
        }
    }
    None
}
