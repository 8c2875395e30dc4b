//! A shutdown drains: requests in flight finish, an endless response does not hold the server
//! past the drain time, and nothing new is accepted.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

async fn request(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await.expect("send");
    tcp
}

#[tokio::test]
async fn a_shutdown_finishes_requests_in_flight_and_stops_waiting_for_endless_ones() {
    let endless = || async {
        let ticks = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Some((Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"tick\n")), ()))
        });
        Body::from_stream(ticks)
    };
    // The slow request says when it is in the handler, so the shutdown surely finds it in flight.
    let in_handler = std::sync::Arc::new(tokio::sync::Notify::new());
    let entered = in_handler.clone();
    let slow = move || {
        let entered = entered.clone();
        async move {
            entered.notify_one();
            tokio::time::sleep(Duration::from_millis(400)).await;
            "done"
        }
    };
    let router = Router::new().route("/endless", get(endless)).route("/slow", get(slow));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let drain = Duration::from_secs(1);
    let server = tokio::spawn(onair_web::serve_draining(
        listener,
        router,
        async {
            let _ = stopped.await;
        },
        drain,
    ));

    let mut watcher = request(addr, "/endless").await;
    let mut buf = vec![0u8; 4096];
    let n = watcher.read(&mut buf).await.expect("headers");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let mut inflight = request(addr, "/slow").await;
    tokio::time::timeout(Duration::from_secs(5), in_handler.notified()).await.expect("the request is in flight");
    let asked = Instant::now();
    stop.send(()).expect("server running");

    // The request in flight gets its whole answer.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), inflight.read_to_end(&mut answer))
        .await
        .expect("answered")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"), "{answer}");
    // The endless one does not keep the server: it returns once the drain time is over.
    let served = tokio::time::timeout(Duration::from_secs(5), server).await.expect("bounded").expect("joined");
    assert!(served.is_ok());
    let took = asked.elapsed();
    assert!(took >= drain && took < drain + Duration::from_secs(3), "returned after {took:?}");
    // Nothing new is accepted.
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
}
