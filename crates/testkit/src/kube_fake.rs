//! An in-memory Kubernetes API server behind a tower service: kube's `Client` talks to it as
//! to a real one. It stores what is applied, answers lists and gets, records every request,
//! and injects faults (a status code, or no answer at all) on matching requests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use kube::client::Body;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

#[derive(Clone)]
pub enum Fault {
    Status(u16),
    Hang,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    requests: Vec<Recorded>,
    faults: Vec<(Method, String, Fault)>,
    record: bool,
}

#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

impl Default for FakeApi {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeApi {
    pub fn new() -> Self {
        Self { state: Arc::new(Mutex::new(State { record: true, ..Default::default() })) }
    }

    /// Do not keep requests (benchmarks).
    pub fn without_recording(self) -> Self {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).record = false;
        self
    }

    pub fn client(&self) -> kube::Client {
        let fake = self.clone();
        let svc = tower::service_fn(move |req: Request<Body>| {
            let fake = fake.clone();
            async move { Ok::<_, std::convert::Infallible>(fake.handle(req).await) }
        });
        kube::Client::new(svc, "default")
    }

    /// Store an object at its API path (e.g. `/api/v1/namespaces/ns/secrets/k`).
    pub fn put(&self, path: &str, obj: Value) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).objects.insert(path.to_string(), obj);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).objects.get(path).cloned()
    }

    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).objects.remove(path);
    }

    /// Answer requests with `method` whose path contains `path` with `fault`.
    pub fn fault(&self, method: Method, path: &str, fault: Fault) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).faults.push((method, path.to_string(), fault));
    }

    pub fn clear_faults(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).faults.clear();
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).requests.clone()
    }

    pub fn take_requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()).requests)
    }

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let fault = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.record {
                st.requests.push(Recorded {
                    method: method.clone(),
                    path: path.clone(),
                    query: query.clone(),
                    body: body.clone(),
                });
            }
            st.faults.iter().find(|(m, p, _)| *m == method && path.contains(p.as_str())).map(|(_, _, f)| f.clone())
        };
        match fault {
            Some(Fault::Hang) => std::future::pending().await,
            Some(Fault::Status(code)) => return status(code, "injected fault"),
            None => {}
        }
        self.route(method, &path, &query, body)
    }

    fn route(&self, method: Method, path: &str, query: &str, body: Value) -> Response<Body> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let is_status = path.ends_with("/status");
        let obj_path = path.trim_end_matches("/status").to_string();
        match method {
            Method::GET if query.contains("labelSelector") || !last_is_name(path) => {
                let selector = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("labelSelector="))
                    .map(urldecode)
                    .unwrap_or_default();
                let prefix = format!("{path}/");
                let items: Vec<Value> = st
                    .objects
                    .range(prefix.clone()..)
                    .take_while(|(p, _)| p.starts_with(&prefix))
                    .filter(|(p, _)| !p[prefix.len()..].contains('/'))
                    .map(|(_, o)| o.clone())
                    .filter(|o| matches(o, &selector))
                    .collect();
                ok(json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}))
            }
            Method::GET => match st.objects.get(&obj_path) {
                Some(o) => ok(o.clone()),
                None => status(404, "not found"),
            },
            Method::PATCH if query.contains("fieldManager") => {
                // Server-side apply: keep what was there, replace what the intent names.
                let mut obj = st.objects.get(&obj_path).cloned().unwrap_or_else(|| json!({}));
                if is_status {
                    obj["status"] = body["status"].clone();
                } else {
                    let keep_meta = obj.get("metadata").cloned();
                    let status = obj.get("status").cloned();
                    obj = body.clone();
                    if let Some(Value::Object(m)) = keep_meta {
                        for (k, v) in m {
                            if obj["metadata"].get(&k).is_none() {
                                obj["metadata"][k] = v;
                            }
                        }
                    }
                    if let Some(s) = status {
                        obj["status"] = s;
                    }
                }
                st.objects.insert(obj_path, obj.clone());
                ok(obj)
            }
            Method::PATCH => {
                // JSON patch (the finalizer helper): apply add/remove on /metadata/finalizers.
                let Some(mut obj) = st.objects.get(&obj_path).cloned() else { return status(404, "not found") };
                for op in body.as_array().cloned().unwrap_or_default() {
                    let p = op["path"].as_str().unwrap_or_default();
                    match op["op"].as_str() {
                        Some("add") if p == "/metadata/finalizers" => {
                            obj["metadata"]["finalizers"] = op["value"].clone()
                        }
                        Some("add") if p == "/metadata/finalizers/-" => {
                            let mut f = obj["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
                            f.push(op["value"].clone());
                            obj["metadata"]["finalizers"] = Value::Array(f);
                        }
                        Some("remove") => {
                            let index = p.strip_prefix("/metadata/finalizers/").and_then(|i| i.parse::<usize>().ok());
                            if let (Some(i), Some(f)) = (index, obj["metadata"]["finalizers"].as_array_mut())
                                && i < f.len()
                            {
                                f.remove(i);
                            }
                        }
                        _ => {}
                    }
                }
                st.objects.insert(obj_path, obj.clone());
                ok(obj)
            }
            Method::POST => {
                let mut obj = body.clone();
                let name = obj["metadata"]["name"].as_str().map(str::to_string).unwrap_or_else(|| {
                    format!("{}.{}", obj["metadata"]["generateName"].as_str().unwrap_or("ev"), st.requests.len())
                });
                obj["metadata"]["name"] = json!(name);
                st.objects.insert(format!("{path}/{name}"), obj.clone());
                let mut res = ok(obj);
                *res.status_mut() = StatusCode::CREATED;
                res
            }
            Method::DELETE => match st.objects.remove(&obj_path) {
                Some(o) => ok(o),
                None => status(404, "not found"),
            },
            _ => status(405, "method not allowed"),
        }
    }
}

/// Whether the path's last segment names an object (`.../secrets/k`) rather than a collection.
fn last_is_name(path: &str) -> bool {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/namespaces/{ns}/{plural}/{name} or /apis/{g}/{v}/namespaces/{ns}/{plural}/{name}
    match segs.first() {
        Some(&"api") => segs.len() >= 6,
        Some(&"apis") => segs.len() >= 7,
        _ => false,
    }
}

fn urldecode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn matches(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        obj["metadata"]["labels"][k].as_str() == Some(v)
    })
}

fn ok(v: Value) -> Response<Body> {
    json_response(200, &v)
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    let mut res = Response::new(Body::from(serde_json::to_vec(v).unwrap_or_default()));
    *res.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    res
}

pub fn status(code: u16, message: &str) -> Response<Body> {
    let reason = match code {
        404 => "NotFound",
        409 => "Conflict",
        _ => "InternalError",
    };
    let v = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": message, "reason": reason, "code": code});
    json_response(code, &v)
}
