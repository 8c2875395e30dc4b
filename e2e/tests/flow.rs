//! One streamer, their viewers and their chat, end to end on one machine.

// Tests fail loudly by design: unwrap/expect are how they say what broke.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use onair_apiserver::{ApiConfig, Application, LocalOrchestrator};
use onair_chat_gateway::{ChatConfig, ChatGateway};
use onair_testkit::{TestDb, eventually};
use onair_transcoder_image::{MediaConfig, MediaWorker};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const TOKEN: &str = "e2e-internal";

fn free_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port")
}

use onair_testkit::publish_test_pattern as publish;

/// `ffprobe` a segment: (width, height, video codec, audio codec, duration).
async fn probe(bytes: &[u8]) -> (u64, u64, String, String, f64) {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("seg.ts");
    tokio::fs::write(&file, bytes).await.expect("write");
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-show_format", "-of", "json"])
        .arg(&file)
        .output()
        .await
        .expect("ffprobe");
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let streams = v["streams"].as_array().expect("streams");
    let video = streams.iter().find(|s| s["codec_type"] == "video").expect("a video stream");
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").expect("an audio stream");
    (
        video["width"].as_u64().unwrap_or(0),
        video["height"].as_u64().unwrap_or(0),
        video["codec_name"].as_str().unwrap_or("").to_owned(),
        audio["codec_name"].as_str().unwrap_or("").to_owned(),
        v["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0),
    )
}

#[tokio::test]
async fn a_broadcast_from_go_live_to_the_end() {
    onair_telemetry::init_test_tracing();
    let db = TestDb::new(&onair_apiserver::MIGRATOR).await.expect("db");
    let keys = tempfile::tempdir().expect("tmp");
    let media_dir = tempfile::tempdir().expect("tmp");
    let redis_prefix = onair_testkit::unique_prefix();
    let nats_prefix = onair_testkit::unique_prefix().replace(':', ".");
    let (api_addr, media_addr) = (free_port(), free_port());

    // Assembled as `onair up` assembles it.
    let api_config = ApiConfig::from_args([
        "--listen",
        &api_addr.to_string(),
        "--database-url",
        &db.url,
        "--redis-prefix",
        &redis_prefix,
        "--nats-prefix",
        &nats_prefix,
        "--jwt-keys-dir",
        keys.path().to_str().expect("utf-8"),
        "--background-tasks",
        "false",
        "--internal-token",
        TOKEN,
        "--stream-cache-ms",
        "1",
        "--viewer-window-secs",
        "3",
        "--playback-base-url",
        &format!("http://{media_addr}/hls"),
    ])
    .expect("api config");
    let orch = LocalOrchestrator::new(
        &format!("http://{media_addr}"),
        secrecy::SecretString::from(TOKEN.to_owned()),
        &api_config.ingest_url,
        &api_config.playback_base_url,
    );
    let app = Application::build(api_config, Some(Arc::new(orch))).await.expect("apiserver");
    let state = app.state();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let media = MediaWorker::build(
        MediaConfig::from_args([
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            &media_addr.to_string(),
            "--apiserver-url",
            &format!("http://{api_addr}"),
            "--internal-token",
            TOKEN,
            "--media-dir",
            media_dir.path().to_str().expect("utf-8"),
            "--ladder",
            "360p,240p",
            "--x264-preset",
            "ultrafast",
            "--x264-preset-free",
            "ultrafast",
            "--reconnect-grace-secs",
            "10",
            "--redis-prefix",
            &redis_prefix,
        ])
        .expect("media config"),
    )
    .await
    .expect("media");
    let rtmp = format!("rtmp://{}/live", media.rtmp_addr());
    tokio::spawn(media.run_until_stopped(std::future::pending()));
    let chat = ChatGateway::build(
        ChatConfig::from_args([
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &db.url,
            "--redis-prefix",
            &redis_prefix,
            "--nats-prefix",
            &nats_prefix,
            "--jwks-url",
            &format!("http://{api_addr}{}", onair_domain::contracts::http::JWKS_PATH),
        ])
        .expect("chat config"),
    )
    .await
    .expect("chat");
    let chat_ws = format!("ws://{}", chat.local_addr());
    tokio::spawn(chat.run_until_stopped(std::future::pending()));

    let http = onair_http::client();
    let api = format!("http://{api_addr}");
    let hls = format!("http://{media_addr}/hls");
    let register = |name: &'static str| {
        let (http, api) = (http.clone(), api.clone());
        async move {
            let body =
                json!({"username": name, "email": format!("{name}@example.com"), "password": "correct horse battery"});
            let v: Value =
                http.post(format!("{api}/api/users/register")).json(&body).send().await.unwrap().json().await.unwrap();
            v["access_token"].as_str().unwrap().to_owned()
        }
    };

    // A streamer goes live.
    let streamer = register("streamer").await;
    let started: Value = http
        .post(format!("{api}/api/streams/start"))
        .bearer_auth(&streamer)
        .json(&json!({"title": "end to end", "category": "games"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stream = started["stream"]["id"].as_str().unwrap().to_owned();
    let key = started["ingest"]["stream_key"].as_str().unwrap().to_owned();
    let mut publisher = publish(&format!("{rtmp}/{key}"), 60);

    // Every rendition is listed and each segment is what it says.
    let master = eventually(Duration::from_secs(20), || async {
        let r = http.get(format!("{hls}/{stream}/master.m3u8")).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.text().await.ok()
    })
    .await;
    for (name, height) in [("360p", 360), ("240p", 240)] {
        assert!(master.contains(&format!("{name}/index.m3u8")), "{master}");
        let playlist = eventually(Duration::from_secs(20), || async {
            let t = http.get(format!("{hls}/{stream}/{name}/index.m3u8")).send().await.ok()?.text().await.ok()?;
            (t.matches(".ts").count() >= 2).then_some(t)
        })
        .await;
        let seg = playlist.lines().rfind(|l| l.ends_with(".ts")).unwrap();
        let bytes = http.get(format!("{hls}/{stream}/{name}/{seg}")).send().await.unwrap().bytes().await.unwrap();
        let (w, h, vcodec, acodec, duration) = probe(&bytes).await;
        assert_eq!((h, vcodec.as_str(), acodec.as_str()), (height, "h264", "aac"), "{name}");
        assert!(w >= height * 16 / 9 - 2, "{name}: {w}x{h}");
        assert!((0.8..=1.3).contains(&duration), "{name}: segments are 1 s, got {duration}");
    }

    // Three players watch: the count rises, the sampler records it, then it falls when they leave.
    for s in ["player-one-0001", "player-two-0002", "player-three-0003"] {
        http.get(format!("{hls}/{stream}/master.m3u8?session={s}")).send().await.unwrap();
    }
    let viewers = |http: reqwest::Client, api: String, stream: String| async move {
        let v: Value = http.get(format!("{api}/api/streams/{stream}")).send().await.ok()?.json().await.ok()?;
        v["viewers"].as_i64()
    };
    eventually(Duration::from_secs(5), || async {
        (viewers(http.clone(), api.clone(), stream.clone()).await == Some(3)).then_some(())
    })
    .await;
    assert_eq!(state.sample_analytics().await.unwrap(), Some(1));

    // Chat round trip: a viewer sends, another socket receives.
    let fan = register("fan").await;
    let connect = |token: Option<String>| {
        let url = format!("{chat_ws}/ws/streams/{stream}/chat");
        async move {
            let mut req = url.into_client_request().unwrap();
            let protocols = match token {
                Some(t) => format!("onair.chat.v1, access_token.{t}"),
                None => "onair.chat.v1".to_owned(),
            };
            req.headers_mut().insert("sec-websocket-protocol", protocols.parse().unwrap());
            tokio_tungstenite::connect_async(req).await.unwrap().0
        }
    };
    let mut sender = connect(Some(fan)).await;
    let mut watcher = connect(None).await;
    sender.send(Message::Text(json!({"type": "send", "text": "hello from e2e"}).to_string().into())).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let got = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg =
            tokio::time::timeout(left, watcher.next()).await.expect("the message arrives within 5 s").unwrap().unwrap();
        let text = msg.into_text().unwrap().to_string();
        if text.contains("hello from e2e") {
            break text;
        }
    };
    assert!(got.contains("\"type\":\"message\""), "{got}");

    eventually(Duration::from_secs(10), || async {
        (viewers(http.clone(), api.clone(), stream.clone()).await == Some(0)).then_some(())
    })
    .await;

    // The publisher drops and comes back within the grace period: same stream, a discontinuity.
    publisher.kill().await.unwrap();
    eventually(Duration::from_secs(10), || async {
        let v: Value = http.get(format!("{api}/api/streams/{stream}")).send().await.ok()?.json().await.ok()?;
        (v["status"] == "starting").then_some(())
    })
    .await;
    let mut publisher = publish(&format!("{rtmp}/{key}"), 60);
    eventually(Duration::from_secs(20), || async {
        let v: Value = http.get(format!("{api}/api/streams/{stream}")).send().await.ok()?.json().await.ok()?;
        let t = http.get(format!("{hls}/{stream}/240p/index.m3u8")).send().await.ok()?.text().await.ok()?;
        (v["status"] == "live" && t.contains("#EXT-X-DISCONTINUITY")).then_some(())
    })
    .await;

    // Stop: the playlists end, the stream is over, the analytics are there.
    let res = http.post(format!("{api}/api/streams/{stream}/stop")).bearer_auth(&streamer).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let _ = tokio::time::timeout(Duration::from_secs(10), publisher.wait()).await;
    eventually(Duration::from_secs(10), || async {
        let t = http.get(format!("{hls}/{stream}/360p/index.m3u8")).send().await.ok()?.text().await.ok()?;
        t.trim_end().ends_with("#EXT-X-ENDLIST").then_some(())
    })
    .await;
    let a: Value = http
        .get(format!("{api}/api/streams/{stream}/analytics"))
        .bearer_auth(&streamer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["peak_viewers"], 3, "{a}");
    assert_eq!(a["unique_viewers"], 3, "{a}");
    assert!(!a["samples"].as_array().unwrap().is_empty());
}
