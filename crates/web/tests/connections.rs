//! The bounds every server keeps on its connections: a request head that does not arrive in
//! time closes the connection (slowloris), and past the connection cap the server waits for a
//! connection to end before it accepts another.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

async fn start(connections: onair_web::Connections) -> std::net::SocketAddr {
    let router = Router::new().route("/", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(onair_web::serve_with(listener, router, std::future::pending(), Duration::from_secs(1), connections));
    addr
}

/// Reads until the peer closes; returns what came and how long that took.
async fn read_until_closed(tcp: &mut TcpStream, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, tcp.read(&mut buf)).await.expect("the server closes the connection") {
            Ok(0) | Err(_) => return (String::from_utf8_lossy(&got).into_owned(), started.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_request_head_that_does_not_arrive_in_time_closes_the_connection() {
    let timeout = Duration::from_millis(300);
    let addr = start(onair_web::Connections { max: 100, header_read_timeout: timeout }).await;

    // Half a request line, then nothing: closed once the head's time is up.
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: ").await.expect("send");
    let (_, took) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(took >= timeout - Duration::from_millis(50) && took < Duration::from_secs(3), "closed after {took:?}");

    // A connection that never sends a byte is closed the same way.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let (_, took) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "the silent connection was closed after {took:?}");

    // So is one that answered a request and then idles.
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("send");
    let (answer, took) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");
    assert!(took < Duration::from_secs(3), "the idle connection was closed after {took:?}");

    // A prompt client is served as ever.
    let mut prompt = TcpStream::connect(addr).await.expect("connect");
    prompt.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.expect("send");
    let (answer, _) = read_until_closed(&mut prompt, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn past_the_cap_a_connection_waits_for_another_to_end() {
    let addr = start(onair_web::Connections { max: 2, header_read_timeout: Duration::from_secs(30) }).await;
    // Two clients hold their connections open (kept alive after a request each).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(addr).await.expect("connect");
        c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("send");
        let mut buf = [0u8; 1024];
        let n = c.read(&mut buf).await.expect("answer");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(c);
    }
    // A third connects (the kernel's backlog takes it) but is not served while both are held.
    let mut third = TcpStream::connect(addr).await.expect("the backlog takes it");
    third.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.expect("send");
    let mut buf = [0u8; 1024];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await.is_err(),
        "served past the cap"
    );
    // One ends: the third is served.
    drop(held.pop());
    let (answer, _) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
