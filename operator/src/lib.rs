//! The onair operator: reconciles `LiveStream` resources into media pods, Services and status,
//! as the leader among its replicas.

pub mod config;
pub mod controller;
pub mod desired;
pub mod internal_token;
pub mod metrics;
pub mod parts;
pub mod plan;
pub mod rbac;
pub mod scaling;
pub mod scope;
pub mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt as _};
use onair_crds::LiveStream;

pub use config::OperatorConfig;
pub use controller::{Context, HttpMediaApi, MediaApi};
pub use metrics::Metrics;

/// Shared with `/readyz`: ready once the controller runs (as leader) or waits as a standby.
#[derive(Clone, Default)]
struct Health {
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

/// Run the operator until `shutdown`: metrics/health server, leader election, controller.
pub async fn run(
    config: OperatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.check()?;
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::new());
    let health = Health { ready: Arc::default(), metrics: metrics.clone() };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    // The shared limits (64 KiB bodies, 15 s per request, JSON 404/405) like every service's.
    let router = onair_web::finish_router(
        Router::new()
            .route("/metrics", get(metrics_handler))
            .route("/healthz", get(onair_web::healthz))
            .route("/readyz", get(readyz))
            .with_state(health.clone()),
        onair_web::Limits::default(),
    );
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(onair_web::serve(listener, router, async move {
        let _ = server_stop.wait_for(|s| *s).await;
    }));
    let namespaces = config.watched_namespaces().map(|n| n.join(",")).unwrap_or_else(|| "*".into());
    tracing::info!(listen = %config.listen, %namespaces, "operator starting");

    if config.lease_name.is_empty() {
        health.ready.store(true, Ordering::SeqCst);
        metrics.leader.set(1);
        run_controller(client, config, metrics, stop_rx.clone()).await;
    } else {
        lead(client, config, health, stop_rx.clone()).await?;
    }
    let _ = server.await;
    Ok(())
}

/// Take the Lease, run the controller while holding it, stop when it is lost; release it on
/// shutdown so a standby takes over at once instead of after the lease expires.
async fn lead(
    client: Client,
    config: OperatorConfig,
    health: Health,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let identity = if config.identity.is_empty() {
        format!("onair-operator-{}", uuid::Uuid::new_v4())
    } else {
        config.identity.clone()
    };
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &config.lease_name)
        .with_namespace(&config.lease_namespace)
        .with_identity(&identity)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await?;
    let (mut leading, task) = manager.watch().await;
    health.ready.store(true, Ordering::SeqCst);
    let metrics = health.metrics.clone();
    follow_lease(&mut leading, &mut stop, &metrics.leader, &identity, |ctl_stop| {
        run_controller(client.clone(), config.clone(), metrics.clone(), ctl_stop)
    })
    .await?;
    drop(leading);
    let manager = task.await??;
    manager.release().await?;
    tracing::info!(%identity, "stepped down");
    Ok(())
}

/// Run `work` while `leading` says this replica holds the Lease: start it on gaining the lease,
/// tell it to stop (and wait for it) on losing it or on `stop`. Two replicas never both work:
/// the Lease says who leads, and a replica stops its work as soon as it hears it lost.
pub async fn follow_lease<F, Fut>(
    leading: &mut tokio::sync::watch::Receiver<bool>,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    leader_gauge: &prometheus_client::metrics::gauge::Gauge,
    identity: &str,
    mut work: F,
) -> anyhow::Result<()>
where
    F: FnMut(tokio::sync::watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        if *leading.borrow_and_update() {
            tracing::info!(%identity, "leading");
            leader_gauge.set(1);
            let (ctl_stop_tx, ctl_stop_rx) = tokio::sync::watch::channel(false);
            let ctl = work(ctl_stop_rx);
            tokio::pin!(ctl);
            let lost = tokio::select! {
                _ = &mut ctl => false,
                _ = async { let _ = stop.wait_for(|s| *s).await; } => { let _ = ctl_stop_tx.send(true); ctl.await; false }
                // A closed channel (the lease manager died) counts as lost: stop working.
                _ = async { let _ = leading.wait_for(|l| !*l).await; } => {
                    tracing::warn!(%identity, "lost the lease; stopping the controller");
                    let _ = ctl_stop_tx.send(true);
                    ctl.await;
                    true
                }
            };
            leader_gauge.set(0);
            if lost && leading.has_changed().is_err() {
                anyhow::bail!("lease manager stopped");
            }
        } else {
            tracing::info!(%identity, "standing by for the lease");
            tokio::select! {
                r = leading.changed() => { if r.is_err() { anyhow::bail!("lease manager stopped") } }
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {}
            }
        }
    }
}

/// The controllers, one per watched namespace (or one over all): LiveStreams, their
/// Deployments and their pods (for readiness and waiting reasons) feed each queue; one context
/// and one capacity plan over all of them; runs until `stop`.
pub async fn run_controller(
    client: Client,
    config: OperatorConfig,
    metrics: Arc<Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let watched = config.watched_namespaces();
    scope::report_unwatched(client.clone(), watched.as_deref(), &metrics).await;
    let managed = format!("app.kubernetes.io/managed-by={}", desired::MANAGED_BY);
    let ctx =
        Arc::new(Context::new(client.clone(), config.clone(), Arc::new(HttpMediaApi::new(&config)), metrics.clone()));
    let mut stores = Vec::new();
    let mut runs = Vec::new();
    for scope in scope::scopes(watched) {
        let (lss, deployments, pods): (Api<LiveStream>, Api<Deployment>, Api<Pod>) = match &scope {
            None => (Api::all(client.clone()), Api::all(client.clone()), Api::all(client.clone())),
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
        };
        let controller = Controller::new(lss, watcher::Config::default().any_semantic())
            .owns(deployments, watcher::Config::default().labels(&managed))
            .watches(pods, watcher::Config::default().labels(&managed), |pod: Pod| {
                let name = pod.labels().get(desired::LABEL_LIVESTREAM)?.clone();
                Some(ObjectRef::<LiveStream>::new(&name).within(&pod.namespace()?))
            });
        stores.push(controller.store());
        let mut stop = stop.clone();
        let scope_name = scope.unwrap_or_else(|| "*".into());
        runs.push(
            controller
                .graceful_shutdown_on(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .run(controller::reconcile, controller::error_policy, ctx.clone())
                .for_each(move |res| {
                    if let Err(e) = res {
                        tracing::debug!(namespace = %scope_name, error = %e, "controller event");
                    }
                    futures::future::ready(())
                }),
        );
    }
    let planner_ctx = ctx.clone();
    // The plan: every few seconds, from the caches (viewers come from the statuses the
    // reconciles write from the workers' counts), never per request; one budget for every
    // namespace.
    let planner = tokio::spawn(async move {
        // The first plan as soon as the caches hold every LiveStream, then every 5 s.
        for store in &stores {
            let _ = store.wait_until_ready().await;
        }
        loop {
            let objects: Vec<_> = stores.iter().flat_map(|s| s.state()).collect();
            let refs: Vec<&LiveStream> = objects.iter().map(|a| a.as_ref()).collect();
            let config = &planner_ctx.config;
            let now = k8s_openapi::jiff::Timestamp::now().as_second();
            let previous = planner_ctx.plan.read().unwrap_or_else(|e| e.into_inner()).clone();
            let planned = plan::plan(refs.iter().copied(), config.budget(), &config.audience_policy(), now, &previous);
            let (used, queued) = plan::usage(&refs, &planned);
            metrics.planned(config.budget(), used, queued);
            metrics.per_stream(refs.iter().filter_map(|ls| match planned.get(&plan::key(ls)).map(|d| d.admission) {
                Some(scaling::Admission::Run(level)) => Some((
                    plan::key(ls),
                    scaling::cost(level, &ls.spec.ladder.resolve()),
                    ls.status.as_ref().map(|s| s.renditions.len()).unwrap_or(0),
                )),
                _ => None,
            }));
            metrics.count(refs.iter().copied());
            *planner_ctx.plan.write().unwrap_or_else(|e| e.into_inner()) = planned;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    futures::future::join_all(runs).await;
    planner.abort();
    tracing::info!("controller stopped");
}

async fn metrics_handler(State(h): State<Health>) -> impl IntoResponse {
    onair_web::metrics_response(&h.metrics.registry)
}

async fn readyz(State(h): State<Health>) -> http::StatusCode {
    if h.ready.load(Ordering::SeqCst) { http::StatusCode::OK } else { http::StatusCode::SERVICE_UNAVAILABLE }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::watch;

    /// Work that counts how many copies run at once and how often it started.
    #[derive(Default)]
    struct Probe {
        running: AtomicUsize,
        starts: AtomicUsize,
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn work_runs_only_while_the_lease_is_held_and_stops_on_shutdown() {
        let (lease_tx, mut leading) = watch::channel(false);
        let (stop_tx, mut stop) = watch::channel(false);
        let gauge = prometheus_client::metrics::gauge::Gauge::default();
        let probe = Arc::new(Probe::default());
        let p = probe.clone();
        let g = gauge.clone();
        let task = tokio::spawn(async move {
            follow_lease(&mut leading, &mut stop, &g, "test", |mut ctl_stop| {
                let p = p.clone();
                async move {
                    p.starts.fetch_add(1, Ordering::SeqCst);
                    p.running.fetch_add(1, Ordering::SeqCst);
                    let _ = ctl_stop.wait_for(|s| *s).await;
                    p.running.fetch_sub(1, Ordering::SeqCst);
                }
            })
            .await
        });
        settle().await;
        assert_eq!(probe.running.load(Ordering::SeqCst), 0, "a standby does no work");
        lease_tx.send(true).unwrap();
        settle().await;
        assert_eq!((probe.running.load(Ordering::SeqCst), gauge.get()), (1, 1));
        lease_tx.send(false).unwrap();
        settle().await;
        assert_eq!((probe.running.load(Ordering::SeqCst), gauge.get()), (0, 0), "losing the lease stops the work");
        lease_tx.send(true).unwrap();
        settle().await;
        assert_eq!(probe.starts.load(Ordering::SeqCst), 2, "regaining it starts again");
        stop_tx.send(true).unwrap();
        let res = tokio::time::timeout(Duration::from_secs(1), task).await.unwrap().unwrap();
        assert!(res.is_ok());
        assert_eq!(probe.running.load(Ordering::SeqCst), 0, "shutdown waits for the work to stop");
    }

    #[tokio::test]
    async fn a_dead_lease_manager_stops_the_work_and_is_an_error() {
        let (lease_tx, mut leading) = watch::channel(true);
        let (_stop_tx, mut stop) = watch::channel(false);
        let gauge = prometheus_client::metrics::gauge::Gauge::default();
        let running = Arc::new(AtomicUsize::new(0));
        let r = running.clone();
        let task = tokio::spawn(async move {
            follow_lease(&mut leading, &mut stop, &gauge, "test", |mut ctl_stop| {
                let r = r.clone();
                async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    let _ = ctl_stop.wait_for(|s| *s).await;
                    r.fetch_sub(1, Ordering::SeqCst);
                }
            })
            .await
        });
        settle().await;
        assert_eq!(running.load(Ordering::SeqCst), 1);
        drop(lease_tx);
        let res = tokio::time::timeout(Duration::from_secs(1), task).await.unwrap().unwrap();
        assert!(res.is_err(), "no lease manager, no leadership: the operator exits and restarts");
        assert_eq!(running.load(Ordering::SeqCst), 0);
    }
}
