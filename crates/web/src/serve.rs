//! Serving a router: our own accept loop on hyper-util. `axum::serve` gives hyper no timer, so
//! hyper's header-read timeout never fires (a client that opens connections and sends a header
//! a byte at a time holds each one forever), and it has no cap on connections.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt as _;

/// How long a shutdown lets requests in flight finish before it stops waiting for them: under
/// Kubernetes' default grace period (30 s), over the request timeout most routes have.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Bounds on the connections one server holds.
#[derive(Debug, Clone, Copy)]
pub struct Connections {
    /// Open HTTP connections at most; past it the server stops accepting until one closes (the
    /// kernel's backlog holds the rest). A WebSocket leaves the count once upgraded: the chat
    /// gateway bounds its sockets itself.
    pub max: usize,
    /// A request's head (request line and headers) must arrive within this, and so must the
    /// next one on a kept-alive connection.
    pub header_read_timeout: Duration,
}

impl Default for Connections {
    fn default() -> Self {
        // Far above what one replica serves (the chat gateway's HTTP traffic is its upgrades;
        // the apiserver answers ~70k req/s over 64 connections), far below its file descriptors.
        Self { max: 16_384, header_read_timeout: Duration::from_secs(10) }
    }
}

/// Serve `router` on `listener` until `shutdown`, with client addresses available to handlers
/// (`ConnectInfo`) and `TCP_NODELAY` on every connection, so small frames and responses go out
/// at once instead of waiting on Nagle's algorithm. On `shutdown` it stops accepting and lets
/// requests in flight finish for up to [`DRAIN_TIMEOUT`] (an endless response, like an
/// encoder's upload or a relay, would otherwise hold the process until it is killed).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, DRAIN_TIMEOUT, Connections::default()).await
}

/// [`serve`] with the drain time given.
pub async fn serve_draining(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, drain, Connections::default()).await
}

/// [`serve`] with the drain time and connection bounds given. HTTP/1.1 with upgrades
/// (WebSockets): TLS and HTTP/2 end at the ingress or CDN in front, and hyper's HTTP/1 server is
/// the one whose header-read timer also covers a connection that never sends a byte.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
    connections: Connections,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(connections.header_read_timeout);
    let max = connections.max.clamp(1, tokio::sync::Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = None;
    loop {
        let slot = tokio::select! {
            // Never closed: this waits only for a connection to end.
            s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => { backoff = None; c }
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin on it.
                    let pause = next_backoff(backoff);
                    backoff = Some(pause);
                    tracing::warn!(error = %e, pause_ms = pause.as_millis() as u64, "http accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let service = router.clone().map_request(move |req: Request<Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let service = TowerToHyperService::new(service.map_err(|e: Infallible| match e {}));
        let conn = http.serve_connection(TokioIo::new(tcp), service).with_upgrades();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            // A peer that resets or times out is its own business, not the server's log.
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    // Finish the request in flight, then close (idle connections close at once).
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every connection holds a slot until it ends: all slots back means all connections done.
    tokio::select! {
        _ = slots.acquire_many(max as u32) => {}
        () = tokio::time::sleep(drain) => {
            tracing::info!(drain_secs = drain.as_secs_f64(), "drain time over: leaving the requests still open");
        }
    }
    Ok(())
}

/// Errors about one connection (it was reset before we took it): nothing to wait out.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

/// The first pause after a failed accept; it doubles on each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause between accepts while they keep failing.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The pause after another failed accept, given the last one (`None`: the last accept worked):
/// doubling up to a cap while accepts keep failing (as Go's net/http does), so a full
/// descriptor table neither spins a core nor floods the log. Every accept loop uses it.
pub fn next_backoff(last: Option<Duration>) -> Duration {
    match last {
        None => FIRST_BACKOFF,
        Some(d) => (d * 2).min(MAX_BACKOFF),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let mut d = None;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let next = super::next_backoff(d);
            seen.push(next.as_millis());
            d = Some(next);
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    }
}
