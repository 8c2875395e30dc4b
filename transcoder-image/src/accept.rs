//! The RTMP accept loop a media worker and the ingest gateway share: at most `max` connections
//! at once (the next waits in the kernel's backlog until one ends) and a growing pause after
//! each failed accept, so running out of file descriptors does not spin a core (mini-redis's
//! `server.rs` does the same).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// Concurrent RTMP connections a listener takes unless configured otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// The first pause after a failed accept; it doubles on each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause between accepts while they keep failing.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The pause after another failed accept, given the last one (`None`: the last accept worked).
pub fn next_backoff(last: Option<Duration>) -> Duration {
    match last {
        None => FIRST_BACKOFF,
        Some(d) => (d * 2).min(MAX_BACKOFF),
    }
}

/// Accept with `accept` forever, handing each connection to `handle` in its own task while at
/// most `max` run.
pub async fn run<C, A, AF, H, HF>(mut accept: A, max: usize, handle: H)
where
    A: FnMut() -> AF,
    AF: Future<Output = std::io::Result<(C, SocketAddr)>>,
    H: Fn(C, SocketAddr) -> HF,
    HF: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max.max(1)));
    let mut backoff = None;
    loop {
        // Never closed, so this only waits for a connection to end.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        match accept().await {
            Ok((conn, peer)) => {
                backoff = None;
                let task = handle(conn, peer);
                tokio::spawn(async move {
                    task.await;
                    drop(slot);
                });
            }
            Err(e) => {
                let pause = next_backoff(backoff);
                backoff = Some(pause);
                tracing::warn!(error = %e, pause_ms = pause.as_millis() as u64, "rtmp accept failed");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// [`run`] over a TCP listener.
pub async fn serve<H, HF>(listener: tokio::net::TcpListener, max: usize, handle: H)
where
    H: Fn(tokio::net::TcpStream, SocketAddr) -> HF,
    HF: Future<Output = ()> + Send + 'static,
{
    run(|| listener.accept(), max, handle).await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::{Notify, mpsc};

    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let mut d = None;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let next = next_backoff(d);
            seen.push(next.as_millis());
            d = Some(next);
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_accepts_back_off_instead_of_spinning() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let accept = move || {
            c.fetch_add(1, Ordering::SeqCst);
            async { Err::<((), SocketAddr), _>(std::io::Error::other("too many open files")) }
        };
        let task = tokio::spawn(run(accept, 4, |_: (), _| async {}));
        // 10 + 20 + 40 + 80 + 160 + 320 + 640 = 1270 ms of pauses after 7 failures.
        tokio::time::sleep(Duration::from_millis(1269)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 7);
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 8);
        task.abort();
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_a_slot() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound address");
        let (started, mut started_rx) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let r = release.clone();
        let server = tokio::spawn(serve(listener, 2, move |_tcp, peer| {
            let (started, release) = (started.clone(), r.clone());
            async move {
                let _ = started.send(peer);
                release.notified().await;
            }
        }));
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        }
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(5), started_rx.recv()).await.expect("handled").expect("open");
        }
        // The third is connected (the kernel's backlog) but not handled while two run.
        assert!(tokio::time::timeout(Duration::from_millis(200), started_rx.recv()).await.is_err());
        release.notify_one();
        tokio::time::timeout(Duration::from_secs(5), started_rx.recv()).await.expect("third handled").expect("open");
        server.abort();
    }
}
