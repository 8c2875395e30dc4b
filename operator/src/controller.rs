//! The reconcile loop: for each LiveStream, apply what `desired` says, look at what runs, write
//! the status `status::derive` computes, and end the media gracefully on suspend or deletion.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Client, Resource as _, ResourceExt as _};
use onair_crds::{LiveStream, LiveStreamStatus, Phase};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::OperatorConfig;
use crate::desired::{self, Desired};
use crate::metrics::Metrics;
use crate::parts;
use crate::plan::{self, Decision};
use crate::scaling::{Admission, Part, Rebalance};
use crate::status::{self, Observed, PodObs, WorkerObs};

/// The one field manager every object and status is applied with.
pub const MANAGER: &str = "onair-operator";
/// Held until the media is stopped and the apiserver knows the stream ended.
pub const FINALIZER: &str = "onair.dev/end-stream";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("ending the stream: {0}")]
    EndStream(String),
    #[error("kubernetes API did not answer within {0:?}")]
    Timeout(Duration),
}

impl Error {
    /// A low-cardinality label for the errors metric.
    pub fn reason(&self) -> String {
        match self {
            Self::Kube(kube::Error::Api(s)) => format!("api_{}", s.code),
            Self::Kube(_) => "api_transport".into(),
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => {
                    e.reason()
                }
                _ => "finalizer".into(),
            },
            Self::EndStream(_) => "end_stream".into(),
            Self::Timeout(_) => "timeout".into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Renditions by transcode part (`{"t0": ["720p"]}`), as `PUT /internal/streams/{id}/transcoders`
/// carries them.
pub use onair_domain::contracts::media::Parts;

/// The media worker's internal routes and the apiserver's, as the operator uses them; a trait
/// so tests can stand in for pods that do not exist.
#[async_trait::async_trait]
pub trait MediaApi: Send + Sync + 'static {
    async fn state(&self, base: &str, stream: uuid::Uuid) -> Result<WorkerObs, String>;
    /// Disconnect the publisher and finish the playlist (`EXT-X-ENDLIST`).
    async fn stop(&self, base: &str, stream: uuid::Uuid) -> Result<(), String>;
    /// Tell the apiserver the stream ended (its row, its viewers' pages).
    async fn report_ended(&self, stream: uuid::Uuid) -> Result<(), String>;
    /// Which transcode pod encodes which renditions, through the stream's ingest pod; the
    /// renditions no longer assigned end there (`EXT-X-ENDLIST`) for the players on them.
    async fn assign(&self, base: &str, stream: uuid::Uuid, parts: &Parts) -> Result<(), String>;
}

pub struct HttpMediaApi {
    http: reqwest::Client,
    token: secrecy::SecretString,
    apiserver: String,
}

impl HttpMediaApi {
    pub fn new(config: &OperatorConfig) -> Self {
        Self {
            // Fails only when the TLS backend cannot start: nothing would work, so say so at
            // start-up instead of running without the timeout.
            http: onair_http::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("the HTTP client for media workers and the apiserver cannot be built"),
            token: config.internal_token.clone(),
            apiserver: config.apiserver_url.trim_end_matches('/').to_owned(),
        }
    }

    fn req(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        use secrecy::ExposeSecret as _;
        self.http
            .request(method, url)
            .header(onair_domain::contracts::http::INTERNAL_TOKEN_HEADER, self.token.expose_secret())
    }
}

#[async_trait::async_trait]
impl MediaApi for HttpMediaApi {
    async fn state(&self, base: &str, stream: uuid::Uuid) -> Result<WorkerObs, String> {
        let res = self.req(reqwest::Method::GET, format!("{base}/internal/streams/{stream}")).send().await;
        match res {
            Ok(r) if r.status().is_success() => r.json().await.map_err(|e| e.to_string()),
            Ok(r) => Err(format!("worker answered {}", r.status())),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn stop(&self, base: &str, stream: uuid::Uuid) -> Result<(), String> {
        let res = self.req(reqwest::Method::POST, format!("{base}/internal/streams/{stream}/stop")).send().await;
        match res {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("worker answered {}", r.status())),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn assign(&self, base: &str, stream: uuid::Uuid, parts: &Parts) -> Result<(), String> {
        let url = format!("{base}/internal/streams/{stream}/transcoders");
        let res = self.req(reqwest::Method::PUT, url).json(parts).send().await;
        match res {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("worker answered {}", r.status())),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn report_ended(&self, stream: uuid::Uuid) -> Result<(), String> {
        let url = format!("{}/internal/streams/{stream}/status", self.apiserver);
        let res = self.req(reqwest::Method::POST, url).json(&serde_json::json!({"status": "ended"})).send().await;
        match res {
            // 409: already ended (the streamer pressed stop first) — the goal is reached.
            Ok(r) if r.status().is_success() || r.status() == 409 || r.status() == 404 => Ok(()),
            Ok(r) => Err(format!("apiserver answered {}", r.status())),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    pub media: Arc<dyn MediaApi>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per object, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// Bound on one reconcile's API calls, so a hung apiserver reads as an error and a retry.
    pub api_timeout: Duration,
    /// The capacity plan, recomputed on a timer (`plan::plan`); reconciles only read it.
    pub plan: std::sync::RwLock<HashMap<String, Decision>>,
    /// When the media Secret was last applied, per namespace: once per `MEDIA_SECRET_REFRESH`,
    /// not once per reconcile.
    media_secrets: Mutex<HashMap<String, Instant>>,
}

/// How often the media Secret of a namespace is re-applied (a deleted or edited one comes back).
const MEDIA_SECRET_REFRESH: Duration = Duration::from_secs(60);

impl Context {
    pub fn new(client: Client, config: OperatorConfig, media: Arc<dyn MediaApi>, metrics: Arc<Metrics>) -> Self {
        let reporter =
            Reporter { controller: MANAGER.into(), instance: Some(config.identity.clone()).filter(|s| !s.is_empty()) };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            media,
            metrics,
            failures: Mutex::default(),
            api_timeout: Duration::from_secs(30),
            plan: Default::default(),
            media_secrets: Mutex::default(),
        }
    }

    /// The plan's decision for `ls`, and whether it comes from a plan. A stream the plan has
    /// not seen yet waits for it when there is a budget (so nothing skips the queue), and runs
    /// at what its audience earns when there is none.
    pub fn decision(&self, ls: &LiveStream) -> (Decision, bool) {
        let planned = self.plan.read().unwrap_or_else(|e| e.into_inner()).get(&plan::key(ls)).copied();
        match planned {
            Some(d) => (d, true),
            None => {
                let now = k8s_openapi::jiff::Timestamp::now().as_second();
                let wanted = plan::wanted(ls, &self.config.audience_policy(), now, None);
                let admission =
                    if self.config.budget().is_some() { Admission::Queued(0) } else { Admission::Run(wanted) };
                (Decision { wanted, admission }, false)
            }
        }
    }

    /// 5 s, 10 s, 20 s, ... up to 5 minutes, per object.
    fn backoff(&self, ls: &LiveStream) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.entry(plan::key(ls)).or_default();
        *n = n.saturating_add(1);
        Duration::from_secs((5u64 << (*n - 1).min(6)).min(300))
    }

    fn succeeded(&self, ls: &LiveStream) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&plan::key(ls));
    }
}

/// The controller's reconcile: the finalizer around apply/cleanup, bounded in time, measured.
pub async fn reconcile(ls: Arc<LiveStream>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let ns = ls.namespace().unwrap_or_else(|| "default".into());
    let api: Api<LiveStream> = Api::namespaced(ctx.client.clone(), &ns);
    let span = tracing::info_span!("reconcile", namespace = %ns, name = %ls.name_any(), stream_id = %ls.spec.stream_id);
    let work = tracing::Instrument::instrument(
        finalizer(&api, FINALIZER, ls.clone(), |event| async {
            match event {
                Finalizer::Apply(ls) => apply(ls, &ctx).await,
                Finalizer::Cleanup(ls) => cleanup(ls, &ctx).await,
            }
        }),
        span,
    );
    let res = match tokio::time::timeout(ctx.api_timeout, work).await {
        Ok(r) => r.map_err(|e| Error::Finalizer(Box::new(e))),
        Err(_) => Err(Error::Timeout(ctx.api_timeout)),
    };
    ctx.metrics.observe_reconcile(started.elapsed(), res.as_ref().err().map(Error::reason));
    res
}

/// What the controller does with a failed reconcile: log, count, retry with backoff — the
/// other streams keep reconciling meanwhile.
pub fn error_policy(ls: Arc<LiveStream>, err: &Error, ctx: Arc<Context>) -> Action {
    let wait = ctx.backoff(&ls);
    tracing::warn!(namespace = ?ls.namespace(), name = %ls.name_any(), error = %err, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn worker_base(ls: &LiveStream) -> String {
    format!(
        "http://{}.{}.svc:{}",
        desired::hls_name(&ls.name_any()),
        ls.namespace().unwrap_or_else(|| "default".into()),
        desired::HTTP_PORT
    )
}

async fn ssa<K>(api: &Api<K>, name: &str, obj: &K) -> Result<K>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    Ok(api.patch(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(obj)).await?)
}

/// Delete `name` if it exists (an object the spec no longer wants).
async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn apply(ls: Arc<LiveStream>, ctx: &Context) -> Result<Action> {
    let ns = ls.namespace().unwrap_or_else(|| "default".into());
    let name = ls.name_any();
    let client = ctx.client.clone();
    let mut obs = Observed {
        playback_url: Some(onair_domain::contracts::playback::master_url(
            &ctx.config.playback_base_url,
            ls.spec.stream_id,
        )),
        ..Default::default()
    };

    // A spec the operator cannot run: say which field, and wait for a change (no retry loop).
    if let Err(invalid) = desired::validate(&ls) {
        obs.invalid = Some(invalid);
        write_status(&ls, ctx, &obs).await?;
        ctx.succeeded(&ls);
        return Ok(Action::await_change());
    }

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret_ref = &ls.spec.stream_key_secret;
    obs.secret_missing = match secrets.get_opt(&secret_ref.name).await? {
        None => Some(format!("Secret {} not found", secret_ref.name)),
        Some(s) if !s.data.as_ref().is_some_and(|d| d.contains_key(&secret_ref.key)) => {
            Some(format!("Secret {} has no key {}", secret_ref.name, secret_ref.key))
        }
        Some(_) => None,
    };
    if obs.secret_missing.is_some() {
        write_status(&ls, ctx, &obs).await?;
        // It may be created later: look again, less and less often.
        return Ok(Action::requeue(ctx.backoff(&ls)));
    }

    ensure_media_secret(&ns, ctx).await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let listed = pods.list(&ListParams::default().labels(&desired::selector_string(&ls))).await?;
    obs.pods = listed.items.iter().map(PodObs::from_pod).collect();

    obs.stopping = !desired::wants_media(&ls);
    let phase = ls.status.as_ref().and_then(|s| s.phase);
    // Once Ending is written, the worker was stopped and the apiserver told.
    if obs.stopping && !obs.pods.is_empty() && !matches!(phase, Some(Phase::Ended | Phase::Ending)) {
        end_stream(&ls, ctx).await?;
    }

    let (decision, _) = ctx.decision(&ls);
    obs.decision = Some(decision);
    // Queued: its objects exist, but no pod takes capacity until the plan admits it.
    let queued = matches!(decision.admission, Admission::Queued(_)) && obs.pods.is_empty();
    // The ingest pod speaks for the stream: publisher, viewers, and its transcoders' reports.
    if !obs.stopping && obs.pods.iter().any(|p| p.ready && p.is_ingest()) {
        match ctx.media.state(&worker_base(&ls), ls.spec.stream_id).await {
            Ok(w) => obs.worker = Some(w),
            Err(e) => tracing::debug!(error = %e, "media worker state unavailable"),
        }
    }
    // Which transcode pods run which renditions, at the level the plan admitted.
    let level = match decision.admission {
        Admission::Run(level) if !obs.stopping => Some(level),
        _ => None,
    };
    obs.parts = parts::for_stream(&ls, level, obs.worker.as_ref(), ctx.config.transcode_pod_millicores, &now());
    let assigned: Vec<Part> = obs.parts.parts.iter().map(parts::part).collect();
    let mut d: Desired = desired::desired(&ls, &ctx.config, &assigned);
    if queued {
        d.ingest.spec.replicas = Some(0);
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    ssa(&deployments, &desired::ingest_name(&name), &d.ingest).await?;
    for t in &d.transcoders {
        ssa(&deployments, &t.name_any(), t).await?;
    }
    // Transcode pods no longer assigned anything go (their renditions moved or ended). The
    // last status says which ran: no LIST per reconcile (40k streams resyncing every 15 s
    // would be thousands of LISTs a second).
    let before = ls.status.as_ref().map(|s| s.transcoders.as_slice()).unwrap_or_default();
    for old in before.iter().filter(|t| !assigned.iter().any(|a| a.name == t.name)) {
        delete_if_present(&deployments, &desired::transcode_name(&name, &old.name)).await?;
    }
    let ingest = ssa(&services, &desired::ingest_name(&name), &d.ingest_service).await?;
    ssa(&services, &desired::hls_name(&name), &d.hls_service).await?;
    match &d.pdb {
        Some(pdb) => drop(ssa(&pdbs, &desired::media_name(&name), pdb).await?),
        // Only a changed spec (a tier, a suspend) can leave a PDB behind: no DELETE per resync.
        None if ls.status.as_ref().and_then(|s| s.observed_generation) != ls.metadata.generation => {
            delete_if_present(&pdbs, &desired::media_name(&name)).await?
        }
        None => {}
    }
    if let Some(ing) = &d.ingress {
        let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns);
        ssa(&ingresses, &desired::hls_name(&name), ing).await?;
    }
    obs.ingest_url = Some(ingest_url(&ls, &ingest, &ctx.config));

    // The ingest pod hands each transcode pod its renditions (they switch at a keyframe, no
    // restart) and ends the renditions taken away.
    if obs.worker.is_some() {
        let assignment = assigned.iter().map(|p| (p.name.clone(), p.renditions.clone())).collect();
        if let Err(e) = ctx.media.assign(&worker_base(&ls), ls.spec.stream_id, &assignment).await {
            tracing::info!(error = %e, "could not hand the transcoders their renditions");
        }
    }
    for r in &obs.parts.rebalanced {
        if let Rebalance::Move { rendition, from, to } = r {
            let to = to.as_deref().unwrap_or("a new pod");
            let note = format!("{name}: transcoder {from} fell behind real time; {rendition} moved to {to}");
            tracing::warn!(rendition = %rendition, from = %from, "rendition moved off a slow transcoder");
            ctx.metrics.scaling_decision("slow_encode_move");
            publish(ctx, &ls, true, "Rebalanced", note).await;
        }
    }

    let status = write_status(&ls, ctx, &obs).await?;
    let before = ls.status.as_ref().and_then(|s| s.ladder_level);
    if let (Some(from), Some(to)) = (before, status.ladder_level)
        && from != to
    {
        let why = if to < decision.wanted {
            "the transcode budget is used up".to_string()
        } else {
            format!("{} viewers", status.viewers.unwrap_or(0))
        };
        publish(ctx, &ls, false, "LadderChanged", format!("{name}: {from:?} -> {to:?} ({why})")).await;
        ctx.metrics.scaling_decision(if to < decision.wanted { "capacity" } else { "audience" });
    }
    // A Failed stream keeps its growing backoff: nothing to gain from looking every 5 s.
    if status.phase != Some(Phase::Failed) {
        ctx.succeeded(&ls);
    }
    Ok(match status.phase {
        Some(Phase::Live | Phase::Ready) => Action::requeue(Duration::from_secs(ctx.config.resync_secs)),
        Some(Phase::Starting | Phase::Ending | Phase::Pending | Phase::Queued) => {
            Action::requeue(Duration::from_secs(5))
        }
        Some(Phase::Failed) => Action::requeue(ctx.backoff(&ls)),
        Some(Phase::Ended) | None => Action::await_change(),
    })
}

/// Apply the namespace's media Secret unless done in the last `MEDIA_SECRET_REFRESH`.
async fn ensure_media_secret(ns: &str, ctx: &Context) -> Result<()> {
    let fresh = |at: Option<&Instant>| at.is_some_and(|t| t.elapsed() < MEDIA_SECRET_REFRESH);
    if fresh(ctx.media_secrets.lock().unwrap_or_else(|e| e.into_inner()).get(ns)) {
        return Ok(());
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    ssa(&secrets, &ctx.config.media_secret, &desired::media_secret(ns, &ctx.config)).await?;
    ctx.media_secrets.lock().unwrap_or_else(|e| e.into_inner()).insert(ns.to_string(), Instant::now());
    tracing::debug!(namespace = %ns, secret = %ctx.config.media_secret, "media Secret applied");
    Ok(())
}

/// The public RTMP base: configured, else the load balancer's address, else cluster DNS.
fn ingest_url(ls: &LiveStream, svc: &Service, config: &OperatorConfig) -> String {
    if !config.public_ingest_url.is_empty() {
        return config.public_ingest_url.clone();
    }
    let lb = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|i| i.first())
        .and_then(|i| i.hostname.clone().or_else(|| i.ip.clone()));
    let host = lb.unwrap_or_else(|| {
        format!("{}.{}.svc.cluster.local", desired::ingest_name(&ls.name_any()), ls.namespace().unwrap_or_default())
    });
    format!("rtmp://{host}:{}/live", desired::RTMP_PORT)
}

/// Stop the media gracefully: the worker ends the playlist, then the apiserver hears the
/// stream ended. A worker that cannot be reached has no playlist to finish; the apiserver must
/// hear it, so that failure is an error (and a retry).
async fn end_stream(ls: &LiveStream, ctx: &Context) -> Result<()> {
    if let Err(e) = ctx.media.stop(&worker_base(ls), ls.spec.stream_id).await {
        tracing::info!(error = %e, "media worker not reachable to stop; it has nothing to finish");
    }
    ctx.media.report_ended(ls.spec.stream_id).await.map_err(Error::EndStream)?;
    tracing::info!("stream ended");
    Ok(())
}

/// Deletion: end the stream before the finalizer lets the objects go (owner references then
/// delete the Deployment, Services and PDB).
async fn cleanup(ls: Arc<LiveStream>, ctx: &Context) -> Result<Action> {
    let ns = ls.namespace().unwrap_or_else(|| "default".into());
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let listed = pods.list(&ListParams::default().labels(&desired::selector_string(&ls))).await?;
    let phase = ls.status.as_ref().and_then(|s| s.phase);
    if !listed.items.is_empty() {
        end_stream(&ls, ctx).await?;
    } else if phase != Some(Phase::Ended) {
        ctx.media.report_ended(ls.spec.stream_id).await.map_err(Error::EndStream)?;
    }
    publish(ctx, &ls, false, "Deleted", format!("{}: stream ended; media removed", ls.name_any())).await;
    ctx.succeeded(&ls);
    Ok(Action::await_change())
}

/// Compute and (when it changed) write the status; an Event for each phase change.
async fn write_status(ls: &LiveStream, ctx: &Context, obs: &Observed) -> Result<LiveStreamStatus> {
    let status = status::derive(ls, obs, now());
    if ls.status.as_ref() != Some(&status) {
        let api: Api<LiveStream> = Api::namespaced(ctx.client.clone(), &ls.namespace().unwrap_or_default());
        let body = serde_json::json!({
            "apiVersion": LiveStream::api_version(&()),
            "kind": LiveStream::kind(&()),
            "status": status,
        });
        api.patch_status(&ls.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(body)).await?;
    }
    let old_cap = ls.status.as_ref().and_then(|s| s.ladder_cap);
    if let Some(cap) = status.ladder_cap.filter(|c| Some(*c) != old_cap) {
        let note = format!("{}: the encoder fell behind real time; shed to {cap:?}", ls.name_any());
        tracing::warn!(level = ?cap, "ladder shed: encoder too slow");
        ctx.metrics.scaling_decision("slow_encode");
        publish(ctx, ls, true, "Shed", note).await;
    }
    if let Some((warning, reason, note)) = status::transition(ls, &status) {
        tracing::info!(phase = %reason, "{note}");
        publish(ctx, ls, warning, &reason, note).await;
    }
    Ok(status)
}

/// Events are for people; failing to write one must not fail the reconcile.
async fn publish(ctx: &Context, ls: &LiveStream, warning: bool, reason: &str, note: String) {
    let ev = Event {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &ls.object_ref(&())).await {
        tracing::debug!(error = %e, "could not publish event");
    }
}
