//! The RTMP accept loop a media worker and the ingest gateway share: at most `max` connections
//! at once (the next waits in the kernel's backlog until one ends), at most `per_ip` from one
//! address (more are closed at once: one host cannot take every slot), and a growing pause after
//! each failed accept, so running out of file descriptors does not spin a core (mini-redis's
//! `server.rs` does the same).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

/// Concurrent RTMP connections a listener takes unless configured otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Concurrent RTMP connections from one address unless configured otherwise: a streamer needs
/// one (and one more while reconnecting); a NAT in front of several streamers a few more.
pub const DEFAULT_MAX_PER_IP: usize = 16;

/// How many connections a listener holds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max: usize,
    /// 0: no per-address limit.
    pub per_ip: usize,
}

/// Connections open per address; a [`PerIpSlot`] gives its place back when dropped.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

struct PerIpSlot(Arc<PerIp>, IpAddr);

/// The address a limit counts: IPv4 as is (an IPv4-mapped IPv6 address as its IPv4), IPv6 by
/// its /64, the block one host or one home network is given (counting whole addresses would let
/// it open a connection from each of its 2^64).
fn counted(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

impl PerIp {
    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<PerIpSlot> {
        let ip = counted(ip);
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_default();
        if limit > 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(PerIpSlot(self.clone(), ip))
    }
}

impl Drop for PerIpSlot {
    fn drop(&mut self) {
        let mut open = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Accept with `accept` forever, handing each connection to `handle` in its own task within
/// `limits`; a connection over the per-address limit is dropped (closed) and `refused` told.
pub async fn run<C, A, AF, H, HF>(mut accept: A, limits: Limits, refused: impl Fn(SocketAddr), handle: H)
where
    A: FnMut() -> AF,
    AF: Future<Output = std::io::Result<(C, SocketAddr)>>,
    H: Fn(C, SocketAddr) -> HF,
    HF: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max.max(1)));
    let per_ip = Arc::new(PerIp::default());
    let mut backoff = None;
    loop {
        // Never closed, so this only waits for a connection to end.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        match accept().await {
            Ok((conn, peer)) => {
                backoff = None;
                let Some(ip_slot) = per_ip.take(peer.ip(), limits.per_ip) else {
                    drop(conn);
                    refused(peer);
                    continue;
                };
                let task = handle(conn, peer);
                tokio::spawn(async move {
                    task.await;
                    drop((slot, ip_slot));
                });
            }
            Err(e) => {
                let pause = onair_web::next_backoff(backoff);
                backoff = Some(pause);
                tracing::warn!(error = %e, pause_ms = pause.as_millis() as u64, "rtmp accept failed");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// [`run`] over a TCP listener.
pub async fn serve<H, HF>(listener: tokio::net::TcpListener, limits: Limits, refused: impl Fn(SocketAddr), handle: H)
where
    H: Fn(tokio::net::TcpStream, SocketAddr) -> HF,
    HF: Future<Output = ()> + Send + 'static,
{
    run(|| listener.accept(), limits, refused, handle).await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::{Notify, mpsc};

    use super::*;
    use std::time::Duration;

    #[test]
    fn addresses_count_by_host_ipv6_by_its_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(counted(ip("203.0.113.7")), ip("203.0.113.7"));
        assert_eq!(counted(ip("::ffff:203.0.113.7")), ip("203.0.113.7"));
        assert_eq!(counted(ip("2001:db8:1:2:aaaa::1")), counted(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(counted(ip("2001:db8:1:2::1")), counted(ip("2001:db8:1:3::1")));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_accepts_back_off_instead_of_spinning() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let accept = move || {
            c.fetch_add(1, Ordering::SeqCst);
            async { Err::<((), SocketAddr), _>(std::io::Error::other("too many open files")) }
        };
        let task = tokio::spawn(run(accept, Limits { max: 4, per_ip: 0 }, |_| {}, |_: (), _| async {}));
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
        let server = tokio::spawn(serve(
            listener,
            Limits { max: 2, per_ip: 0 },
            |_| {},
            move |_tcp, peer| {
                let (started, release) = (started.clone(), r.clone());
                async move {
                    let _ = started.send(peer);
                    release.notified().await;
                }
            },
        ));
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

    #[tokio::test]
    async fn one_address_gets_at_most_its_share_and_the_rest_are_closed() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound address");
        let (started, mut started_rx) = mpsc::unbounded_channel();
        let (refused_tx, mut refused_rx) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let r = release.clone();
        let limits = Limits { max: 10, per_ip: 2 };
        let server = tokio::spawn(serve(
            listener,
            limits,
            move |peer| {
                let _ = refused_tx.send(peer);
            },
            move |mut tcp, peer| {
                let (started, release) = (started.clone(), r.clone());
                async move {
                    let _ = started.send(peer);
                    release.notified().await;
                    let _ = tcp.shutdown().await;
                }
            },
        ));
        let within = Duration::from_secs(5);
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
            tokio::time::timeout(within, started_rx.recv()).await.expect("handled").expect("open");
        }
        // The third from the same address is closed without being handled.
        let mut third = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let refused = tokio::time::timeout(within, refused_rx.recv()).await.expect("refused").expect("open");
        assert_eq!(refused.ip(), addr.ip());
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(within, third.read(&mut buf)).await.expect("closed, not left hanging");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert!(started_rx.try_recv().is_err(), "not handled");
        // Once one of the two ends, the address has room again.
        release.notify_one();
        // The handler that was let go closes its connection; then its address has room again.
        let mut closed = 0;
        for tcp in &mut held {
            if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut buf)).await {
                closed += 1;
            }
        }
        assert_eq!(closed, 1, "one handler ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _again = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tokio::time::timeout(within, started_rx.recv()).await.expect("handled again").expect("open");
        assert!(refused_rx.try_recv().is_err());
        server.abort();
    }
}
