//! Refusals as the real API server words them: `Status` bodies built like k8s.io/apimachinery's
//! `pkg/api/errors` (`NewInvalid`, `NewNotFound`, `NewConflict`, ...) and field errors rendered
//! like `pkg/util/validation/field` (`spec.x: Invalid value: "y": detail`).

use http::{Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

use super::resource::Kind;

/// The value a field error shows, as Go's `ErrorBody` prints it.
#[derive(Debug, Clone)]
pub enum Bad {
    Str(String),
    Int(i64),
    /// Any other value: printed as JSON (maps with sorted keys, as Go's encoder does).
    Json(Value),
}

impl Bad {
    fn render(&self) -> String {
        match self {
            Bad::Str(s) => go_quote(s),
            Bad::Int(i) => i.to_string(),
            Bad::Json(v) => go_json(v),
        }
    }
}

impl From<&str> for Bad {
    fn from(s: &str) -> Self {
        Bad::Str(s.to_string())
    }
}
impl From<String> for Bad {
    fn from(s: String) -> Self {
        Bad::Str(s)
    }
}
impl From<i64> for Bad {
    fn from(i: i64) -> Self {
        Bad::Int(i)
    }
}
impl From<&Value> for Bad {
    fn from(v: &Value) -> Self {
        match v {
            Value::String(s) => Bad::Str(s.clone()),
            Value::Number(n) if n.is_i64() => Bad::Int(n.as_i64().unwrap_or_default()),
            other => Bad::Json(other.clone()),
        }
    }
}

/// One field error (`field.Error`).
#[derive(Debug, Clone)]
pub struct FieldError {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: &'static str,
    pub field: String,
    pub bad: Option<Bad>,
    pub detail: String,
}

impl FieldError {
    pub fn invalid(field: impl Into<String>, bad: impl Into<Bad>, detail: impl Into<String>) -> Self {
        Self { reason: "FieldValueInvalid", field: field.into(), bad: Some(bad.into()), detail: detail.into() }
    }
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { reason: "FieldValueRequired", field: field.into(), bad: None, detail: detail.into() }
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { reason: "FieldValueForbidden", field: field.into(), bad: None, detail: detail.into() }
    }
    pub fn duplicate(field: impl Into<String>, bad: impl Into<Bad>) -> Self {
        Self { reason: "FieldValueDuplicate", field: field.into(), bad: Some(bad.into()), detail: String::new() }
    }
    pub fn not_found(field: impl Into<String>, bad: impl Into<Bad>) -> Self {
        Self { reason: "FieldValueNotFound", field: field.into(), bad: Some(bad.into()), detail: String::new() }
    }
    pub fn not_supported(field: impl Into<String>, bad: impl Into<Bad>, valid: &[&str]) -> Self {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            format!("supported values: {}", valid.iter().map(|v| go_quote(v)).collect::<Vec<_>>().join(", "))
        };
        Self { reason: "FieldValueNotSupported", field: field.into(), bad: Some(bad.into()), detail }
    }
    /// `field.TooLong(path, _, max)`: the value is not shown.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        Self {
            reason: "FieldValueTooLong",
            field: field.into(),
            bad: None,
            detail: format!("may not be more than {max} {unit}"),
        }
    }

    /// The message without the field (`ErrorBody`).
    pub fn body(&self) -> String {
        let kind = match self.reason {
            "FieldValueInvalid" => "Invalid value",
            "FieldValueRequired" => "Required value",
            "FieldValueForbidden" => "Forbidden",
            "FieldValueDuplicate" => "Duplicate value",
            "FieldValueNotFound" => "Not found",
            "FieldValueNotSupported" => "Unsupported value",
            "FieldValueTooLong" => "Too long",
            _ => "Internal error",
        };
        let mut s = match &self.bad {
            Some(b) => format!("{kind}: {}", b.render()),
            None => kind.to_string(),
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// A refusal: the HTTP code and the `Status` body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub body: Value,
}

impl ApiError {
    fn new(code: u16, reason: &str, message: String, details: Value) -> Self {
        let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code});
        if !details.is_null() {
            body["details"] = details;
        }
        Self { code, body }
    }

    /// 422 `Invalid` (`NewInvalid`): the aggregate of `errs`, duplicates dropped.
    pub fn invalid(kind: &Kind, name: &str, errs: &[FieldError]) -> Self {
        let causes: Vec<Value> =
            errs.iter().map(|e| json!({"reason": e.reason, "message": e.body(), "field": e.field})).collect();
        let mut seen = Vec::<String>::new();
        for e in errs {
            let m = e.to_string();
            if !seen.contains(&m) {
                seen.push(m);
            }
        }
        let qualified = kind.qualified_kind();
        let message = match seen.len() {
            0 => format!("{qualified} {} is invalid", go_quote(name)),
            1 => format!("{qualified} {} is invalid: {}", go_quote(name), seen[0]),
            _ => format!("{qualified} {} is invalid: [{}]", go_quote(name), seen.join(", ")),
        };
        let mut details = json!({"name": name, "kind": kind.kind, "causes": causes});
        if !kind.group.is_empty() {
            details["group"] = json!(kind.group);
        }
        Self::new(422, "Invalid", message, details)
    }

    fn resource_details(kind: &Kind, name: &str) -> Value {
        let mut details = json!({"name": name, "kind": kind.plural});
        if !kind.group.is_empty() {
            details["group"] = json!(kind.group);
        }
        details
    }

    /// 404 `NotFound`: `deployments.apps "x" not found`.
    pub fn not_found(kind: &Kind, name: &str) -> Self {
        let message = format!("{} {} not found", kind.qualified_resource(), go_quote(name));
        Self::new(404, "NotFound", message, Self::resource_details(kind, name))
    }

    /// 409 `AlreadyExists`.
    pub fn already_exists(kind: &Kind, name: &str) -> Self {
        let message = format!("{} {} already exists", kind.qualified_resource(), go_quote(name));
        Self::new(409, "AlreadyExists", message, Self::resource_details(kind, name))
    }

    /// 409 `Conflict` (`NewConflict`), e.g. for a stale resourceVersion.
    pub fn conflict(kind: &Kind, name: &str, why: &str) -> Self {
        let message =
            format!("Operation cannot be fulfilled on {} {}: {why}", kind.qualified_resource(), go_quote(name));
        Self::new(409, "Conflict", message, Self::resource_details(kind, name))
    }

    /// 409 `Conflict` from server-side apply (`NewApplyConflict`): `(manager as printed, path)`.
    pub fn apply_conflict(conflicts: &[(String, String)]) -> Self {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(
                |(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": p}),
            )
            .collect();
        let message = if let [(m, p)] = conflicts {
            format!("Apply failed with 1 conflict: conflict with {m}: {p}")
        } else {
            let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
            managers.sort();
            managers.dedup();
            let mut lines = Vec::new();
            for m in managers {
                lines.push(format!("conflicts with {m}:"));
                lines.extend(conflicts.iter().filter(|(n, _)| n == m).map(|(_, p)| format!("- {p}")));
            }
            format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
        };
        Self::new(409, "Conflict", message, json!({"causes": causes}))
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message.into(), Value::Null)
    }

    /// 403 `Forbidden` (`NewForbidden`): `secrets "x" is forbidden: why`.
    pub fn forbidden(kind: &Kind, name: &str, why: &str) -> Self {
        let message = format!("{} {} is forbidden: {why}", kind.qualified_resource(), go_quote(name));
        Self::new(403, "Forbidden", message, Self::resource_details(kind, name))
    }

    /// 405 `MethodNotAllowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            Value::Null,
        )
    }

    pub fn response(&self) -> Response<Body> {
        json_response(self.code, &self.body)
    }
}

pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    let mut res = Response::new(Body::from(serde_json::to_vec(v).unwrap_or_default()));
    *res.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    res
}

/// A bare `Status` failure with `code` (injected faults).
pub fn status(code: u16, message: &str) -> Response<Body> {
    let reason = match code {
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    };
    let v = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": message, "reason": reason, "code": code});
    json_response(code, &v)
}

/// Go's `%q` for the strings these messages show.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `json.Marshal` of a map-shaped value: keys sorted, `<>&` escaped.
pub fn go_json(v: &Value) -> String {
    let s = match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", serde_json::to_string(k).unwrap_or_default(), go_json(&m[k])))
                .collect();
            return format!("{{{}}}", parts.join(","));
        }
        Value::Array(a) => return format!("[{}]", a.iter().map(go_json).collect::<Vec<_>>().join(",")),
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    s.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}
