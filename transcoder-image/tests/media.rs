//! The media path for real: an ffmpeg publisher over RTMP into the worker, the apiserver
//! checking the key, ffmpeg transcoding to an HLS ladder, and the HLS origin serving it.

// Tests fail loudly by design: unwrap/expect are how they say what broke.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use onair_apiserver::{Application, LocalOrchestrator};
use onair_testkit::TestDb;
use onair_transcoder_image::{GatewayConfig, IngestGateway, MediaConfig, MediaWorker};
use serde_json::{Value, json};

struct Env {
    api: String,
    /// The apiserver's state, to drive its background steps (making VODs, retention) by hand.
    state: onair_apiserver::AppState,
    http: reqwest::Client,
    rtmp: String,
    hls: String,
    prefix: String,
    media_dir: tempfile::TempDir,
    _keys: tempfile::TempDir,
    _db: TestDb,
}

async fn env() -> Env {
    env_with(&[]).await
}

/// As `env`, with more apiserver flags (the recordings store: it keeps a recording, and so the
/// workers record, only when it has one).
async fn env_with(api_extra: &[String]) -> Env {
    onair_telemetry::init_test_tracing();
    let db = TestDb::new(&onair_apiserver::MIGRATOR).await.expect("db");
    let keys = tempfile::tempdir().expect("tmp");
    let media_dir = tempfile::tempdir().expect("tmp");
    let prefix = onair_testkit::unique_prefix();
    let nats_prefix = onair_testkit::unique_prefix().replace(':', ".");
    let mut api_args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &db.url,
        "--redis-prefix",
        &prefix,
        "--nats-prefix",
        &nats_prefix,
        "--jwt-keys-dir",
        keys.path().to_str().expect("utf-8"),
        "--background-tasks",
        "false",
        "--internal-token",
        "media-test",
        "--stream-cache-ms",
        "1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    api_args.extend(api_extra.iter().cloned());
    let config = onair_apiserver::ApiConfig::from_args(api_args).expect("config");
    // The media worker's HTTP port is chosen first, so the apiserver's local orchestrator can
    // reach it.
    let media_http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let orch = Arc::new(LocalOrchestrator::new(
        &format!("http://{media_http}"),
        secrecy::SecretString::from("media-test".to_owned()),
        &config.ingest_url,
        &config.playback_base_url,
    ));
    let app = Application::build(config, Some(orch)).await.expect("apiserver");
    let api = format!("http://{}", app.local_addr());
    let state = app.state();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let media = MediaWorker::build(
        MediaConfig::from_args([
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            &media_http.to_string(),
            "--apiserver-url",
            &api,
            "--internal-token",
            "media-test",
            "--media-dir",
            media_dir.path().to_str().expect("utf-8"),
            "--recordings-url",
            media_dir.path().join("recordings").to_str().expect("utf-8"),
            "--ladder",
            "360p,240p",
            "--x264-preset",
            "ultrafast",
            "--x264-preset-free",
            "ultrafast",
            "--reconnect-grace-secs",
            "1",
            "--retention-secs",
            "3",
            "--rtmp-read-timeout-secs",
            "2",
            "--redis-prefix",
            &prefix,
        ])
        .expect("media config"),
    )
    .await
    .expect("media worker");
    let rtmp = format!("rtmp://{}/live", media.rtmp_addr());
    let hls = format!("http://{}/hls", media.http_addr());
    tokio::spawn(media.run_until_stopped(std::future::pending()));
    Env { api, state, http: onair_http::client(), rtmp, hls, prefix, media_dir, _keys: keys, _db: db }
}

impl Env {
    /// A worker as the operator runs it on Kubernetes: one stream, the key's hash from its
    /// Secret. (RTMP base, HTTP base, its media dir.)
    async fn per_stream_worker(&self, stream: &str, key_hash: &str) -> (String, String, tempfile::TempDir) {
        self.per_stream_worker_with(stream, key_hash, &[]).await
    }

    /// As `per_stream_worker`, with more flags (a `--ladder` here replaces the default one).
    async fn per_stream_worker_with(
        &self,
        stream: &str,
        key_hash: &str,
        extra: &[&str],
    ) -> (String, String, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut flags = vec!["--stream-key-hash", key_hash];
        flags.extend_from_slice(extra);
        let (rtmp, base) = spawn_worker(self.worker_args(dir.path(), stream, &flags), std::future::pending()).await;
        (rtmp, base, dir)
    }

    /// A per-stream worker for a stream the apiserver does not know (a LiveStream applied with
    /// kubectl): it trusts its Secret's hash of `key`. (stream id, RTMP base, HTTP base, its media dir.)
    async fn kubectl_stream_worker(&self, key: &str, extra: &[&str]) -> (String, String, String, tempfile::TempDir) {
        let hash = onair_domain::contracts::stream_key::hash_hex(key);
        let stream = uuid::Uuid::new_v4().to_string();
        let mut flags = vec!["--trust-key-hash", "true"];
        flags.extend_from_slice(extra);
        let (rtmp, base, dir) = self.per_stream_worker_with(&stream, &hash, &flags).await;
        (stream, rtmp, base, dir)
    }

    /// The flags every per-stream worker here shares (ports chosen by the OS, a 240p ladder,
    /// the fastest preset); `extra` pairs replace or add flags.
    fn worker_args(&self, dir: &std::path::Path, stream: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--apiserver-url",
            &self.api,
            "--internal-token",
            "media-test",
            "--media-dir",
            dir.to_str().unwrap(),
            "--recordings-url",
            dir.join("recordings").to_str().unwrap(),
            "--ladder",
            "240p",
            "--x264-preset",
            "ultrafast",
            "--x264-preset-free",
            "ultrafast",
            "--redis-prefix",
            &self.prefix,
            "--stream-id",
            stream,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for pair in extra.chunks(2) {
            match args.iter().position(|a| a == pair[0]) {
                Some(i) => args[i + 1] = pair[1].to_string(),
                None => args.extend(pair.iter().map(|s| s.to_string())),
            }
        }
        args
    }

    /// A transcode pod of `stream` making `renditions` from the ingest pod at `ingest`, until
    /// the returned sender is dropped.
    async fn transcoder(
        &self,
        stream: &str,
        ingest: &str,
        part: &str,
        renditions: &str,
    ) -> tokio::sync::oneshot::Sender<()> {
        self.transcoder_with(stream, ingest, part, renditions, &[]).await
    }

    async fn transcoder_with(
        &self,
        stream: &str,
        ingest: &str,
        part: &str,
        renditions: &str,
        extra: &[&str],
    ) -> tokio::sync::oneshot::Sender<()> {
        let dir = tempfile::tempdir().unwrap();
        let mut flags =
            vec!["--role", "transcode", "--ladder", "360p,240p", "--source-url", ingest, "--transcoder-part", part];
        flags.extend(extra);
        // Empty: no flag, the pod waits for the operator's assignment.
        if !renditions.is_empty() {
            flags.extend(["--renditions", renditions]);
        }
        let args = self.worker_args(dir.path(), stream, &flags);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        spawn_worker(args, async move {
            let _ = rx.await;
            drop(dir);
        })
        .await;
        tx
    }

    /// Register `name`, start a stream titled `title`: (access token, stream id, stream key).
    async fn streamer(&self, name: &str, title: &str) -> (String, String, String) {
        self.streamer_with(name, json!({"title": title, "category": "games"})).await
    }

    /// Register `name` and start a stream with the given start request.
    async fn streamer_with(&self, name: &str, start: Value) -> (String, String, String) {
        let token = self.register(name).await;
        let (stream, key) = self.start(&token, start).await;
        (token, stream, key)
    }

    /// Register `name`; its access token.
    async fn register(&self, name: &str) -> String {
        let res = self
            .http
            .post(format!("{}/api/users/register", self.api))
            .json(
                &json!({"username": name, "email": format!("{name}@example.com"), "password": "correct horse battery"}),
            )
            .send()
            .await
            .unwrap();
        res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
    }

    /// Start a stream for `token` with the given start request: (stream id, stream key).
    async fn start(&self, token: &str, start: Value) -> (String, String) {
        let started: Value = self
            .http
            .post(format!("{}/api/streams/start", self.api))
            .bearer_auth(token)
            .json(&start)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let stream = started["stream"]["id"].as_str().unwrap().to_owned();
        let key = started["ingest"]["stream_key"].as_str().unwrap().to_owned();
        (stream, key)
    }
}

use onair_testkit::publish_test_pattern as publish;

/// Start a worker with these flags until `shutdown`: (RTMP base, HTTP base).
async fn spawn_worker(
    args: Vec<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (String, String) {
    let worker = MediaWorker::build(MediaConfig::from_args(args).unwrap()).await.unwrap();
    let rtmp = format!("rtmp://{}/live", worker.rtmp_addr());
    let base = format!("http://{}", worker.http_addr());
    tokio::spawn(worker.run_until_stopped(shutdown));
    (rtmp, base)
}

async fn get_text(http: &reqwest::Client, url: &str) -> Option<(reqwest::header::HeaderMap, String)> {
    let res = http.get(url).send().await.ok()?;
    if !res.status().is_success() {
        return None;
    }
    let headers = res.headers().clone();
    Some((headers, res.text().await.ok()?))
}

#[tokio::test]
async fn an_rtmp_publisher_becomes_an_hls_ladder() {
    let env = env().await;
    let (token, stream, key) = env.streamer("caster", "media e2e").await;

    // A wrong key is refused before any media: the publisher exits with an error.
    let mut wrong = publish(&format!("{}/live_wrongkey", env.rtmp), 3);
    let status = tokio::time::timeout(Duration::from_secs(10), wrong.wait()).await.expect("refused quickly").unwrap();
    assert!(!status.success(), "a wrong key must be refused");

    let mut publisher = publish(&format!("{}/{key}", env.rtmp), 12);
    let master_url = format!("{}/{stream}/master.m3u8?session=viewer-session-1", env.hls);
    // A viewer sent by "went live" asks the moment the API says live, before the encoder's first
    // segment: one request, held until the playlist exists, not a 404 the player gives up on.
    onair_testkit::eventually(Duration::from_secs(15), || async {
        let view: Value =
            env.http.get(format!("{}/api/streams/{stream}", env.api)).send().await.ok()?.json().await.ok()?;
        (view["status"] == "live").then_some(())
    })
    .await;
    let first = env.http.get(&master_url).send().await.unwrap();
    assert_eq!(first.status(), 200, "the first playlist request at stream start plays");
    let (headers, master) =
        onair_testkit::eventually(Duration::from_secs(20), || async { get_text(&env.http, &master_url).await }).await;
    assert_eq!(headers["content-type"], "application/vnd.apple.mpegurl");
    assert_eq!(headers["cache-control"], "public, max-age=1");
    assert_eq!(headers["access-control-allow-origin"], "*");
    for variant in ["360p/index.m3u8", "240p/index.m3u8"] {
        assert!(master.contains(variant), "{master}");
    }
    assert!(
        master.contains("BANDWIDTH=") && master.contains("RESOLUTION=640x360") && master.contains("CODECS="),
        "{master}"
    );

    let playlist_url = format!("{}/{stream}/240p/index.m3u8", env.hls);
    let playlist = onair_testkit::eventually(Duration::from_secs(20), || async {
        get_text(&env.http, &playlist_url).await.map(|(_, t)| t).filter(|t| t.matches(".ts").count() >= 2)
    })
    .await;
    assert!(playlist.contains("#EXT-X-PROGRAM-DATE-TIME"), "{playlist}");
    assert!(playlist.contains("#EXT-X-INDEPENDENT-SEGMENTS") || master.contains("#EXT-X-INDEPENDENT-SEGMENTS"));
    let segment = playlist.lines().find(|l| l.ends_with(".ts")).unwrap();
    let res = env.http.get(format!("{}/{stream}/240p/{segment}", env.hls)).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "video/mp2t");
    assert_eq!(res.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert!(res.bytes().await.unwrap().len() > 1000);
    assert_eq!(env.http.get(format!("{}/{stream}/../../etc/passwd", env.hls)).send().await.unwrap().status(), 404);

    // The stream is live, and the playlist request counted a viewer.
    let view: Value =
        env.http.get(format!("{}/api/streams/{stream}", env.api)).send().await.unwrap().json().await.unwrap();
    assert_eq!(view["status"], "live");
    assert_eq!(view["viewers"], 1);

    // The encoder's health reaches the apiserver (the owner's analytics).
    onair_testkit::eventually(Duration::from_secs(15), || async {
        let a: Value = env
            .http
            .get(format!("{}/api/streams/{stream}/analytics", env.api))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (a["encode_speed"].as_f64()? > 0.0).then_some(())
    })
    .await;

    // A second publisher with the same key is refused while the first is on.
    let mut second = publish(&format!("{}/{key}", env.rtmp), 3);
    let status = tokio::time::timeout(Duration::from_secs(10), second.wait()).await.expect("refused quickly").unwrap();
    assert!(!status.success(), "a second publisher must be refused");

    // A thumbnail for discovery.
    let thumb = onair_testkit::eventually(Duration::from_secs(8), || async {
        let res = env.http.get(format!("{}/{stream}/thumb.jpg", env.hls)).send().await.ok()?;
        (res.headers().get("content-type")? == "image/jpeg").then_some(res)
    })
    .await;
    assert!(thumb.bytes().await.unwrap().starts_with(&[0xff, 0xd8]), "a JPEG");

    // The publisher finishes; after the grace period the stream ends and the playlists close.
    let _ = tokio::time::timeout(Duration::from_secs(20), publisher.wait()).await;
    onair_testkit::eventually(Duration::from_secs(20), || async {
        let v: Value =
            env.http.get(format!("{}/api/streams/{stream}", env.api)).send().await.ok()?.json().await.ok()?;
        (v["status"] == "ended").then_some(())
    })
    .await;
    let playlist = get_text(&env.http, &playlist_url).await.unwrap().1;
    assert!(playlist.trim_end().ends_with("#EXT-X-ENDLIST"), "{playlist}");
}

/// Stop through the API: the local orchestrator tells the worker, which disconnects the
/// publisher, closes the playlists at once (no grace period) and refuses the key afterwards.
#[tokio::test]
async fn stopping_a_stream_stops_its_media_at_once() {
    let env = env().await;
    let (token, stream, key) = env.streamer("stopper", "stop me").await;
    let mut publisher = publish(&format!("{}/{key}", env.rtmp), 60);
    let playlist_url = format!("{}/{stream}/240p/index.m3u8", env.hls);
    onair_testkit::eventually(Duration::from_secs(20), || async {
        get_text(&env.http, &playlist_url).await.map(|(_, t)| t).filter(|t| t.contains(".ts"))
    })
    .await;

    let res = env.http.post(format!("{}/api/streams/{stream}/stop", env.api)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let exited = tokio::time::timeout(Duration::from_secs(10), publisher.wait()).await;
    assert!(exited.is_ok(), "the publisher is disconnected, not left streaming for its 60 s");
    let playlist = onair_testkit::eventually(Duration::from_secs(10), || async {
        get_text(&env.http, &playlist_url).await.map(|(_, t)| t).filter(|t| t.contains("#EXT-X-ENDLIST"))
    })
    .await;
    assert!(playlist.trim_end().ends_with("#EXT-X-ENDLIST"));
    // After the retention period (3 s here) the stream's folder is gone: nothing grows forever.
    onair_testkit::eventually(Duration::from_secs(10), || async {
        (env.http.get(&playlist_url).send().await.ok()?.status() == 404).then_some(())
    })
    .await;
    let view: Value =
        env.http.get(format!("{}/api/streams/{stream}", env.api)).send().await.unwrap().json().await.unwrap();
    assert_eq!(view["status"], "ended");
}

/// Sends `signal` to this test's transcoder (its command line names the test's media folder, the
/// publisher's does not) once its playlist has two segments, and waits up to `within` for the
/// playlist to go on after a discontinuity. Returns how long that took; checks the publisher
/// stayed connected and the stream stayed live.
async fn transcoder_replaced_after(name: &str, signal: &str, within: Duration) -> Duration {
    let env = env().await;
    let (_, stream, key) = env.streamer(name, "encoder fault").await;
    let mut publisher = publish(&format!("{}/{key}", env.rtmp), 90);
    let playlist_url = format!("{}/{stream}/240p/index.m3u8", env.hls);
    let segments = |t: &str| t.lines().filter(|l| l.ends_with(".ts")).map(str::to_owned).collect::<Vec<_>>();
    let before = onair_testkit::eventually(Duration::from_secs(20), || async {
        get_text(&env.http, &playlist_url).await.map(|(_, t)| t).filter(|t| segments(t).len() >= 2)
    })
    .await;
    let last_before = segments(&before).last().cloned().unwrap();

    let dir = env.media_dir.path().to_str().unwrap().to_owned();
    let sent = std::process::Command::new("pkill").args([signal, "-f", &dir]).status().unwrap();
    assert!(sent.success(), "a transcoder was running");
    let at = std::time::Instant::now();

    let after = onair_testkit::eventually(within, || async {
        get_text(&env.http, &playlist_url)
            .await
            .map(|(_, t)| t)
            .filter(|t| t.contains("#EXT-X-DISCONTINUITY") && segments(t).last() > Some(&last_before))
    })
    .await;
    let took = at.elapsed();
    assert!(segments(&after).len() >= 2, "{after}");
    assert!(publisher.try_wait().unwrap().is_none(), "the publisher stayed connected");
    let view: Value =
        env.http.get(format!("{}/api/streams/{stream}", env.api)).send().await.unwrap().json().await.unwrap();
    assert_eq!(view["status"], "live");
    let _ = publisher.kill().await;
    took
}

/// ffmpeg dying mid-stream is restarted without dropping the publisher: the playlists go on
/// (with a discontinuity) and the stream stays live.
#[tokio::test]
async fn a_crashed_transcoder_is_restarted_under_the_same_publisher() {
    transcoder_replaced_after("crashy", "-9", Duration::from_secs(20)).await;
}

/// A transcoder that stops taking input (alive, but stuck: here frozen with SIGSTOP) is
/// replaced after 10 s without input; the publisher stays and the playlist goes on.
#[tokio::test]
async fn a_hung_transcoder_is_restarted_under_the_same_publisher() {
    let took = transcoder_replaced_after("hungry", "-STOP", Duration::from_secs(45)).await;
    // Not a crash restart: the frozen encoder was given its 10 s (plus the pipe's fill time).
    assert!(took >= Duration::from_secs(10), "restarted after {took:?}");
}

/// Garbage on the RTMP port is refused at the handshake and costs the worker nothing.
#[tokio::test]
async fn garbage_on_the_rtmp_port_is_refused() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let env = env().await;
    let addr = env.rtmp.trim_start_matches("rtmp://").trim_end_matches("/live").to_owned();
    for garbage in [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), vec![0xff; 4096], vec![3; 10]] {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(&garbage).await.unwrap();
        let mut buf = vec![0u8; 8192];
        // Either closed at once, or (a valid version byte followed by too little) answered and
        // waiting: in no case does the worker accept media or fall over.
        let closed = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => continue,
                }
            }
        })
        .await
        .unwrap_or(false);
        if garbage[0] != 3 {
            assert!(closed, "a non-RTMP client is disconnected");
        }
    }
    let health = env.http.get(format!("{}/healthz", env.hls.trim_end_matches("/hls"))).send().await.unwrap();
    assert_eq!(health.status(), 200, "the worker is unaffected");
}

/// A client trickling its handshake a byte a second (every read within the read timeout) is
/// cut off at the publish deadline (3 s here), not kept for the 1,536 s its C1 would take.
async fn assert_trickler_cut_off(addr: &str) {
    use tokio::io::AsyncWriteExt as _;
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    let trickle = async {
        loop {
            if slow.write_all(&[3]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(8), trickle).await.expect("cut off");
    let took = started.elapsed();
    // (The closed socket shows on the next write, a second or two later.)
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(7), "cut off after {took:?}");
}

/// Three connections from this address are held (idle, within the deadline); a fourth is
/// closed at once, and `metrics` (the listener's `/metrics`) counts it under `refused_metric`.
async fn assert_address_gets_three(http: &reqwest::Client, addr: &str, metrics: &str, refused_metric: &str) {
    use tokio::io::AsyncReadExt as _;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // (Accepted in order: the fourth comes after the three. All of this runs well within the
    // 3 s deadline that will cut the three off.)
    let mut fourth = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_millis(1500), fourth.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "the fourth is closed at once: {read:?}");
    for tcp in &mut held {
        let read = tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut buf)).await;
        assert!(read.is_err(), "the first three are still open");
    }
    let text = http.get(metrics).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(&format!(r#"{refused_metric}{{reason="too_many_from_address"}} 1"#)), "{text}");
}

/// The media worker's RTMP port is bounded: a trickler is cut off at the publish deadline, one
/// address gets at most its share; the worker is unaffected.
#[tokio::test]
async fn trickling_and_crowding_rtmp_clients_are_cut_off() {
    let env = env().await;
    let stream = uuid::Uuid::new_v4().to_string();
    let (rtmp, base, _dir) = env
        .per_stream_worker_with(
            &stream,
            &"0".repeat(64),
            &["--rtmp-read-timeout-secs", "5", "--rtmp-publish-deadline-secs", "3", "--rtmp-max-per-ip", "3"],
        )
        .await;
    let addr = rtmp.trim_start_matches("rtmp://").trim_end_matches("/live").to_owned();
    assert_trickler_cut_off(&addr).await;
    assert_address_gets_three(&env.http, &addr, &format!("{base}/metrics"), "onair_media_refused_publishers_total")
        .await;
    let health = env.http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the worker is unaffected");
}

/// The ingest gateway's RTMP port has the same bounds.
#[tokio::test]
async fn the_ingest_gateway_cuts_off_tricklers_and_crowds() {
    let env = env().await;
    let gw = IngestGateway::build(
        GatewayConfig::from_args([
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--apiserver-url",
            &env.api,
            "--internal-token",
            "media-test",
            "--read-timeout-secs",
            "5",
            "--publish-deadline-secs",
            "3",
            "--max-per-ip",
            "3",
        ])
        .unwrap(),
    )
    .await
    .unwrap();
    let (addr, http) = (gw.rtmp_addr().to_string(), format!("http://{}", gw.http_addr()));
    tokio::spawn(gw.run_until_stopped(std::future::pending()));
    assert_trickler_cut_off(&addr).await;
    assert_address_gets_three(&env.http, &addr, &format!("{http}/metrics"), "onair_ingest_gateway_refused_total").await;
}

/// A truncated handshake is dropped after the read timeout; codecs other than H.264 + AAC are
/// refused with a reason; neither touches the worker.
#[tokio::test]
async fn truncated_handshakes_and_unsupported_codecs_are_refused() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let env = env().await;
    let addr = env.rtmp.trim_start_matches("rtmp://").trim_end_matches("/live").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(&[3u8; 100]).await.unwrap(); // version byte and a fraction of C1, then silence
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 8192];
    let closed = tokio::time::timeout(Duration::from_secs(6), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a stalled handshake is dropped");
    assert!(started.elapsed() >= Duration::from_secs(1));

    // (zerolatency: x264's lookahead would otherwise hold packets past the test's 2 s read timeout)
    for (name, codecs) in [
        ("flvvideo", ["-c:v", "flv1", "-c:a", "aac", "-tune", "zerolatency"]),
        ("mp3audio", ["-c:v", "libx264", "-c:a", "libmp3lame", "-tune", "zerolatency"]),
    ] {
        let (_, _, key) = env.streamer(name, "codecs").await;
        let mut publisher = tokio::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=320x240:rate=15",
                "-f",
                "lavfi",
            ])
            .args(["-i", "sine=frequency=440:sample_rate=44100", "-t", "20"])
            .args(codecs)
            .args(["-f", "flv"])
            .arg(format!("{}/{key}", env.rtmp))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(10), publisher.wait())
            .await
            .expect("disconnected, not left running");
        assert!(!status.unwrap().success(), "{name} is refused");
    }
    let metrics = env
        .http
        .get(format!("{}/metrics", env.hls.trim_end_matches("/hls")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(r#"onair_media_refused_publishers_total{reason="unsupported_codec"} 2"#), "{metrics}");
}

/// The streamer's quality choice caps the ladder: a 240p stream gets no 360p rendition.
#[tokio::test]
async fn the_chosen_quality_caps_the_ladder() {
    let env = env().await;
    let (_, stream, key) =
        env.streamer_with("lowq", json!({"title": "low quality", "category": "games", "quality": "240p"})).await;
    let _publisher = publish(&format!("{}/{key}", env.rtmp), 8);
    let master = onair_testkit::eventually(Duration::from_secs(20), || async {
        get_text(&env.http, &format!("{}/{stream}/master.m3u8", env.hls)).await.map(|(_, t)| t)
    })
    .await;
    assert!(master.contains("240p/index.m3u8") && !master.contains("360p"), "{master}");
}

/// A per-stream worker (what the operator runs on Kubernetes) takes only its own stream's key,
/// checks it against the hash from the LiveStream's Secret, and reports its state to the
/// operator over the internal route.
#[tokio::test]
async fn a_per_stream_worker_takes_only_its_stream_and_reports_its_state() {
    let env = env().await;
    let (_, stream_a, key_a) = env.streamer("podowner", "mine").await;
    let (_, _, key_b) = env.streamer("podother", "not mine").await;
    let hash = onair_domain::contracts::stream_key::hash_hex(&key_a);
    let (rtmp, base, _dir) = env.per_stream_worker(&stream_a, &hash).await;
    let state_url = format!("{base}/internal/streams/{stream_a}");
    let state = |token: &'static str| {
        let req = env.http.get(&state_url).header("x-onair-internal-token", token);
        async move { req.send().await.unwrap() }
    };
    assert_eq!(state("wrong").await.status(), 401, "the state route needs the internal token");
    assert_eq!(env.http.get(format!("{base}/readyz")).send().await.unwrap().status(), 200);

    // Another stream's valid key never gets this pod's slot.
    let mut other = publish(&format!("{rtmp}/{key_b}"), 30);
    let refused = tokio::time::timeout(Duration::from_secs(10), other.wait()).await;
    assert!(refused.is_ok_and(|s| !s.unwrap().success()), "another stream's publisher is refused");
    let idle: Value = state("media-test").await.json().await.unwrap();
    assert_eq!(
        idle,
        json!({"publishing": false, "stopped": false, "renditions": [], "viewers": 0, "level": "Full", "encodeSpeed": null, "transcoders": [], "sourceHeight": null, "playable": false, "recording": null})
    );

    let mut mine = publish(&format!("{rtmp}/{key_a}"), 60);
    let live = onair_testkit::eventually(Duration::from_secs(20), || async {
        let v: Value = state("media-test").await.json().await.ok()?;
        (v["publishing"] == true && v["renditions"] == json!(["240p"]) && v["playable"] == true).then_some(v)
    })
    .await;
    assert_eq!(live["stopped"], false);
    // "Playable" is a promise: the master lists a rendition and the player's first request plays.
    let (_, master) = get_text(&env.http, &format!("{base}/hls/{stream_a}/master.m3u8")).await.expect("master");
    assert!(master.contains("#EXT-X-STREAM-INF"), "{master}");
    let res =
        env.http.post(format!("{state_url}/stop")).header("x-onair-internal-token", "media-test").send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert!(tokio::time::timeout(Duration::from_secs(10), mine.wait()).await.is_ok(), "stop disconnects the publisher");
    let stopped: Value = state("media-test").await.json().await.unwrap();
    assert_eq!((stopped["stopped"].clone(), stopped["publishing"].clone()), (json!(true), json!(false)));
}

/// A LiveStream applied with kubectl has no apiserver stream: its pod (told to trust the hash)
/// takes the publisher whose key matches the Secret's hash, and refuses any other key.
#[tokio::test]
async fn a_per_stream_worker_trusts_its_secrets_hash_for_streams_the_apiserver_does_not_know() {
    let env = env().await;
    let key = "live_applied_with_kubectl_0123456789";
    let (stream, rtmp, base, _dir) = env.kubectl_stream_worker(key, &[]).await;

    let mut wrong = publish(&format!("{rtmp}/live_not_the_key"), 30);
    let refused = tokio::time::timeout(Duration::from_secs(10), wrong.wait()).await;
    assert!(refused.is_ok_and(|s| !s.unwrap().success()), "a key that does not match the hash is refused");

    let playlist = format!("{base}/hls/{stream}/240p/index.m3u8");
    // Before the first segment a player on another origin must still be able to read the 404.
    let early = env.http.get(&playlist).send().await.unwrap();
    assert_eq!(
        (early.status().as_u16(), &early.headers()["access-control-allow-origin"]),
        (404, &"*".parse().unwrap())
    );
    let _publisher = publish(&format!("{rtmp}/{key}"), 30);
    onair_testkit::eventually(Duration::from_secs(20), || async {
        get_text(&env.http, &playlist).await.map(|(_, t)| t).filter(|t| t.contains(".ts"))
    })
    .await;
}

/// The autoscaler's ladder levels, applied to a live stream: the encoder switches at a keyframe
/// under the same publisher — lowest rendition only, the source remuxed without encoding, then
/// the full ladder again.
/// Overload on one machine: an encoder that cannot keep up sheds a level at a time until the
/// stream passes its source through, and the playlist stays at the live edge instead of falling
/// further behind. The encoder is real ffmpeg made slower than real time: encoding runs read
/// their input at half speed (`-readrate 0.5`), passthrough (no x264) at full speed.
#[tokio::test]
async fn an_encoder_under_real_time_sheds_its_ladder_and_the_delay_stays_bounded() {
    let env = env().await;
    let (_, stream, key) = env.streamer("overloaded", "too slow").await;
    let hash = onair_domain::contracts::stream_key::hash_hex(&key);
    let bin = tempfile::tempdir().unwrap();
    let wrapper = bin.path().join("slow-ffmpeg");
    std::fs::write(&wrapper, "#!/bin/sh\ncase \"$*\" in\n  *libx264*) exec ffmpeg -readrate 0.5 \"$@\" ;;\n  *) exec ffmpeg \"$@\" ;;\nesac\n")
        .unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&wrapper).status().unwrap();
    let wrapper = wrapper.to_str().unwrap();
    let flags = ["--ladder", "360p,240p", "--ffmpeg", wrapper, "--shed-after-secs", "3"];
    let (rtmp, base, _dir) = env.per_stream_worker_with(&stream, &hash, &flags).await;
    let state_url = format!("{base}/internal/streams/{stream}");
    let mut publisher = publish(&format!("{rtmp}/{key}"), 60);
    let state = |url: String, http: reqwest::Client| async move {
        let v: Value =
            http.get(&url).header("x-onair-internal-token", "media-test").send().await.ok()?.json().await.ok()?;
        Some(v)
    };
    let shed =
        onair_testkit::eventually(Duration::from_secs(45), || {
            let (url, http) = (state_url.clone(), env.http.clone());
            async move {
                state(url, http).await.filter(|v| v["level"] == "Passthrough" && v["renditions"] == json!(["source"]))
            }
        })
        .await;
    assert_eq!(shed["publishing"], true, "the publisher stays: {shed}");
    let metrics = env.http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("onair_media_ladder_sheds_total 2"), "Full -> Reduced -> Passthrough: {metrics}");

    // The source playlist keeps up with the clock: its newest segment is seconds old, not minutes.
    let playlist = format!("{base}/hls/{stream}/source/index.m3u8");
    let newest = onair_testkit::eventually(Duration::from_secs(20), || async {
        let text = get_text(&env.http, &playlist).await?.1;
        let last = text.lines().filter_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:")).next_back()?.to_owned();
        // ffmpeg writes the offset as +0000, which RFC 3339 parsing refuses.
        chrono::DateTime::parse_from_str(&last, "%Y-%m-%dT%H:%M:%S%.f%z").ok()
    })
    .await;
    let behind = chrono::Utc::now().signed_duration_since(newest);
    assert!(behind < chrono::Duration::seconds(6), "the source playlist is {behind} behind the clock");
    let _ = publisher.kill().await;
}

#[tokio::test]
async fn ladder_levels_switch_under_the_same_publisher() {
    let env = env().await;
    let (_, stream, key) = env.streamer("leveled", "levels").await;
    let hash = onair_domain::contracts::stream_key::hash_hex(&key);
    let (rtmp, base, _dir) = env.per_stream_worker_with(&stream, &hash, &["--ladder", "360p,240p"]).await;
    let state_url = format!("{base}/internal/streams/{stream}");
    let level = |l: &str| {
        let req = env
            .http
            .put(format!("{state_url}/level"))
            .header("x-onair-internal-token", "media-test")
            .body(format!("{{\"level\":\"{l}\"}}"));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let renditions = |want: Value| {
        let url = state_url.clone();
        let http = env.http.clone();
        async move {
            onair_testkit::eventually(Duration::from_secs(20), || {
                let (url, http, want) = (url.clone(), http.clone(), want.clone());
                async move {
                    let v: Value = http
                        .get(&url)
                        .header("x-onair-internal-token", "media-test")
                        .send()
                        .await
                        .ok()?
                        .json()
                        .await
                        .ok()?;
                    (v["renditions"] == want).then_some(v)
                }
            })
            .await
        }
    };
    let mut publisher = publish(&format!("{rtmp}/{key}"), 60);
    let full = renditions(json!(["360p", "240p"])).await;
    assert_eq!(full["level"], "Full");

    assert_eq!(level("Reduced").await, 204);
    renditions(json!(["240p"])).await;
    assert_eq!(level("Passthrough").await, 204);
    let pass = renditions(json!(["source"])).await;
    assert_eq!(pass["level"], "Passthrough");
    let source = format!("{base}/hls/{stream}/source/index.m3u8");
    onair_testkit::eventually(Duration::from_secs(20), || async {
        get_text(&env.http, &source).await.map(|(_, t)| t).filter(|t| t.contains(".ts"))
    })
    .await;
    assert_eq!(level("Full").await, 204);
    renditions(json!(["360p", "240p"])).await;
    assert!(publisher.try_wait().unwrap().is_none(), "the publisher stayed connected through every switch");
    assert!(pass["publishing"] == true);

    // Bad input: a clear refusal, nothing changed.
    assert_eq!(level("Huge").await, 400);
    let res = env.http.put(format!("{state_url}/level")).body("{\"level\":\"Full\"}").send().await.unwrap();
    assert_eq!(res.status(), 401);
}

/// Without `--trust-key-hash` the apiserver has the last word: after the streamer rotates the
/// key, the old one is refused even though the pod's Secret hash still matches it.
#[tokio::test]
async fn a_rotated_key_is_refused_by_a_per_stream_worker() {
    let env = env().await;
    let (token, stream, old_key) = env.streamer("rotator", "rotating").await;
    let hash = onair_domain::contracts::stream_key::hash_hex(&old_key);
    let (rtmp, _base, _dir) = env.per_stream_worker(&stream, &hash).await;
    let res = env.http.post(format!("{}/api/users/me/stream-key", env.api)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let mut stale = publish(&format!("{rtmp}/{old_key}"), 30);
    let refused = tokio::time::timeout(Duration::from_secs(10), stale.wait()).await;
    assert!(refused.is_ok_and(|s| !s.unwrap().success()), "the old key stops working at once");
}

/// One RTMP address for every streamer: the gateway checks the key (a wrong one never reaches a
/// pod), holds the publisher while the stream's pod is not up yet, then forwards the session to
/// it message by message.
#[tokio::test]
async fn the_ingest_gateway_checks_keys_holds_publishers_and_forwards_to_the_pod() {
    let env = env().await;
    let (_, stream, key) = env.streamer("gated", "through the gateway").await;
    let hash = onair_domain::contracts::stream_key::hash_hex(&key);
    // The pod's address is known, but nothing listens there yet.
    let pod = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let gw = IngestGateway::build(
        GatewayConfig::from_args([
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--apiserver-url",
            &env.api,
            "--internal-token",
            "media-test",
            "--upstream",
            &pod,
            "--hold-secs",
            "20",
        ])
        .unwrap(),
    )
    .await
    .unwrap();
    let (gw_rtmp, gw_http) = (format!("rtmp://{}/live", gw.rtmp_addr()), format!("http://{}", gw.http_addr()));
    tokio::spawn(gw.run_until_stopped(std::future::pending()));

    let mut wrong = publish(&format!("{gw_rtmp}/live_not_a_key"), 30);
    let refused = tokio::time::timeout(Duration::from_secs(10), wrong.wait()).await;
    assert!(refused.is_ok_and(|s| !s.unwrap().success()), "a wrong key is refused at the gateway");

    let mut publisher = publish(&format!("{gw_rtmp}/{key}"), 60);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(publisher.try_wait().unwrap().is_none(), "held, not refused, while the pod starts");
    let (_pod_rtmp, pod_http, _dir) = env.per_stream_worker_with(&stream, &hash, &["--rtmp-listen", &pod]).await;
    let playlist = format!("{pod_http}/hls/{stream}/240p/index.m3u8");
    onair_testkit::eventually(Duration::from_secs(30), || async {
        get_text(&env.http, &playlist).await.map(|(_, t)| t).filter(|t| t.contains(".ts"))
    })
    .await;
    assert!(publisher.try_wait().unwrap().is_none(), "the publisher streams through the gateway");
    let metrics = env.http.get(format!("{gw_http}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("onair_ingest_gateway_refused_total{reason=\"unknown_key\"} 1"), "{metrics}");
    assert!(metrics.contains("onair_ingest_gateway_held_total 1"), "{metrics}");
    assert!(metrics.contains("onair_ingest_gateway_forwarding 1"), "{metrics}");
}

/// Split roles as the operator runs them: an ingest pod takes the publisher, remuxes the source
/// and is the stream's origin; two transcode pods follow its relay, one rendition each, and
/// upload to it. Viewers get one master playlist of what is live. Losing a transcode pod takes
/// only its rendition away, its replacement brings it back, and a publisher that reconnects
/// is followed by every transcoder.
/// Split roles with LL-HLS (a LiveStream's `spec.latency: Low`): transcode pods stream their
/// renditions' fragments to the ingest pod as they are cut, and the ingest pod serves one LL-HLS
/// master over the source and every part's renditions; a rendition the operator takes away ends.
#[tokio::test]
async fn split_roles_stream_ll_hls_parts_to_the_ingest_pod() {
    let env = env().await;
    let (_, stream, key) = env.streamer("llsplit", "split ll").await;
    let hash = onair_domain::contracts::stream_key::hash_hex(&key);
    let low = ["--latency", "low"];
    let (rtmp, ingest, _dir) = env
        .per_stream_worker_with(&stream, &hash, &["--role", "ingest", "--ladder", "360p,240p", "--latency", "low"])
        .await;
    let upload = |rendition: &str| {
        env.http
            .put(format!("{ingest}/internal/streams/{stream}/ll/{rendition}"))
            .header("x-onair-internal-token", "media-test")
    };
    assert_eq!(upload("360p").body("x").send().await.unwrap().status(), 400, "a transcoder names its part");
    let _t0 = env.transcoder_with(&stream, &ingest, "t0", "360p", &low).await;
    let _t1 = env.transcoder_with(&stream, &ingest, "t1", "240p", &low).await;
    let mut publisher = publish(&format!("{rtmp}/{key}"), 120);

    let master_url = format!("{ingest}/hls/{stream}/master.m3u8");
    let master = onair_testkit::eventually(Duration::from_secs(40), || async {
        let (_, m) = get_text(&env.http, &master_url).await?;
        ["source/index.m3u8", "360p/index.m3u8", "240p/index.m3u8"].iter().all(|v| m.contains(v)).then_some(m)
    })
    .await;
    assert!(master.contains("CODECS=\"avc1."), "{master}");
    for v in ["source", "360p", "240p"] {
        let url = format!("{ingest}/hls/{stream}/{v}/index.m3u8");
        let playlist = onair_testkit::eventually(Duration::from_secs(20), || async {
            get_text(&env.http, &url).await.map(|(_, t)| t).filter(|t| t.contains("#EXTINF"))
        })
        .await;
        assert!(playlist.contains("#EXT-X-PART:") && playlist.contains("#EXT-X-PRELOAD-HINT"), "{v}: {playlist}");
        let part = playlist
            .lines()
            .filter_map(|l| l.split("URI=\"").nth(1)?.split('"').next())
            .find(|u| u.contains('.') && u.ends_with(".m4s"))
            .unwrap();
        let res = env.http.get(format!("{ingest}/hls/{stream}/{v}/{part}")).send().await.unwrap();
        assert_eq!(
            (res.status().as_u16(), res.headers()["content-type"].to_str().unwrap()),
            (200, "video/mp4"),
            "{v}/{part}"
        );
    }
    assert!(
        get_text(&env.http, &format!("{ingest}/hls/{stream}/360p/index.m3u8"))
            .await
            .unwrap()
            .1
            .contains("#EXT-X-RENDITION-REPORT:URI=\"../240p/index.m3u8\""),
        "a transcoded rendition reports the others, whoever made them"
    );

    // The operator takes 240p away: it ends for the players on it, new ones are not offered it,
    // and its transcoder's running upload is cut off.
    let assign = |body: Value| {
        let req = env
            .http
            .put(format!("{ingest}/internal/streams/{stream}/transcoders"))
            .header("x-onair-internal-token", "media-test");
        async move { req.json(&body).send().await.unwrap().status() }
    };
    assert_eq!(assign(json!({"t0": ["360p"], "t1": ["240p"]})).await, 204, "what the operator assigned");
    assert_eq!(assign(json!({"t0": ["360p"], "t1": []})).await, 204);
    let ended = format!("{ingest}/hls/{stream}/240p/index.m3u8");
    onair_testkit::eventually(Duration::from_secs(10), || async {
        get_text(&env.http, &ended).await.map(|(_, t)| t).filter(|t| t.contains("#EXT-X-ENDLIST"))
    })
    .await;
    let (_, master) = get_text(&env.http, &master_url).await.unwrap();
    assert!(!master.contains("240p/") && master.contains("360p/"), "{master}");
    assert_eq!(upload("240p").header("x-onair-transcoder-part", "t1").body("x").send().await.unwrap().status(), 410);

    // The stream ends: no late upload (an encoder's last bytes, a stuck transcoder) reopens it.
    let stop = env
        .http
        .post(format!("{ingest}/internal/streams/{stream}/stop"))
        .header("x-onair-internal-token", "media-test")
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status(), 204);
    let late = upload("source").body("x").send().await.unwrap();
    assert_eq!(late.status(), 410);
    assert_eq!(late.json::<Value>().await.unwrap()["error"]["code"], "stream_ended");
    let (_, master) = get_text(&env.http, &master_url).await.expect("an ended stream's master stays");
    assert!(master.contains("360p/"), "{master}");
    let _ = publisher.kill().await;
}

#[tokio::test]
async fn split_roles_relay_the_source_to_transcode_pods_and_merge_their_renditions() {
    let env = env().await;
    let (_, stream, key) = env.streamer("splitter", "split roles").await;
    let hash = onair_domain::contracts::stream_key::hash_hex(&key);
    let (rtmp, ingest, dir) =
        env.per_stream_worker_with(&stream, &hash, &["--role", "ingest", "--ladder", "360p,240p"]).await;
    let source_url = format!("{ingest}/internal/streams/{stream}/source");
    let early = env.http.get(&source_url).header("x-onair-internal-token", "media-test").send().await.unwrap();
    assert_eq!(early.status(), 404, "no source before a publisher");
    assert_eq!(env.http.get(&source_url).send().await.unwrap().status(), 401, "the relay needs the internal token");
    let upload = env.http.put(format!("{ingest}/internal/streams/{stream}/hls/source/index.m3u8"));
    let refused = upload.header("x-onair-internal-token", "media-test").body("#EXTM3U").send().await.unwrap();
    assert_eq!(refused.status(), 400, "a transcoder cannot overwrite the source");

    let _t0 = env.transcoder(&stream, &ingest, "t0", "360p").await;
    let t1 = env.transcoder(&stream, &ingest, "t1", "240p").await;
    let mut publisher = publish(&format!("{rtmp}/{key}"), 120);

    let master_url = format!("{ingest}/hls/{stream}/master.m3u8");
    let variants = |m: &str| {
        let mut v: Vec<String> = m.lines().filter(|l| !l.starts_with('#')).map(str::to_owned).collect();
        v.sort();
        v
    };
    let all = ["240p/index.m3u8", "360p/index.m3u8", "source/index.m3u8"];
    onair_testkit::eventually(Duration::from_secs(40), || async {
        let (_, m) = get_text(&env.http, &master_url).await?;
        (variants(&m) == all).then_some(())
    })
    .await;
    // Every variant's segments come from the ingest pod's origin.
    for v in ["source", "360p", "240p"] {
        let (_, playlist) = get_text(&env.http, &format!("{ingest}/hls/{stream}/{v}/index.m3u8")).await.unwrap();
        let seg = playlist.lines().find(|l| l.ends_with(".ts")).unwrap();
        let res = env.http.get(format!("{ingest}/hls/{stream}/{v}/{seg}")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{v}/{seg}");
        assert!(res.bytes().await.unwrap().len() > 1000);
    }
    let state_url = format!("{ingest}/internal/streams/{stream}");
    let state = || async {
        env.http
            .get(&state_url)
            .header("x-onair-internal-token", "media-test")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let s = onair_testkit::eventually(Duration::from_secs(10), || async {
        let s = state().await;
        s["transcoders"]
            .as_array()
            .is_some_and(|t| t.len() == 2 && t.iter().all(|t| t["encodeSpeed"].is_number()))
            .then_some(s)
    })
    .await;
    assert_eq!(s["renditions"], json!(["source", "360p", "240p"]));
    assert_eq!(s["sourceHeight"], 360, "the operator sizes the ladder to the source");
    assert_eq!(
        (s["transcoders"][0]["part"].clone(), s["transcoders"][0]["renditions"].clone()),
        (json!("t0"), json!(["360p"]))
    );
    // The ingest pod makes the discovery thumbnail without encoding anything.
    let thumb = dir.path().join(&stream).join("thumb.jpg");
    onair_testkit::eventually(Duration::from_secs(15), || async { thumb.exists().then_some(()) }).await;

    // The operator takes 240p away: its playlist ends for the players on it, new players are
    // not offered it, and the transcoder still finishing cannot reopen it.
    let assign = |body: Value| {
        let req = env.http.put(format!("{state_url}/transcoders")).header("x-onair-internal-token", "media-test");
        async move { req.json(&body).send().await.unwrap().status() }
    };
    assert_eq!(assign(json!({"t0": ["360p"], "t1": ["../etc"]})).await, 400);
    assert_eq!(assign(json!({"t0": ["360p"], "t1": ["240p"]})).await, 204);
    let intruder = env
        .http
        .put(format!("{ingest}/internal/streams/{stream}/hls/240p/index.m3u8"))
        .header("x-onair-internal-token", "media-test")
        .header("x-onair-transcoder-part", "t0")
        .body("#EXTM3U\n")
        .send()
        .await
        .unwrap();
    assert_eq!(intruder.status(), 409, "only the part a rendition is assigned to writes it");
    let put = |path: &str, part: Option<&str>| {
        let mut req = env
            .http
            .put(format!("{ingest}/internal/streams/{stream}/hls/{path}"))
            .header("x-onair-internal-token", "media-test")
            .body("#EXTM3U\n");
        if let Some(p) = part {
            req = req.header("x-onair-transcoder-part", p);
        }
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(put("240p/index.m3u8", None).await, 400, "an upload names its part");
    assert_eq!(put("master-t1.m3u8", Some("t0")).await, 409, "a part writes only its own master part");
    let other = uuid::Uuid::new_v4();
    let elsewhere = env
        .http
        .get(format!("{ingest}/internal/streams/{other}"))
        .header("x-onair-internal-token", "media-test")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404, "a per-stream pod knows only its stream");
    assert_eq!(assign(json!({"t0": ["360p"], "t1": []})).await, 204);
    let p240 = format!("{ingest}/hls/{stream}/240p/index.m3u8");
    let ended = get_text(&env.http, &p240).await.unwrap().1;
    assert!(ended.ends_with("#EXT-X-ENDLIST\n"), "{ended}");
    let (_, m) = get_text(&env.http, &master_url).await.unwrap();
    assert_eq!(variants(&m), ["360p/index.m3u8", "source/index.m3u8"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(get_text(&env.http, &p240).await.unwrap().1.contains("#EXT-X-ENDLIST"), "nothing reopened it");
    let s = onair_testkit::eventually(Duration::from_secs(10), || async {
        let s = state().await;
        (s["transcoders"][1]["renditions"] == json!([])).then_some(s)
    })
    .await;
    assert_eq!(s["renditions"], json!(["source", "360p"]), "t1 stopped encoding at its next keyframe");
    // Given back, it runs again (the same pod, no restart).
    assert_eq!(assign(json!({"t0": ["360p"], "t1": ["240p"]})).await, 204);
    onair_testkit::eventually(Duration::from_secs(20), || async {
        let (_, m) = get_text(&env.http, &master_url).await?;
        (variants(&m) == all).then_some(())
    })
    .await;

    // The 240p pod is lost: new players are not offered 240p, 360p keeps going.
    drop(t1);
    let sequence =
        |p: &str| p.lines().find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:")).and_then(|n| n.parse::<u64>().ok());
    let p360 = format!("{ingest}/hls/{stream}/360p/index.m3u8");
    let before = sequence(&get_text(&env.http, &p360).await.unwrap().1).unwrap();
    onair_testkit::eventually(Duration::from_secs(20), || async {
        let (_, m) = get_text(&env.http, &master_url).await?;
        (variants(&m) == ["360p/index.m3u8", "source/index.m3u8"]).then_some(())
    })
    .await;
    let after = sequence(&get_text(&env.http, &p360).await.unwrap().1).unwrap();
    assert!(after > before, "360p kept advancing while 240p was gone ({before} -> {after})");

    // Its replacement brings 240p back.
    let _t1 = env.transcoder(&stream, &ingest, "t1", "240p").await;
    onair_testkit::eventually(Duration::from_secs(30), || async {
        let (_, m) = get_text(&env.http, &master_url).await?;
        (variants(&m) == all).then_some(())
    })
    .await;

    // The publisher drops and reconnects (what an ingest pod's replacement also looks like to
    // the transcoders): both follow the new source, on a new playlist marked discontinuous.
    let last = |p: &str| p.lines().filter_map(|l| l.strip_suffix(".ts")?.rsplit('_').next()?.parse::<u64>().ok()).max();
    publisher.kill().await.unwrap();
    let _ = publisher.wait().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mark = last(&get_text(&env.http, &p240).await.unwrap().1).unwrap();
    let _again = publish(&format!("{rtmp}/{key}"), 60);
    onair_testkit::eventually(Duration::from_secs(30), || async {
        let p = get_text(&env.http, &p240).await?.1;
        (last(&p)? > mark && p.contains("#EXT-X-DISCONTINUITY")).then_some(())
    })
    .await;
}

/// An ingest pod replaced mid-stream (a new process at the same address that knows nothing):
/// the publisher reconnects to it (through the gateway on Kubernetes), and the transcode pod
/// follows the new source with the renditions it was last given, before any new assignment.
#[tokio::test]
async fn a_replaced_ingest_pod_is_followed_by_its_transcoders_with_their_renditions() {
    let env = env().await;
    let (_, stream, key) = env.streamer("replaced", "replaced ingest").await;
    let hash = onair_domain::contracts::stream_key::hash_hex(&key);
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let ingest_pod = |dir: &std::path::Path| {
        let flags = ["--role", "ingest", "--http-listen", &http, "--ladder", "360p,240p", "--stream-key-hash", &hash];
        env.worker_args(dir, &stream, &flags)
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
    let (rtmp_a, base) = spawn_worker(ingest_pod(dir_a.path()), async move {
        let _ = stopped_a.await;
    })
    .await;
    let _t0 = env.transcoder(&stream, &base, "t0", "").await;
    let assigned = env
        .http
        .put(format!("{base}/internal/streams/{stream}/transcoders"))
        .header("x-onair-internal-token", "media-test")
        .json(&json!({"t0": ["240p"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(assigned.status(), 204);
    let mut publisher = publish(&format!("{rtmp_a}/{key}"), 60);
    let p240 = format!("{base}/hls/{stream}/240p/index.m3u8");
    let segments = || async {
        let p = get_text(&env.http, &p240).await?.1;
        p.contains(".ts").then_some(p)
    };
    onair_testkit::eventually(Duration::from_secs(30), segments).await;

    // The ingest pod goes away with its publisher; its replacement starts empty.
    publisher.kill().await.unwrap();
    let _ = publisher.wait().await;
    drop(stop_a);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rtmp_b, _) = spawn_worker(ingest_pod(dir_b.path()), std::future::pending()).await;
    assert!(get_text(&env.http, &p240).await.is_none(), "the new pod has nothing yet");
    let _again = publish(&format!("{rtmp_b}/{key}"), 60);
    onair_testkit::eventually(Duration::from_secs(30), segments).await;
    let (_, master) = get_text(&env.http, &format!("{base}/hls/{stream}/master.m3u8")).await.unwrap();
    assert!(master.contains("240p/index.m3u8") && master.contains("source/index.m3u8"), "{master}");
}

// --- Recording (issue 15) ----------------------------------------------------------------------

/// Every segment key under `rec/{stream}/`, parsed, by rendition: (msn, duration, session).
async fn recorded(
    store: &onair_recording::Store,
    stream: &str,
) -> std::collections::BTreeMap<String, Vec<(u64, Duration, u64)>> {
    use futures::TryStreamExt as _;
    use onair_recording::layout::{Rel, Root};
    use onair_recording::object_store::ObjectStore as _;
    let root = Root::Recording(stream.parse().unwrap());
    let listed: Vec<_> = store.list(Some(&onair_recording::store::root_path(&root))).try_collect().await.unwrap();
    let mut by_rendition = std::collections::BTreeMap::<String, Vec<(u64, Duration, u64)>>::new();
    let mut inits = std::collections::BTreeSet::new();
    for meta in listed {
        let (_, rel) = Root::parse_key(meta.location.as_ref()).unwrap_or_else(|e| panic!("{e}"));
        match rel {
            Rel::Segment(r, name) => {
                assert!(meta.size > 0, "{}", meta.location);
                by_rendition.entry(r.to_string()).or_default().push((name.msn, name.duration(), name.session.0));
            }
            Rel::Init(r, name) => {
                inits.insert((r.to_string(), name));
            }
            // The poster, stored once the broadcast ended.
            Rel::Thumb => {}
            other => panic!("unexpected object {other:?}"),
        }
    }
    for (r, segs) in &mut by_rendition {
        segs.sort();
        let sessions: std::collections::BTreeSet<_> = segs.iter().map(|s| s.2).collect();
        for s in sessions {
            assert!(inits.iter().any(|(ir, i)| ir == r && i.session.0 == s), "{r}: no init stored for session {s}");
        }
    }
    by_rendition
}

/// The recordings store the worker was given: `bucket` on `s3`.
fn bucket_store(s3: &onair_testkit::s3::S3Server, bucket: &str) -> onair_recording::Store {
    let args = onair_recording::RecordingsArgs::from_flags(&s3.recordings_args(bucket)).unwrap();
    onair_recording::open(&args.store_config(std::path::Path::new("/")).unwrap().unwrap()).unwrap()
}

/// The VOD the apiserver makes of `stream` once its worker reported everything stored (the
/// finalizing step driven by hand, as its loop would). Answers the VOD's JSON.
async fn vod_of(env: &Env, stream: &str) -> Value {
    let id: uuid::Uuid = stream.parse().unwrap();
    let vod = onair_testkit::eventually(Duration::from_secs(60), || async {
        let done = env.state.finalize_step().await.unwrap();
        done.into_iter().find_map(|(s, f)| match f {
            onair_apiserver::Finalized::Ready(vod) if s == id => Some(vod),
            _ => None,
        })
    })
    .await;
    let res = env.http.get(format!("{}/api/vods/{vod}", env.api)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Plays a VOD as a viewer gets it, through the apiserver's `/vod/` (the store itself refuses
/// unsigned reads): ffprobe's duration of the master, and every rendition decoded by ffmpeg
/// with no error. Answers (duration, renditions as the master lists them).
async fn play_vod(env: &Env, vod: &Value) -> (f64, Vec<String>) {
    let master_url = vod["playback_url"].as_str().unwrap();
    let master = env.http.get(master_url).send().await.unwrap().text().await.unwrap();
    assert!(master.contains("CODECS=\"avc1.") && master.contains("RESOLUTION="), "{master}");
    let renditions: Vec<String> =
        master.lines().filter_map(|l| l.strip_suffix("/index.m3u8")).map(str::to_owned).collect();
    let probe = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", master_url])
        .output()
        .await
        .unwrap();
    assert!(probe.status.success(), "ffprobe: {}", String::from_utf8_lossy(&probe.stderr));
    let duration: f64 = String::from_utf8_lossy(&probe.stdout).trim().parse().unwrap();
    let base = master_url.trim_end_matches("master.m3u8");
    for r in &renditions {
        let decode = tokio::process::Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-i", &format!("{base}{r}/index.m3u8"), "-f", "null", "-"])
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&decode.stderr);
        assert!(decode.status.success() && stderr.trim().is_empty(), "{r}: ffmpeg decode: {stderr}");
    }
    let listed: Vec<String> =
        vod["renditions"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect();
    assert_eq!(listed, renditions, "the VOD's renditions are the master's");
    (duration, renditions)
}

/// ffprobe's duration of an HLS presentation at `url`.
async fn probe_duration(url: &str) -> f64 {
    let probe = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", url])
        .output()
        .await
        .unwrap();
    assert!(probe.status.success(), "ffprobe {url}: {}", String::from_utf8_lossy(&probe.stderr));
    String::from_utf8_lossy(&probe.stdout).trim().parse().unwrap()
}

/// Makes a clip through the API (`path` under /api, `body` as given); answers the clip.
async fn make_clip(env: &Env, token: &str, path: &str, body: Value) -> Value {
    let res = env.http.post(format!("{}/api/{path}", env.api)).bearer_auth(token).json(&body).send().await.unwrap();
    let status = res.status();
    let clip: Value = res.json().await.unwrap();
    assert_eq!(status, 201, "{clip}");
    clip
}

/// How many objects the store holds under the stream's recording.
async fn objects_of(s3: &onair_testkit::s3::S3Server, bucket: &str, stream: &str) -> usize {
    use futures::TryStreamExt as _;
    use onair_recording::object_store::ObjectStore as _;
    let store = bucket_store(s3, bucket);
    let prefix = onair_recording::store::root_path(&onair_recording::layout::Root::Recording(stream.parse().unwrap()));
    store.list(Some(&prefix)).try_collect::<Vec<_>>().await.unwrap().len()
}

/// Asserts each rendition's sequence numbers run without a gap, and answers its duration.
fn no_gaps(recorded: &std::collections::BTreeMap<String, Vec<(u64, Duration, u64)>>) -> Vec<(String, Duration)> {
    recorded
        .iter()
        .map(|(r, segs)| {
            let msns: Vec<u64> = segs.iter().map(|s| s.0).collect();
            let gaps: Vec<_> = msns.windows(2).filter(|w| w[1] != w[0] + 1).collect();
            assert!(gaps.is_empty(), "{r}: segments missing between {gaps:?}");
            (r.clone(), segs.iter().map(|s| s.1).sum())
        })
        .collect()
}

impl Env {
    /// A per-stream LL-HLS worker of `stream` recording into `bucket` on `s3`, with `extra` flags.
    async fn recording_worker(
        &self,
        s3: &onair_testkit::s3::S3Server,
        bucket: &str,
        stream: &str,
        key: &str,
        extra: &[&str],
    ) -> (String, String, tempfile::TempDir) {
        let hash = onair_domain::contracts::stream_key::hash_hex(key);
        let recordings = s3.recordings_args(bucket);
        let mut flags = vec!["--latency", "low"];
        flags.extend_from_slice(extra);
        flags.extend(recordings.iter().map(String::as_str));
        self.per_stream_worker_with(stream, &hash, &flags).await
    }
}

/// The worker's view of a stream's recording.
async fn recording_state(env: &Env, base: &str, stream: &str) -> Option<Value> {
    let res = env.http.get(format!("{base}/internal/streams/{stream}")).header("x-onair-internal-token", "media-test");
    let v: Value = res.send().await.ok()?.json().await.ok()?;
    Some(v["recording"].clone()).filter(|r| !r.is_null())
}

/// An LL-HLS worker records what it packages, segment by segment while live, into a real S3
/// server: every rendition, every segment, no gap, with its init, and as long as the broadcast.
/// The apiserver makes it a VOD that plays through `/vod/`; the streamer deletes it while a
/// viewer watches, who gets 404 from then on (never a 5xx), and its objects leave the bucket.
#[tokio::test]
async fn a_live_stream_is_recorded_to_s3_and_played_as_a_vod_until_deleted() {
    let Some(s3) = onair_testkit::s3::S3Server::start().unwrap() else { return };
    let bucket = s3.bucket().unwrap();
    let env = env_with(&s3.recordings_args(&bucket)).await;
    let (token, stream, key) = env.streamer("recorded", "kept").await;
    let (rtmp, base, _dir) = env
        .recording_worker(&s3, &bucket, &stream, &key, &["--ladder", "360p,240p", "--reconnect-grace-secs", "1"])
        .await;
    let mut publisher = publish(&format!("{rtmp}/{key}"), 8);
    // While live, segments are stored as they complete: not all at the end.
    let live = onair_testkit::eventually(Duration::from_secs(20), || async {
        let r = recording_state(&env, &base, &stream).await?;
        (r["uploadedSegments"].as_u64()? >= 3).then_some(r)
    })
    .await;
    assert_eq!((live["state"].as_str(), live["flushed"].as_bool()), (Some("ok"), Some(false)), "{live}");
    assert!(publisher.try_wait().unwrap().is_none(), "stored while the publisher was still on");
    publisher.wait().await.unwrap();
    let done = onair_testkit::eventually(Duration::from_secs(30), || async {
        let r = recording_state(&env, &base, &stream).await?;
        (r["flushed"] == true).then_some(r)
    })
    .await;
    assert_eq!((done["droppedSegments"].as_u64(), done["lagMs"].as_u64()), (Some(0), Some(0)), "{done}");

    let store = bucket_store(&s3, &bucket);
    let recorded = recorded(&store, &stream).await;
    let durations = no_gaps(&recorded);
    assert_eq!(durations.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(), ["240p", "360p"], "{durations:?}");
    for (r, d) in &durations {
        // 8 s published; the first segment starts at the first keyframe the encoder cut.
        assert!(d.as_secs_f64() > 6.5 && d.as_secs_f64() < 9.0, "{r}: {d:?} recorded of 8 s");
    }
    assert_eq!(
        done["uploadedSegments"].as_u64(),
        Some(recorded.values().map(|s| s.len() as u64).sum()),
        "the worker's count is what the store holds"
    );
    // The broadcast ended: its VOD plays end to end in every rendition, as long as it was.
    let vod = vod_of(&env, &stream).await;
    let (duration, renditions) = play_vod(&env, &vod).await;
    assert_eq!(renditions, ["360p", "240p"], "highest first");
    assert!((duration - 8.0).abs() < 2.0, "VOD of {duration} s for 8 s broadcast");
    assert!((vod["duration_secs"].as_f64().unwrap() - duration).abs() < 0.5, "{vod}");
    // Its poster is the encoder's last thumbnail, a JPEG.
    let poster = env.http.get(vod["thumbnail_url"].as_str().expect("a poster")).send().await.unwrap();
    assert_eq!(poster.headers()["content-type"], "image/jpeg");
    assert_eq!(&poster.bytes().await.unwrap()[..2], &[0xff, 0xd8]);

    // A clip of it: 2 s in, 5 s long, cut on segment boundaries, plays for as long.
    let clip = make_clip(
        &env,
        &token,
        &format!("vods/{}/clips", vod["id"].as_str().unwrap()),
        json!({"title": "the middle", "start_secs": 2.0, "seconds": 5}),
    )
    .await;
    let clipped = probe_duration(clip["playback_url"].as_str().unwrap()).await;
    assert!((5.0..=7.0).contains(&clipped), "a clip of {clipped} s for 5 s asked");
    assert!((clip["duration_secs"].as_f64().unwrap() - clipped).abs() < 0.5, "{clip}");

    // A viewer plays it segment by segment (4× real time); the streamer deletes it midway.
    let media_url = vod["playback_url"].as_str().unwrap().replace("master.m3u8", "240p/index.m3u8");
    let playlist = env.http.get(&media_url).send().await.unwrap().text().await.unwrap();
    let segments: Vec<String> = playlist.lines().filter(|l| l.starts_with("seg/")).map(str::to_owned).collect();
    assert!(segments.len() >= 6, "{playlist}");
    let (fetched_tx, mut fetched) = tokio::sync::mpsc::unbounded_channel();
    let viewer = {
        let (http, base) = (env.http.clone(), media_url.trim_end_matches("index.m3u8").to_owned());
        tokio::spawn(async move {
            for seg in segments {
                let status = http.get(format!("{base}{seg}")).send().await.unwrap().status();
                let _ = fetched_tx.send((std::time::Instant::now(), status));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    for _ in 0..3 {
        let (_, status) = fetched.recv().await.unwrap();
        assert_eq!(status, 200, "before the deletion");
    }
    let res = env.http.delete(format!("{}/api/vods/{}", env.api, vod["id"].as_str().unwrap())).bearer_auth(&token);
    assert_eq!(res.send().await.unwrap().status(), 204);
    let deleted = std::time::Instant::now();
    viewer.await.unwrap();
    let mut after = 0;
    while let Ok((at, status)) = fetched.try_recv() {
        assert!(!status.is_server_error(), "a viewer never sees a server error: {status}");
        if at > deleted {
            assert_eq!(status, 404, "the VOD plays on {:?} after its deletion", at - deleted);
            after += 1;
        }
    }
    assert!(after >= 2, "the viewer went on asking");
    // Its objects leave the bucket.
    assert!(objects_of(&s3, &bucket, &stream).await > 0, "swept in the background, not in the request");
    assert!(env.state.sweep_step().await.unwrap() > 0);
    assert_eq!(objects_of(&s3, &bucket, &stream).await, 0);
}

/// The S3 server stops answering for 20 s of a 60 s broadcast (SIGSTOP: connections hang, as
/// with a stuck server): the recording reports `behind`, keeps every segment queued, and once
/// the server is back stores them all. Nothing is lost: the VOD is as long as the broadcast.
/// Retention then deletes it, rows and objects.
#[tokio::test]
async fn an_upload_outage_of_20_s_loses_no_segment() {
    let Some(s3) = onair_testkit::s3::S3Server::start().unwrap() else { return };
    let bucket = s3.bucket().unwrap();
    let env = env_with(&s3.recordings_args(&bucket)).await;
    let (_, stream, key) = env.streamer("outage", "through it").await;
    let (rtmp, base, _dir) = env
        .recording_worker(
            &s3,
            &bucket,
            &stream,
            &key,
            &["--ladder", "360p,240p", "--recording-behind-secs", "3", "--reconnect-grace-secs", "1"],
        )
        .await;
    let mut publisher = publish(&format!("{rtmp}/{key}"), 60);
    let published = std::time::Instant::now();
    onair_testkit::eventually(Duration::from_secs(20), || async {
        let r = recording_state(&env, &base, &stream).await?;
        (r["uploadedSegments"].as_u64()? >= 2).then_some(())
    })
    .await;
    s3.pause().unwrap();
    let outage = std::time::Instant::now();
    let behind = onair_testkit::eventually(Duration::from_secs(15), || async {
        let r = recording_state(&env, &base, &stream).await?;
        (r["state"] == "behind").then_some(r)
    })
    .await;
    assert!(behind["lagMs"].as_u64().unwrap() >= 3_000, "{behind}");
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(outage.elapsed())).await;
    let during = recording_state(&env, &base, &stream).await.unwrap();
    assert!(during["lagMs"].as_u64().unwrap() >= 15_000 && during["queuedBytes"].as_u64().unwrap() > 0, "{during}");
    s3.resume().unwrap();
    // Caught up while still live: the lag falls back under the threshold.
    onair_testkit::eventually(Duration::from_secs(25), || async {
        let r = recording_state(&env, &base, &stream).await?;
        (r["state"] == "ok").then_some(())
    })
    .await;
    assert!(publisher.try_wait().unwrap().is_none(), "caught up while live");
    // A viewer clips the last 30 s while it is live (once the apiserver has heard the
    // recording caught up: until then the answer is 409 recording_behind), 40 s in.
    let (viewer, _, _) = env.streamer("clipper", "a viewer's own channel").await;
    tokio::time::sleep(Duration::from_secs(40).saturating_sub(published.elapsed())).await;
    let live_clip = onair_testkit::eventually(Duration::from_secs(20), || async {
        let res = env
            .http
            .post(format!("{}/api/streams/{stream}/clips", env.api))
            .bearer_auth(&viewer)
            .json(&json!({"title": "the last half minute", "seconds": 30}))
            .send()
            .await
            .ok()?;
        if res.status() == 409 {
            return None;
        }
        assert_eq!(res.status(), 201);
        res.json::<Value>().await.ok()
    })
    .await;
    assert!(publisher.try_wait().unwrap().is_none(), "clipped while live");
    // Rewinding 30 s while live: the window reaches back past it (through the outage: its
    // segments were listed once stored), and the segment of 30 s ago decodes.
    let dvr_master = env.http.get(format!("{base}/hls/{stream}/dvr/master.m3u8")).send().await.unwrap();
    assert_eq!(dvr_master.status(), 200);
    assert!(dvr_master.text().await.unwrap().contains("240p/index.m3u8"));
    let window = env.http.get(format!("{base}/hls/{stream}/dvr/240p/index.m3u8")).send().await.unwrap();
    assert_eq!(window.headers()["cache-control"], "public, max-age=1");
    let window = window.text().await.unwrap();
    assert!(!window.contains("#EXT-X-ENDLIST") && !window.contains("PLAYLIST-TYPE"), "{window}");
    let dated: Vec<(chrono::DateTime<chrono::Utc>, &str)> = window
        .lines()
        .zip(window.lines().skip(2))
        .filter_map(|(tag, uri)| {
            let at = chrono::DateTime::parse_from_rfc3339(tag.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:")?).ok()?;
            Some((at.with_timezone(&chrono::Utc), uri.strip_prefix("seg/").map(|_| uri)?))
        })
        .collect();
    let now = chrono::Utc::now();
    assert!(dated[0].0 <= now - chrono::Duration::seconds(35), "the window starts at {:?}: {window}", dated[0].0);
    let back = now - chrono::Duration::seconds(30);
    let (_, uri) = dated.iter().rev().find(|(at, _)| *at <= back).unwrap();
    let init = window.lines().find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\"")?.strip_suffix('"')).unwrap();
    let mut mp4 = Vec::new();
    for part in [init, uri] {
        let res = env.http.get(format!("{base}/hls/{stream}/dvr/240p/{part}")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{part}");
        mp4.extend_from_slice(&res.bytes().await.unwrap());
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &mp4).unwrap();
    let frames = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames"])
        .args(["-of", "csv=p=0"])
        .arg(file.path())
        .output()
        .await
        .unwrap();
    let frames: u32 = String::from_utf8_lossy(&frames.stdout).trim().parse().unwrap_or(0);
    assert!(frames >= 15, "the segment of 30 s ago decodes: {frames} frames");
    // Outside the window, or not a recording's name: 404.
    for bad in
        ["240p/seg/0000000000000_s1_000000000000_1_0.m4s", "240p/init/s1_0.mp4", "240p/index.m3u8x", "1080p/index.m3u8"]
    {
        let res = env.http.get(format!("{base}/hls/{stream}/dvr/{bad}")).send().await.unwrap();
        assert_eq!(res.status(), 404, "{bad}");
    }
    let live_clip_url = live_clip["playback_url"].as_str().unwrap().to_owned();
    let clipped = probe_duration(&live_clip_url).await;
    assert!((30.0..=32.0).contains(&clipped), "a live clip of {clipped} s for 30 s asked");
    publisher.wait().await.unwrap();
    let done = onair_testkit::eventually(Duration::from_secs(30), || async {
        let r = recording_state(&env, &base, &stream).await?;
        (r["flushed"] == true).then_some(r)
    })
    .await;
    assert_eq!(done["droppedSegments"].as_u64(), Some(0), "{done}");
    let store = bucket_store(&s3, &bucket);
    for (r, d) in no_gaps(&recorded(&store, &stream).await) {
        assert!(d.as_secs_f64() > 57.0, "{r}: {d:?} recorded of 60 s");
    }
    // The VOD plays through the outage's 20 s with nothing missing, in every rendition.
    let vod = vod_of(&env, &stream).await;
    assert_eq!(vod["discontinuities"], 0, "{vod}");
    let (duration, renditions) = play_vod(&env, &vod).await;
    assert_eq!(renditions.len(), 2);
    assert!((duration - 60.0).abs() < 2.0, "VOD of {duration} s for a 60 s broadcast");

    // Thirty days on, retention deletes it: the row, then the objects.
    let vod_id: uuid::Uuid = vod["id"].as_str().unwrap().parse().unwrap();
    let db = sqlx::PgPool::connect(&env._db.url).await.unwrap();
    sqlx::query("UPDATE vods SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(vod_id)
        .execute(&db)
        .await
        .unwrap();
    assert_eq!(env.state.expire_step().await.unwrap(), 1);
    let res = env.http.get(vod["playback_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(env.state.sweep_step().await.unwrap() > 0);
    assert_eq!(objects_of(&s3, &bucket, &stream).await, 0);
    // The clip made while it was live is its own copy: it plays on.
    assert!((probe_duration(&live_clip_url).await - clipped).abs() < 0.1);
}

#[tokio::test]
async fn every_internal_body_over_its_limit_is_refused_with_413() {
    let env = env().await;
    let base = env.hls.trim_end_matches("/hls");
    let id = uuid::Uuid::now_v7();
    let small = 64 * 1024 + 1;
    let cases = [
        (
            reqwest::Method::PUT,
            format!("/internal/streams/{id}/hls/360p/seg_t0_1.ts"),
            onair_transcoder_image::MAX_UPLOAD_BYTES + 1,
        ),
        (reqwest::Method::PUT, format!("/internal/streams/{id}/transcoders"), small),
        (reqwest::Method::POST, format!("/internal/streams/{id}/transcoders/t0"), small),
        (reqwest::Method::PUT, format!("/internal/streams/{id}/level"), small),
    ];
    for (method, path, size) in cases {
        let res = env
            .http
            .request(method.clone(), format!("{base}{path}"))
            .header(onair_domain::contracts::http::INTERNAL_TOKEN_HEADER, "media-test")
            .header("content-type", "application/json")
            .body(vec![b' '; size])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 413, "{method} {path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "body_too_large", "{method} {path}: {body}");
    }
}

/// Two playback keys, `new` signing (as the apiserver's `--playback-keys` would list them).
const PLAYBACK_KEYS: &str =
    "new:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8,old:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

#[tokio::test]
async fn a_signed_playback_url_plays_through_its_relative_uris_and_a_forged_one_does_not() {
    let env = env().await;
    let key = "live_signed_playback_0123456789";
    let (stream, rtmp, base, dir) = env.kubectl_stream_worker(key, &["--playback-keys", PLAYBACK_KEYS]).await;
    let _publisher = publish(&format!("{rtmp}/{key}"), 30);
    let ring = onair_playback_token::Keyring::parse(PLAYBACK_KEYS).unwrap();
    let now = chrono::Utc::now().timestamp();
    let signed = |token: &str| onair_playback_token::signed_dir(&format!("{base}/hls/{stream}"), token);

    // The master through the signed path, then what it names by relative URI, as a player goes.
    let token = ring.sign(&stream, "viewer-0001", now + 600).unwrap();
    let master_url = format!("{}/master.m3u8", signed(&token));
    let master = onair_testkit::eventually(Duration::from_secs(20), || async {
        get_text(&env.http, &master_url).await.map(|(_, t)| t).filter(|t| t.contains(".m3u8"))
    })
    .await;
    let variant = master.lines().find(|l| l.ends_with(".m3u8")).unwrap();
    let variant_url = url::Url::parse(&master_url).unwrap().join(variant).unwrap();
    assert!(variant_url.path().starts_with(&format!("/hls/{stream}/t/{token}/")), "{variant_url}");
    let playlist = onair_testkit::eventually(Duration::from_secs(20), || async {
        get_text(&env.http, variant_url.as_str()).await.map(|(_, t)| t).filter(|t| t.contains(".ts"))
    })
    .await;
    let segment = variant_url.join(playlist.lines().rfind(|l| l.ends_with(".ts")).unwrap()).unwrap();
    let res = env.http.get(segment.clone()).send().await.unwrap();
    assert_eq!(res.status(), 200, "{segment}");
    assert!(!res.bytes().await.unwrap().is_empty());

    // A token the old key signed still plays (rotation); forged, expired, another stream's, an
    // unknown key's: refused, with the JSON error.
    let old_only = onair_playback_token::Keyring::parse(PLAYBACK_KEYS.split(',').nth(1).unwrap()).unwrap();
    let by_old = old_only.sign(&stream, "viewer-0002", now + 600).unwrap();
    let ok = env.http.get(format!("{}/master.m3u8", signed(&by_old))).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let stranger = onair_playback_token::Keyring::parse("x:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").unwrap();
    let refused = [
        token.replacen("viewer-0001", "viewer-0009", 1),
        ring.sign(&stream, "viewer-0001", now - 1).unwrap(),
        ring.sign(&uuid::Uuid::new_v4().to_string(), "viewer-0001", now + 600).unwrap(),
        stranger.sign(&stream, "viewer-0001", now + 600).unwrap(),
        "not-a-token".to_owned(),
    ];
    for t in refused {
        let res = env.http.get(format!("{}/master.m3u8", signed(&t))).send().await.unwrap();
        assert_eq!(res.status(), 403, "{t}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_playback_token", "{t}");
    }
    // One spelling of the stream id: the token is for the canonical one.
    let upper = format!("{base}/hls/{}/t/{token}/master.m3u8", stream.to_uppercase());
    assert_eq!(env.http.get(upper).send().await.unwrap().status(), 403);
    // The token opens its stream's directory and nothing beside it: not a sibling stream's
    // files (there for the taking, were `..` followed), not another stream's directory.
    let other = uuid::Uuid::new_v4();
    std::fs::create_dir_all(dir.path().join(other.to_string())).unwrap();
    for file in ["thumb.jpg", "master.m3u8"] {
        std::fs::write(dir.path().join(other.to_string()).join(file), "another stream's").unwrap();
        let escape = format!("{}/..%2F{other}%2F{file}", signed(&token));
        assert_eq!(env.http.get(&escape).send().await.unwrap().status(), 404, "{escape}");
    }
    let moved = format!("{base}/hls/{other}/t/{token}/master.m3u8");
    assert_eq!(env.http.get(moved).send().await.unwrap().status(), 403, "another stream's directory");
    // A worker without keys refuses every signed path.
    let res = env.http.get(format!("{}/{stream}/t/{token}/master.m3u8", env.hls)).send().await.unwrap();
    assert_eq!(res.status(), 403);
}

/// A channel that requires signed links: the worker hears so from the key check and refuses
/// its stream's plain paths, while a public channel's play as before.
#[tokio::test]
async fn a_signed_channels_plain_playback_paths_are_refused() {
    let env = env().await;
    let token = env.register("signedonly").await;
    let res = env
        .http
        .patch(format!("{}/api/users/me", env.api))
        .bearer_auth(&token)
        .json(&json!({"playback_access": "signed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (stream, key) = env.start(&token, json!({"title": "Signed only", "category": "games"})).await;
    let _publisher = publish(&format!("{}/{key}", env.rtmp), 20);
    // Once the publisher is in, the plain master is refused with the code players can act on.
    let refused = onair_testkit::eventually(Duration::from_secs(20), || async {
        let res = env.http.get(format!("{}/{stream}/master.m3u8", env.hls)).send().await.ok()?;
        (res.status() == 403).then_some(res)
    })
    .await;
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "playback_token_required");
    // So are its other files.
    let res = env.http.get(format!("{}/{stream}/240p/index.m3u8", env.hls)).send().await.unwrap();
    assert_eq!(res.status(), 403);

    // A public channel on the same worker plays from plain paths.
    let (_, public, public_key) = env.streamer("publicchan", "Public").await;
    let _other = publish(&format!("{}/{public_key}", env.rtmp), 20);
    onair_testkit::eventually(Duration::from_secs(20), || async {
        get_text(&env.http, &format!("{}/{public}/master.m3u8", env.hls)).await
    })
    .await;
}

/// A restricted channel's LiveStream applied with kubectl: the apiserver cannot say who may
/// play it, so the worker goes by the resource (`--playback-access`, set by the operator from
/// `spec.playbackAccess`); and a worker restarted on the same folder, told nothing, still
/// refuses the plain paths of what is left of it.
#[tokio::test]
async fn a_restricted_stream_the_apiserver_cannot_vouch_for_stays_restricted_across_a_restart() {
    let env = env().await;
    let key = "live_restricted_kubectl_0123456789";
    let flags = ["--playback-keys", PLAYBACK_KEYS, "--playback-access", "followers"];
    let (stream, rtmp, base, dir) = env.kubectl_stream_worker(key, &flags).await;
    let _publisher = publish(&format!("{rtmp}/{key}"), 20);
    let ring = onair_playback_token::Keyring::parse(PLAYBACK_KEYS).unwrap();
    let token = ring.sign(&stream, "viewer-0001", chrono::Utc::now().timestamp() + 600).unwrap();
    let signed = format!("{base}/hls/{stream}/t/{token}/master.m3u8");
    onair_testkit::eventually(Duration::from_secs(20), || async {
        get_text(&env.http, &signed).await.map(|(_, t)| t).filter(|t| t.contains(".m3u8"))
    })
    .await;
    let refused_plain = |base: String| {
        let http = env.http.clone();
        let url = format!("{base}/hls/{stream}/master.m3u8");
        async move {
            let res = http.get(&url).send().await.unwrap();
            let status = res.status();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
        }
    };
    let want = (reqwest::StatusCode::FORBIDDEN, "playback_token_required".to_owned());
    assert_eq!(refused_plain(base.clone()).await, want);

    // The restarted worker: the same folder, the resource's flag gone.
    let hash = onair_domain::contracts::stream_key::hash_hex(key);
    let args = env.worker_args(dir.path(), &stream, &["--stream-key-hash", &hash, "--trust-key-hash", "true"]);
    let (_, restarted) = spawn_worker(args, std::future::pending()).await;
    assert_eq!(refused_plain(restarted).await, want, "what is left stays behind the token");
}

/// A worker that restarts has lost the timers that remove ended streams' folders: what an
/// earlier run left goes once nothing was written to it for the retention period, while the
/// stream the worker plays is left alone: its LL-HLS media lives in memory, and its folder holds
/// only its signed-only mark, written once, which must stay.
#[tokio::test]
async fn what_an_earlier_run_left_in_the_media_folder_goes_after_the_retention_period() {
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    // An ended restricted stream's folder, with its signed-only mark, from before the restart.
    let leftover = dir.path().join(uuid::Uuid::new_v4().to_string());
    std::fs::create_dir_all(leftover.join("240p")).unwrap();
    std::fs::write(leftover.join("240p/index.m3u8"), "#EXTM3U\n#EXT-X-ENDLIST\n").unwrap();
    std::fs::write(leftover.join(".signed-only"), "").unwrap();
    // Not a stream's folder: never touched.
    std::fs::create_dir_all(dir.path().join("recordings")).unwrap();

    let key = "live_sweep_0123456789abcdef";
    let hash = onair_domain::contracts::stream_key::hash_hex(key);
    let stream = uuid::Uuid::new_v4().to_string();
    let flags = [
        "--stream-key-hash",
        &hash,
        "--trust-key-hash",
        "true",
        "--retention-secs",
        "2",
        "--latency",
        "low",
        "--playback-keys",
        PLAYBACK_KEYS,
        "--playback-access",
        "signed",
    ];
    let (rtmp, base) = spawn_worker(env.worker_args(dir.path(), &stream, &flags), std::future::pending()).await;
    let _publisher = publish(&format!("{rtmp}/{key}"), 30);
    let ring = onair_playback_token::Keyring::parse(PLAYBACK_KEYS).unwrap();
    let token = ring.sign(&stream, "viewer-0001", chrono::Utc::now().timestamp() + 600).unwrap();
    let master = format!("{base}/hls/{stream}/t/{token}/master.m3u8");
    onair_testkit::eventually(Duration::from_secs(20), || async { get_text(&env.http, &master).await }).await;

    // Retention (2 s) and a sweep (every 1 s) later, the leftover is gone.
    onair_testkit::eventually(Duration::from_secs(10), || async { (!leftover.exists()).then_some(()) }).await;
    assert!(dir.path().join("recordings").exists(), "what is not a stream's folder stays");
    // Several sweeps on, the live stream still plays from fresh parts.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, playlist) = get_text(&env.http, &master).await.expect("the live stream's master playlist");
    let rendition = playlist.lines().find(|l| l.ends_with(".m3u8")).expect("a rendition");
    let url = format!("{base}/hls/{stream}/t/{token}/{rendition}");
    let (_, media) = get_text(&env.http, &url).await.expect("its media playlist");
    assert!(media.contains("#EXT-X-PART:") && !media.contains("#EXT-X-ENDLIST"), "{media}");
    let plain = env.http.get(format!("{base}/hls/{stream}/master.m3u8")).send().await.unwrap();
    assert_eq!(plain.status(), 403, "the live stream's plain paths stay refused");
    assert!(dir.path().join(&stream).join(".signed-only").exists(), "and its mark stays for a restart");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "the live stream's folder and recordings, nothing swept left over: {names:?}");
}

/// The origin's direct-viewer capacity: a flood past it gets 503 + Retry-After + no-store (a
/// player backs off; no cache keeps it), an edge with the secret is not metered, and the
/// counters say who reached the origin.
#[tokio::test]
async fn direct_viewers_past_the_origins_capacity_are_told_to_retry_and_edges_are_not_metered() {
    let env = env().await;
    let key = "live_capacity_0123456789abcdef";
    let flags = ["--origin-requests-per-sec", "5", "--edge-secret", "edge-secret-for-tests"];
    let (stream, rtmp, base, _dir) = env.kubectl_stream_worker(key, &flags).await;
    let _publisher = publish(&format!("{rtmp}/{key}"), 30);
    let master = format!("{base}/hls/{stream}/master.m3u8");
    onair_testkit::eventually(Duration::from_secs(20), || async { get_text(&env.http, &master).await }).await;
    // The polls above drew on the bucket: let it fill (2 s of burst).
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let flood = |edge: Option<&'static str>| {
        let (http, master) = (env.http.clone(), master.clone());
        async move {
            let mut answers = Vec::new();
            for _ in 0..30 {
                let mut req = http.get(&master);
                if let Some(secret) = edge {
                    req = req.header("x-onair-edge", secret);
                }
                let res = req.send().await.unwrap();
                let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                let cache = res.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned());
                let status = res.status().as_u16();
                let body = res.text().await.unwrap();
                answers.push((status, retry, cache, body));
            }
            answers
        }
    };
    // 30 at once against 5/s (10 of burst): most refused, the way players back off from.
    let direct = flood(None).await;
    let busy: Vec<_> = direct.iter().filter(|a| a.0 == 503).collect();
    assert!(busy.len() >= 15, "{} of 30 refused", busy.len());
    assert!(direct.iter().any(|a| a.0 == 200), "what fits is served");
    for (_, retry, cache, body) in busy {
        assert_eq!(retry.as_deref(), Some("2"));
        assert_eq!(cache.as_deref(), Some("no-store"));
        assert_eq!(serde_json::from_str::<Value>(body).unwrap()["error"]["code"], "origin_busy");
    }
    // An edge with the secret is not metered; a wrong secret is a direct viewer.
    assert!(flood(Some("edge-secret-for-tests")).await.iter().all(|a| a.0 == 200));
    assert!(flood(Some("a-guess")).await.iter().any(|a| a.0 == 503));
    let metrics = env.http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let count = |needle: &str| {
        metrics
            .lines()
            .find(|l| l.contains(needle))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{needle} in\n{metrics}"))
    };
    assert!(count(r#"origin_playback_requests_total{from="edge"}"#) >= 30.0);
    assert!(count(r#"origin_capacity_refused_total{scope="total",kind="requests"}"#) >= 15.0);
}
