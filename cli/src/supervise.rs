//! `onair up` runs its services (apiserver, chat gateway, media worker) as tasks of one process.
//! Supervised: when one ends on its own (an error, a panic, or returning early), that is logged
//! with its name, the others are told to stop, and the process exits with an error, instead of
//! running on silently without, say, its media worker.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A service: its name and what runs it until the stop signal it was given fires.
pub type Service = (&'static str, Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>);

/// How long the others get to stop after the first ended or the shutdown was asked: longer than
/// the slowest's own bounded stop (the media worker: 3 s of HTTP drain, then up to 20 s storing
/// what it recorded).
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// The services, running.
pub struct Supervisor {
    set: tokio::task::JoinSet<(&'static str, anyhow::Result<()>)>,
}

impl Supervisor {
    /// Start `services`, each in its own task (they serve from now on).
    pub fn start(services: Vec<Service>) -> Self {
        let mut this = Self { set: tokio::task::JoinSet::new() };
        for service in services {
            this.add(service);
        }
        this
    }

    /// Start one more (one whose building needed the others serving).
    pub fn add(&mut self, (name, run): Service) {
        self.set.spawn(async move { (name, run.await) });
    }

    /// Until `shutdown` (a clean stop: `Ok`) or until a service ends (`Err` naming it). Either
    /// way `stop` is called once, then every service is awaited for up to [`STOP_GRACE`] in all.
    pub async fn run(self, shutdown: impl Future<Output = ()>, stop: impl FnOnce()) -> anyhow::Result<()> {
        supervise(self.set, shutdown, stop).await
    }
}

async fn supervise(
    mut set: tokio::task::JoinSet<(&'static str, anyhow::Result<()>)>,
    shutdown: impl Future<Output = ()>,
    stop: impl FnOnce(),
) -> anyhow::Result<()> {
    let first = tokio::select! {
        () = shutdown => None,
        Some(ended) = set.join_next() => Some(ended),
    };
    stop();
    let failure = first.map(|ended| match ended {
        Ok((name, Ok(()))) => anyhow::anyhow!("the {name} stopped on its own"),
        Ok((name, Err(e))) => anyhow::anyhow!("the {name} failed: {e:#}"),
        Err(e) => anyhow::anyhow!("a service panicked: {e}"),
    });
    if let Some(e) = &failure {
        tracing::error!(error = %e, "stopping the other services");
    }
    let rest = tokio::time::timeout(STOP_GRACE, async {
        let mut errors = Vec::new();
        while let Some(ended) = set.join_next().await {
            match ended {
                Ok((_, Ok(()))) => {}
                Ok((name, Err(e))) => errors.push(format!("{name}: {e:#}")),
                Err(e) => errors.push(format!("a panic: {e}")),
            }
        }
        errors
    })
    .await;
    match (failure, rest) {
        (Some(e), _) => Err(e),
        (None, Ok(errors)) if errors.is_empty() => Ok(()),
        (None, Ok(errors)) => Err(anyhow::anyhow!("while stopping: {}", errors.join("; "))),
        (None, Err(_)) => Err(anyhow::anyhow!("services still running {} s after the stop", STOP_GRACE.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tokio::sync::watch;

    use super::*;

    /// A service that runs until the stop signal, noting that it stopped.
    fn well_behaved(name: &'static str, stop: &watch::Sender<bool>, stopped: Arc<AtomicBool>) -> Service {
        let mut rx = stop.subscribe();
        (
            name,
            Box::pin(async move {
                let _ = rx.wait_for(|s| *s).await;
                stopped.store(true, Ordering::SeqCst);
                Ok(())
            }),
        )
    }

    #[tokio::test]
    async fn one_service_failing_stops_the_others_and_names_it() {
        let (stop, _) = watch::channel(false);
        let (api, chat) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let services = vec![
            well_behaved("apiserver", &stop, api.clone()),
            well_behaved("chat gateway", &stop, chat.clone()),
            ("media worker", Box::pin(async { Err(anyhow::anyhow!("rtmp port taken")) }) as _),
        ];
        let result = Supervisor::start(services)
            .run(std::future::pending(), || {
                stop.send_replace(true);
            })
            .await;
        let e = result.expect_err("a failed service fails the process");
        assert_eq!(e.to_string(), "the media worker failed: rtmp port taken");
        assert!(api.load(Ordering::SeqCst) && chat.load(Ordering::SeqCst), "the others were stopped");
    }

    #[tokio::test]
    async fn a_panic_or_an_early_return_is_a_failure_too() {
        let (stop, _) = watch::channel(false);
        let panicking: Service = ("media worker", Box::pin(async { panic!("encoder table poisoned") }));
        let e = Supervisor::start(vec![panicking])
            .run(std::future::pending(), || {
                stop.send_replace(true);
            })
            .await
            .expect_err("a panic");
        assert!(e.to_string().starts_with("a service panicked"), "{e}");
        let early: Service = ("chat gateway", Box::pin(async { Ok(()) }));
        let e = Supervisor::start(vec![early]).run(std::future::pending(), || {}).await.expect_err("an early return");
        assert_eq!(e.to_string(), "the chat gateway stopped on its own");
    }

    #[tokio::test]
    async fn a_shutdown_stops_everyone_cleanly() {
        let (stop, _) = watch::channel(false);
        let flags: Vec<Arc<AtomicBool>> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();
        let services = ["apiserver", "chat gateway", "media worker"]
            .into_iter()
            .zip(&flags)
            .map(|(name, f)| well_behaved(name, &stop, f.clone()))
            .collect();
        Supervisor::start(services)
            .run(async {}, || {
                stop.send_replace(true);
            })
            .await
            .expect("a clean stop");
        assert!(flags.iter().all(|f| f.load(Ordering::SeqCst)));
    }
}
