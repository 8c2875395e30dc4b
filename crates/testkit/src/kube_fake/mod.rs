//! An in-memory Kubernetes API server behind a tower service: kube's `Client` talks to it as
//! to a real one. It stores objects, answers lists and gets, records every request, and injects
//! faults (a status code, or no answer at all) on matching requests.
//!
//! Writes are refused as a real kube-apiserver refuses them, with the same codes, reasons and
//! messages: object validation (`validate`, `pod`, `event`), namespaces that must exist,
//! resourceVersion preconditions, server-side apply conflicts between field managers (`apply`),
//! finalizers holding a deleted object, and (opt-in) the OwnerReferencesPermissionEnforcement
//! admission plugin. `put` seeds objects without any of that.

mod apply;
mod event;
mod format;
mod patch;
mod pod;
mod quantity;
mod resource;
mod status;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response};
use http_body_util::BodyExt as _;
use kube::client::Body;
use serde_json::{Value, json};

use resource::{Kind, Target};
pub use status::status;
use status::{ApiError, json_response};

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
    /// Field ownership per object path.
    managed: BTreeMap<String, apply::Managed>,
    requests: Vec<Recorded>,
    faults: Vec<(Method, String, Fault)>,
    record: bool,
    /// The last resourceVersion handed out.
    revision: u64,
    /// `Some`: blockOwnerDeletion needs a grant of (field manager, `resource/finalizers`).
    finalizer_grants: Option<BTreeSet<(String, String)>>,
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

/// One request as the router sees it.
struct Req {
    method: Method,
    path: String,
    query: String,
    content_type: String,
    /// Who writes when no `fieldManager` is given: the User-Agent up to its first '/'.
    agent: String,
    body: Value,
}

impl Req {
    fn param(&self, key: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')).map(urldecode)
    }

    fn manager(&self) -> String {
        self.param("fieldManager").unwrap_or_else(|| self.agent.clone())
    }
}

impl FakeApi {
    /// An empty cluster with the `default` namespace.
    pub fn new() -> Self {
        let api = Self { state: Arc::new(Mutex::new(State { record: true, ..Default::default() })) };
        api.namespace("default");
        api
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Do not keep requests (benchmarks).
    pub fn without_recording(self) -> Self {
        self.lock().record = false;
        self
    }

    /// Create the namespace `name` (writes into a namespace that does not exist are refused).
    pub fn namespace(&self, name: &str) -> &Self {
        let mut st = self.lock();
        let path = format!("/api/v1/namespaces/{name}");
        if !st.objects.contains_key(&path) {
            let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
                                 "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
            st.stamp_new(&mut obj);
            st.objects.insert(path, obj);
        }
        self
    }

    /// Enforce what the OwnerReferencesPermissionEnforcement admission plugin does: setting
    /// `blockOwnerDeletion: true` on an owner reference needs `update` on the owner's
    /// `<resource>/finalizers` (see `grant_finalizers`); refused with 403 otherwise.
    pub fn enforce_owner_references(self) -> Self {
        self.lock().finalizer_grants.get_or_insert_with(BTreeSet::new);
        self
    }

    /// Let writes with `?fieldManager=field_manager` set blockOwnerDeletion on owners of
    /// `resource` (`livestreams.onair.dev`, or a core resource such as `secrets`).
    pub fn grant_finalizers(&self, field_manager: &str, resource: &str) {
        self.lock()
            .finalizer_grants
            .get_or_insert_with(BTreeSet::new)
            .insert((field_manager.to_string(), resource.to_string()));
    }

    pub fn client(&self) -> kube::Client {
        let fake = self.clone();
        let svc = tower::service_fn(move |req: Request<Body>| {
            let fake = fake.clone();
            async move { Ok::<_, std::convert::Infallible>(fake.handle(req).await) }
        });
        kube::Client::new(svc, "default")
    }

    /// Store an object at its API path (e.g. `/api/v1/namespaces/ns/secrets/k`) as a test's
    /// seed: no validation, no namespace check; missing server fields are filled in.
    pub fn put(&self, path: &str, mut obj: Value) {
        let mut st = self.lock();
        st.revision += 1;
        let rv = st.revision.to_string();
        if obj["metadata"].is_object() {
            let meta = &mut obj["metadata"];
            meta["resourceVersion"] = json!(rv);
            if meta["uid"].is_null() {
                meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
            }
            if meta["creationTimestamp"].is_null() {
                meta["creationTimestamp"] = json!(now_rfc3339());
            }
            if meta["generation"].is_null() {
                meta["generation"] = json!(1);
            }
        }
        st.objects.insert(path.to_string(), obj);
    }

    pub fn get(&self, path: &str) -> Option<Value> {
        self.lock().objects.get(path).cloned()
    }

    pub fn remove(&self, path: &str) {
        let mut st = self.lock();
        st.objects.remove(path);
        st.managed.remove(path);
    }

    /// Answer requests with `method` whose path contains `path` with `fault`.
    pub fn fault(&self, method: Method, path: &str, fault: Fault) {
        self.lock().faults.push((method, path.to_string(), fault));
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    pub fn take_requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.lock().requests)
    }

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let (content_type, agent) = header_values(req.headers());
        let agent = agent.split('/').next().unwrap_or_default().to_string();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let fault = {
            let mut st = self.lock();
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
        let agent = if agent.is_empty() { "unknown".to_string() } else { agent };
        let req = Req { method, path, query, content_type, agent, body };
        match self.lock().route(&req) {
            Ok(res) => res,
            Err(e) => e.response(),
        }
    }
}

fn header_values(h: &http::HeaderMap) -> (String, String) {
    let get = |name| h.get(name).and_then(|v: &http::HeaderValue| v.to_str().ok()).unwrap_or_default().to_string();
    (get(http::header::CONTENT_TYPE), get(http::header::USER_AGENT))
}

type Result<T, E = ApiError> = std::result::Result<T, E>;

fn ok(code: u16, v: &Value) -> Result<Response<Body>> {
    Ok(json_response(code, v))
}

impl State {
    fn route(&mut self, req: &Req) -> Result<Response<Body>> {
        let Some(t) = Target::parse(&req.path) else {
            return Err(ApiError::bad_request(format!(
                "the server could not find the requested resource ({})",
                req.path
            )));
        };
        match (&req.method, &t.name) {
            (&Method::GET, None) => ok(200, &self.list(&t, req)),
            (&Method::GET, Some(name)) => match self.objects.get(&self.key(&t)) {
                Some(o) => ok(200, o),
                None => Err(ApiError::not_found(&t.kind, name)),
            },
            (&Method::POST, None) => self.create(&t, req),
            (&Method::PUT, Some(_)) => self.replace(&t, req),
            (&Method::PATCH, Some(_)) => self.patch(&t, req),
            (&Method::DELETE, Some(_)) => self.delete(&t),
            _ => Err(ApiError::method_not_allowed()),
        }
    }

    fn key(&self, t: &Target) -> String {
        t.object_path().unwrap_or_default()
    }

    fn list(&self, t: &Target, req: &Req) -> Value {
        let selector = req.param("labelSelector").unwrap_or_default();
        let keep = |o: &&Value| matches(o, &selector);
        let items: Vec<Value> = if t.namespace.is_some() || !t.kind.namespaced {
            let prefix = format!("{}/", t.collection_path());
            self.objects
                .range(prefix.clone()..)
                .take_while(|(p, _)| p.starts_with(&prefix))
                .filter(|(p, _)| !p[prefix.len()..].contains('/'))
                .map(|(_, o)| o)
                .filter(keep)
                .cloned()
                .collect()
        } else {
            // Every namespace: `/apis/g/v/namespaces/*/plural/name`.
            let base = t.collection_path().trim_end_matches(&format!("/{}", t.kind.plural)).to_string();
            let start = format!("{base}/namespaces/");
            self.objects
                .range(start.clone()..)
                .take_while(|(p, _)| p.starts_with(&start))
                .filter(|(p, _)| {
                    let rest: Vec<&str> = p[start.len()..].split('/').collect();
                    rest.len() == 3 && rest[1] == t.kind.plural
                })
                .map(|(_, o)| o)
                .filter(keep)
                .cloned()
                .collect()
        };
        json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": self.revision.to_string()}, "items": items})
    }

    /// Namespaced writes need their namespace (the NamespaceLifecycle admission plugin).
    fn namespace_exists(&self, t: &Target) -> Result<()> {
        match &t.namespace {
            Some(ns) if t.kind.namespaced => {
                if self.objects.contains_key(&format!("/api/v1/namespaces/{ns}")) {
                    Ok(())
                } else {
                    Err(ApiError::not_found(&Kind::lookup("", "v1", "namespaces"), ns))
                }
            }
            _ => Ok(()),
        }
    }

    /// The body's namespace must be the request's (or absent).
    fn check_identity(&self, t: &Target, body: &Value) -> Result<()> {
        if let (Some(ns), Some(body_ns)) = (&t.namespace, body["metadata"]["namespace"].as_str())
            && t.kind.namespaced
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if let (Some(url), Some(name)) = (&t.name, body["metadata"]["name"].as_str())
            && !name.is_empty()
            && name != url
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({url})"
            )));
        }
        Ok(())
    }

    /// A new object's server-set metadata.
    fn stamp_new(&mut self, obj: &mut Value) {
        self.revision += 1;
        let meta = &mut obj["metadata"];
        meta["resourceVersion"] = json!(self.revision.to_string());
        meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        meta["creationTimestamp"] = json!(now_rfc3339());
        meta["generation"] = json!(1);
        if let Some(m) = meta.as_object_mut() {
            m.remove("deletionTimestamp");
            m.remove("managedFields");
        }
    }

    /// Decoding refuses what is not the kind's type (malformed quantities): 400.
    fn decode(&self, kind: &Kind, obj: &Value) -> Result<()> {
        let spec = match kind.kind.as_str() {
            "Pod" => &obj["spec"],
            _ => &obj["spec"]["template"]["spec"],
        };
        match pod::bad_quantity(spec) {
            Some(e) => Err(ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: {e}",
                kind.kind, kind.version, kind.kind
            ))),
            None => Ok(()),
        }
    }

    fn create(&mut self, t: &Target, req: &Req) -> Result<Response<Body>> {
        self.namespace_exists(t)?;
        self.check_identity(t, &req.body)?;
        let mut obj = req.body.clone();
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body of the request was in an unknown format"));
        }
        if let (Some(ns), true) = (&t.namespace, t.kind.namespaced) {
            obj["metadata"]["namespace"] = json!(ns);
        }
        if obj["metadata"]["name"].as_str().unwrap_or_default().is_empty()
            && let Some(g) = obj["metadata"]["generateName"].as_str().filter(|g| !g.is_empty())
        {
            obj["metadata"]["name"] = json!(format!("{g}{}", random_suffix(self.revision)));
        }
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let target = Target { name: Some(name.clone()), ..t.clone() };
        let key = self.key(&target);
        self.decode(&t.kind, &obj)?;
        if t.kind.status_subresource
            && t.kind.kind != "Namespace"
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        self.admit(&target, &mut obj, None, req)?;
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&t.kind, &name));
        }
        self.stamp_new(&mut obj);
        let mut managed = apply::Managed::new();
        apply::record_update(
            None,
            &obj,
            &req.manager(),
            "",
            t.kind.status_subresource,
            &t.kind.api_version(),
            &now_rfc3339(),
            &mut managed,
        );
        self.managed.insert(key.clone(), managed);
        self.objects.insert(key, obj.clone());
        ok(201, &obj)
    }

    /// Validation and admission of `obj` (normalised first), as a create (`old` None) or update.
    fn admit(&self, t: &Target, obj: &mut Value, old: Option<&Value>, req: &Req) -> Result<()> {
        if t.kind.kind == "Secret" && t.kind.group.is_empty() {
            string_data_into_data(obj);
        }
        let errs = validate::object(&t.kind, obj, old);
        if !errs.is_empty() {
            let name = obj["metadata"]["name"].as_str().or(t.name.as_deref()).unwrap_or_default().to_string();
            return Err(ApiError::invalid(&t.kind, &name, &errs));
        }
        self.owner_references(t, obj, old, req)
    }

    fn owner_references(&self, t: &Target, obj: &Value, old: Option<&Value>, req: &Req) -> Result<()> {
        let Some(grants) = &self.finalizer_grants else { return Ok(()) };
        let blocking = |o: &Value| -> Vec<Value> {
            o["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["blockOwnerDeletion"] == json!(true))
                .cloned()
                .collect()
        };
        let before = old.map(blocking).unwrap_or_default();
        let manager = req.manager();
        for r in blocking(obj) {
            if before.iter().any(|b| b["uid"] == r["uid"]) {
                continue;
            }
            let api_version = r["apiVersion"].as_str().unwrap_or_default();
            let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or_default();
            let plural = plural_of(r["kind"].as_str().unwrap_or_default());
            let resource = if group.is_empty() { plural.clone() } else { format!("{plural}.{group}") };
            let granted = grants.contains(&(manager.clone(), resource))
                || (group.is_empty() && grants.contains(&(manager.clone(), plural)));
            if !granted {
                let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                return Err(ApiError::forbidden(
                    &t.kind,
                    name,
                    "cannot set blockOwnerDeletion if an ownerReference refers to a resource you can't set finalizers on: , <nil>",
                ));
            }
        }
        Ok(())
    }

    fn replace(&mut self, t: &Target, req: &Req) -> Result<Response<Body>> {
        self.namespace_exists(t)?;
        self.check_identity(t, &req.body)?;
        let key = self.key(t);
        let name = t.name.clone().unwrap_or_default();
        let Some(old) = self.objects.get(&key).cloned() else { return Err(ApiError::not_found(&t.kind, &name)) };
        self.precondition(t, &req.body, &old)?;
        let mut new = req.body.clone();
        if let (Some(ns), true) = (&t.namespace, t.kind.namespaced) {
            new["metadata"]["namespace"] = json!(ns);
        }
        self.update(t, req, old, new)
    }

    /// A write carrying a resourceVersion other than the stored one lost a race: 409.
    fn precondition(&self, t: &Target, body: &Value, old: &Value) -> Result<()> {
        match body["metadata"]["resourceVersion"].as_str() {
            Some(rv) if !rv.is_empty() && Some(rv) != old["metadata"]["resourceVersion"].as_str() => {
                Err(ApiError::conflict(
                    &t.kind,
                    t.name.as_deref().unwrap_or_default(),
                    "the object has been modified; please apply your changes to the latest version and try again",
                ))
            }
            _ => Ok(()),
        }
    }

    fn patch(&mut self, t: &Target, req: &Req) -> Result<Response<Body>> {
        self.namespace_exists(t)?;
        let key = self.key(t);
        let name = t.name.clone().unwrap_or_default();
        let old = self.objects.get(&key).cloned();
        let status_scope = t.subresource.as_deref() == Some("status");
        if req.content_type.starts_with("application/apply-patch") {
            let Some(manager) = req.param("fieldManager").filter(|m| !m.is_empty()) else {
                return Err(ApiError::invalid(
                    &Kind { kind: "PatchOptions".into(), group: "meta.k8s.io".into(), ..t.kind.clone() },
                    "",
                    &[status::FieldError::required("fieldManager", "is required for apply patch")],
                ));
            };
            self.check_identity(t, &req.body)?;
            if old.is_none() && status_scope {
                return Err(ApiError::not_found(&t.kind, &name));
            }
            if let Some(old) = &old {
                self.precondition(t, &req.body, old)?;
            }
            let force = req.param("force").as_deref() == Some("true");
            let scope = if status_scope { "status" } else { "" };
            let mut managed = self.managed.get(&key).cloned().unwrap_or_default();
            let mut new =
                apply::apply(old.as_ref(), &req.body, &manager, scope, t.kind.status_subresource, force, &mut managed)
                    .map_err(|c| ApiError::apply_conflict(&c))?;
            if let (Some(ns), true) = (&t.namespace, t.kind.namespaced) {
                new["metadata"]["namespace"] = json!(ns);
            }
            new["metadata"]["name"] = json!(name);
            return match old {
                None => {
                    self.decode(&t.kind, &new)?;
                    self.admit(t, &mut new, None, req)?;
                    self.stamp_new(&mut new);
                    self.managed.insert(key.clone(), managed);
                    self.objects.insert(key, new.clone());
                    ok(201, &new)
                }
                Some(old) => self.commit(t, req, old, new, Some(managed)),
            };
        }
        let Some(old) = old else { return Err(ApiError::not_found(&t.kind, &name)) };
        let mut new = old.clone();
        if req.content_type.starts_with("application/json-patch") {
            patch::json_patch(&mut new, &req.body).map_err(|e| {
                let mut err = ApiError::invalid(&t.kind, &name, &[]);
                err.body["message"] =
                    json!(format!("the server rejected our request due to an error in our request: {e}"));
                err
            })?;
        } else {
            patch::merge_patch(&mut new, &req.body);
        }
        self.precondition(t, &new, &old)?;
        self.update(t, req, old, new)
    }

    /// A non-apply update: ownership of what changed goes to the writer.
    fn update(&mut self, t: &Target, req: &Req, old: Value, new: Value) -> Result<Response<Body>> {
        self.commit(t, req, old, new, None)
    }

    /// Finish an update of the stored `old` to `new`: subresource rules, server fields,
    /// validation, admission, finalizers.
    fn commit(
        &mut self,
        t: &Target,
        req: &Req,
        old: Value,
        mut new: Value,
        applied: Option<apply::Managed>,
    ) -> Result<Response<Body>> {
        let key = self.key(t);
        let status_scope = t.subresource.as_deref() == Some("status");
        if t.kind.status_subresource {
            if status_scope {
                let status = new["status"].clone();
                new = old.clone();
                new["status"] = status;
            } else if let Some(m) = new.as_object_mut() {
                match old.get("status") {
                    Some(s) => drop(m.insert("status".into(), s.clone())),
                    None => drop(m.remove("status")),
                }
            }
        }
        // Server-owned metadata stays the server's.
        for f in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
            match old["metadata"].get(f) {
                Some(v) => new["metadata"][f] = v.clone(),
                None => drop(new["metadata"].as_object_mut().map(|m| m.remove(f))),
            }
        }
        self.decode(&t.kind, &new)?;
        self.admit(t, &mut new, Some(&old), req)?;
        let changed_outside = |a: &Value, b: &Value| {
            if t.kind.custom {
                let strip = |v: &Value| {
                    let mut v = v.clone();
                    if let Some(m) = v.as_object_mut() {
                        m.remove("metadata");
                        m.remove("status");
                    }
                    v
                };
                strip(a) != strip(b)
            } else {
                a.get("spec") != b.get("spec")
            }
        };
        if changed_outside(&old, &new) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(g + 1);
        }
        let mut managed = match applied {
            Some(m) => m,
            None => {
                let mut m = self.managed.get(&key).cloned().unwrap_or_default();
                let scope = if status_scope { "status" } else { "" };
                apply::record_update(
                    Some(&old),
                    &new,
                    &req.manager(),
                    scope,
                    t.kind.status_subresource,
                    &t.kind.api_version(),
                    &now_rfc3339(),
                    &mut m,
                );
                m
            }
        };
        managed.retain(|_, e| !e.paths.is_empty());
        if new == old {
            // A no-op write keeps the resourceVersion.
            self.managed.insert(key, managed);
            return ok(200, &new);
        }
        self.revision += 1;
        new["metadata"]["resourceVersion"] = json!(self.revision.to_string());
        let finalizers_left = new["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if !new["metadata"]["deletionTimestamp"].is_null() && !finalizers_left {
            // The last finalizer went: the deletion completes.
            self.objects.remove(&key);
            self.managed.remove(&key);
            return ok(200, &new);
        }
        self.managed.insert(key.clone(), managed);
        self.objects.insert(key, new.clone());
        ok(200, &new)
    }

    fn delete(&mut self, t: &Target) -> Result<Response<Body>> {
        let key = self.key(t);
        let name = t.name.clone().unwrap_or_default();
        let Some(mut obj) = self.objects.get(&key).cloned() else { return Err(ApiError::not_found(&t.kind, &name)) };
        let finalizers = obj["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if finalizers {
            // Held by its finalizers: marked, and gone when the last one is removed.
            if obj["metadata"]["deletionTimestamp"].is_null() {
                self.revision += 1;
                obj["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                obj["metadata"]["resourceVersion"] = json!(self.revision.to_string());
                self.objects.insert(key, obj.clone());
            }
            return ok(200, &obj);
        }
        self.objects.remove(&key);
        self.managed.remove(&key);
        if t.kind.plural == "namespaces" && t.kind.group.is_empty() {
            // What the namespace held goes with it.
            let inner = format!("/namespaces/{name}/");
            self.objects.retain(|p, _| !p.contains(&inner));
        }
        ok(200, &obj)
    }
}

/// Secrets store `stringData` merged into `data` (base64), as the real server converts them.
fn string_data_into_data(obj: &mut Value) {
    let Some(sd) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else { return };
    for (k, v) in sd.as_object().into_iter().flatten() {
        obj["data"][k] = json!(base64(v.as_str().unwrap_or_default().as_bytes()));
    }
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The resource of a kind (`LiveStream` → `livestreams`).
fn plural_of(kind: &str) -> String {
    let lower = kind.to_lowercase();
    match lower.as_str() {
        "ingress" => "ingresses".into(),
        "poddisruptionbudget" => "poddisruptionbudgets".into(),
        _ => format!("{lower}s"),
    }
}

/// Five characters as `names.SimpleNameGenerator` appends them.
fn random_suffix(seed: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = seed.wrapping_mul(6364136223846793005).wrapping_add(uuid::Uuid::new_v4().as_u128() as u64);
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Now, as RFC 3339 in UTC (`2026-01-02T03:04:05Z`).
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
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
