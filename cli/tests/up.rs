//! `onair up` as a newcomer meets it: the real binary, started from a directory that is not the
//! checkout, used only through the one API address it prints.

// Tests fail loudly by design: unwrap/expect are how they say what broke.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt as _;
use onair_testkit::{TestDb, eventually};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

fn free_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").to_string()
}

/// `onair up` running in a temporary directory, and what it printed.
struct Platform {
    /// The address on the API line, without `/api`.
    api: String,
    printed: String,
    _child: tokio::process::Child,
    _cwd: tempfile::TempDir,
}

/// `onair up` on free ports, with the ingest and playback URLs named to match.
async fn onair_up(db: &TestDb) -> Platform {
    // Free ports instead of the defaults, so this runs beside a developer's own `onair up`.
    let (api, chat, rtmp, media) = (free_port(), free_port(), free_port(), free_port());
    let urls = [
        ("ONAIR_INGEST_URL", format!("rtmp://{rtmp}/live")),
        ("ONAIR_PLAYBACK_BASE_URL", format!("http://{media}/hls")),
    ];
    let up = start(db, [&api, &chat, &rtmp, &media], &urls).await;
    assert_eq!(up.api, format!("http://{api}"), "{}", up.printed);
    up
}

/// `onair up` with the API, chat, RTMP and media listeners at `listen`, and `env` added.
async fn start(db: &TestDb, listen: [&str; 4], env: &[(&str, String)]) -> Platform {
    let [api, chat, rtmp, media] = listen;
    let cwd = tempfile::tempdir().expect("tmp");
    let checkout = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert!(!cwd.path().starts_with(checkout), "the platform must not find the checkout's files");
    let redis_prefix = onair_testkit::unique_prefix();
    let nats_prefix = onair_testkit::unique_prefix().replace(':', ".");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_onair"))
        .args(["up", "--demo", "false", "--listen", api, "--database-url", &db.url])
        .args(["--redis-prefix", &redis_prefix, "--nats-prefix", &nats_prefix])
        .env("ONAIR_CHAT_LISTEN", chat)
        .env("ONAIR_RTMP_LISTEN", rtmp)
        .env("ONAIR_MEDIA_LISTEN", media)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .current_dir(cwd.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the onair binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let printed = tokio::time::timeout(Duration::from_secs(90), async {
        let mut printed = String::new();
        // Without a demo stream the banner ends with the playback line.
        while let Some(line) = lines.next_line().await.expect("stdout") {
            printed.push_str(&line);
            printed.push('\n');
            if line.trim_start().starts_with("playback") {
                return printed;
            }
        }
        panic!("onair up exited before it was up:\n{printed}");
    })
    .await
    .expect("onair up starts within 90 s");
    // Keep reading so the platform never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    // What a newcomer copies: the address on the API line.
    let api_line = printed.lines().find(|l| l.trim_start().starts_with("API")).expect("an API line");
    let printed_api = api_line.split_whitespace().nth(1).unwrap().trim_end_matches("/api").to_owned();
    Platform { api: printed_api, printed, _child: child, _cwd: cwd }
}

#[tokio::test]
async fn one_address_serves_the_web_app_the_api_and_chat() {
    let db = TestDb::new(&onair_apiserver::MIGRATOR).await.expect("db");
    let up = onair_up(&db).await;
    let api = up.api.as_str();
    let host = api.trim_start_matches("http://");
    assert!(up.printed.contains(&format!("ws://{host}/ws/streams/{{stream_id}}/chat")), "{}", up.printed);
    let http = onair_http::client();

    // The web app, compiled in: served although the platform runs far from web/dist.
    let res = http.get(format!("{api}/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/html");
    assert_eq!(res.headers()["cache-control"], "no-cache");
    let html = res.text().await.unwrap();
    for (ext, content_type) in [(".js", "text/javascript"), (".css", "text/css")] {
        let asset = html.split('"').find(|s| s.starts_with("/assets/") && s.ends_with(ext)).expect(ext);
        let res = http.get(format!("{api}{asset}")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{asset}");
        assert_eq!(res.headers()["content-type"], content_type, "{asset}");
        assert_eq!(res.headers()["cache-control"], "public, max-age=31536000, immutable");
    }

    // The README's first steps: register, go live.
    let name = format!("alice_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let register = |name: String| {
        let http = http.clone();
        async move {
            let body =
                json!({"username": name, "email": format!("{name}@example.com"), "password": "correct horse battery"});
            let res = http.post(format!("{api}/api/users/register")).json(&body).send().await.unwrap();
            assert_eq!(res.status(), 201, "register {name}");
            let session: Value = res.json().await.unwrap();
            (session["access_token"].as_str().unwrap().to_owned(), session["user"]["id"].as_str().unwrap().to_owned())
        }
    };
    let (token, user_id) = register(name.clone()).await;
    let (stream, _) = start_stream(
        &http,
        api,
        &token,
        json!({"title": "My first stream", "category": "games", "tags": ["speedrun"]}),
    )
    .await;

    // A viewer's socket on the same address.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{host}/ws/streams/{stream}/chat"))
        .await
        .expect("the chat WebSocket at the API address");
    let hello = next_frame(&mut ws).await;
    assert_eq!(hello["type"], "hello", "{hello}");

    // Chat over REST at the API address, with the streamer's token.
    let text = "hello through the front door";
    let res = http
        .post(format!("{api}/api/streams/{stream}/chat"))
        .bearer_auth(&token)
        .json(&json!({"text": text}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let sent: Value = res.json().await.unwrap();
    let id = sent["id"].as_str().unwrap_or_else(|| panic!("{sent}")).to_owned();

    // The socket gets it...
    let delivered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let frame = next_frame(&mut ws).await;
            let events =
                if frame["type"] == "batch" { frame["events"].as_array().unwrap().clone() } else { vec![frame] };
            if let Some(m) = events.into_iter().find(|e| e["type"] == "message" && e["id"] == id.as_str()) {
                return m;
            }
        }
    })
    .await
    .expect("the socket receives the message");
    assert_eq!(delivered["text"], text);
    assert_eq!(delivered["user"]["name"], name.as_str());

    // ...and the history has it once the persister has written it.
    let history = eventually(Duration::from_secs(15), || {
        let http = http.clone();
        let url = format!("{api}/api/streams/{stream}/chat");
        let id = id.clone();
        async move {
            let page: Value = http.get(url).send().await.ok()?.json().await.ok()?;
            page["items"].as_array()?.iter().any(|m| m["id"] == id.as_str()).then_some(page)
        }
    })
    .await;
    assert_eq!(history["items"][0]["text"], text);

    // The chat gateway's rules hold on the merged routes: no token, no entry; not yours, no say.
    let status = |req: reqwest::RequestBuilder| async move { req.send().await.unwrap().status().as_u16() };
    let chat_url = format!("{api}/api/streams/{stream}/chat");
    assert_eq!(status(http.post(&chat_url).json(&json!({"text": "anon"}))).await, 401);
    let moderation = format!("{api}/api/streams/{stream}/chat/moderation");
    let slow = json!({"action": "slow_mode", "seconds": 5});
    assert_eq!(status(http.post(&moderation).json(&slow)).await, 401);
    assert_eq!(status(http.get(format!("{api}/api/channels/{user_id}/moderation-log"))).await, 401);
    assert_eq!(status(http.get(format!("{api}/api/channels/{user_id}/bans"))).await, 401);
    let (other, _) = register(format!("bob_{}", &name[6..])).await;
    assert_eq!(status(http.post(&moderation).bearer_auth(&other).json(&slow)).await, 403);
    assert_eq!(status(http.post(&moderation).bearer_auth(&token).json(&slow)).await, 204);
    // And the apiserver's own routes are still the apiserver's.
    assert_eq!(status(http.get(format!("{api}/api/streams/{stream}"))).await, 200);
    assert_eq!(status(http.get(format!("{api}/api/streams/{stream}/nothing"))).await, 404);
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `POST /api/streams/start` as `token`: the new stream's id and the whole answer.
async fn start_stream(http: &reqwest::Client, api: &str, token: &str, body: Value) -> (String, Value) {
    let started: Value = http
        .post(format!("{api}/api/streams/start"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stream = started["stream"]["id"].as_str().unwrap_or_else(|| panic!("{started}")).to_owned();
    (stream, started)
}

/// The next JSON text frame (control frames skipped).
async fn next_frame(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket stays open")
            .expect("a readable frame");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// The README's "Try the API", run as written (`curl` through `bash`) against the printed
/// address: a README that drifts from what the one address serves fails here.
#[tokio::test]
async fn the_readme_walkthrough_works_against_the_printed_address() {
    let db = TestDb::new(&onair_apiserver::MIGRATOR).await.expect("db");
    let up = onair_up(&db).await;
    let host = up.api.trim_start_matches("http://");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = &readme[readme.find("## Try the API").expect("a Try the API section")..];
    let block = &section[section.find("```sh\n").unwrap() + 6..];
    let block = &block[..block.find("```").unwrap()];
    // Shell lines with `\` continuations joined; comments dropped.
    let mut commands: Vec<String> = Vec::new();
    let mut continues = false;
    for line in block.lines().map(|l| l.split(" # ").next().unwrap().trim()) {
        match commands.last_mut() {
            Some(last) if continues => last.push_str(&format!(" {}", line.trim_end_matches('\\'))),
            _ if line.is_empty() || line.starts_with('#') => {}
            _ => commands.push(line.trim_end_matches('\\').to_owned()),
        }
        continues = line.ends_with('\\');
    }
    // `NAME=...` lines ask the reader to copy a field of an earlier answer.
    let fields = [("TOKEN", "/access_token"), ("STREAM", "/stream/id")];
    let mut answers: Vec<Value> = Vec::new();
    let mut env: Vec<(String, String)> = Vec::new();
    let mut chatted = false;
    for command in &commands {
        if let Some((name, _)) = command.split_once("=...") {
            let pointer = fields.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("what is {name}?")).1;
            let value = answers.iter().rev().find_map(|a| a.pointer(pointer)?.as_str()).expect(pointer);
            env.push((name.to_owned(), value.to_owned()));
            continue;
        }
        assert!(command.starts_with("curl "), "only curl and copied values in the walkthrough: {command}");
        let command = command.replace("localhost:8080", host);
        let is_history = command.contains("/chat") && !command.contains(" -d ");
        // History shows a message once the persister has written it: the README says so.
        let answer = eventually(Duration::from_secs(15), || {
            let (command, env) = (command.clone(), env.clone());
            async move {
                let out = tokio::process::Command::new("bash")
                    .args(["-c", &command])
                    .envs(env)
                    .output()
                    .await
                    .expect("bash and curl");
                let answer: Value = serde_json::from_slice(&out.stdout)
                    .unwrap_or_else(|e| panic!("{command}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
                let empty = answer["items"].as_array().is_some_and(|i| i.is_empty());
                (!(is_history && empty)).then_some(answer)
            }
        })
        .await;
        assert!(answer.get("error").is_none(), "{command}: {answer}");
        chatted |= command.contains("/chat") && answer["text"].is_string();
        answers.push(answer);
    }
    assert!(chatted, "the walkthrough posts a chat message: {commands:?}");
    let history = answers.last().unwrap();
    assert_eq!(history["items"][0]["text"], "hello chat", "the walkthrough reads the chat back");
}

/// `onair up` with a port of 0 for every listener: each service is handed the others' bound
/// addresses, so the printed API answers, a started stream gets the media worker's real
/// playback URL (the local orchestrator reached the worker), and a publisher on the printed
/// ingest URL makes the stream live (the worker reached the apiserver).
#[tokio::test]
async fn port_zero_for_every_listener_works() {
    let db = TestDb::new(&onair_apiserver::MIGRATOR).await.expect("db");
    let any = "127.0.0.1:0";
    let up = start(&db, [any; 4], &[]).await;
    let printed = up.printed.as_str();
    let line = |label: &str| {
        let l = printed.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("{label}"));
        l.split_whitespace().nth(1).unwrap().to_owned()
    };
    let (ingest, playback) = (line("ingest"), line("playback"));
    for url in [up.api.as_str(), &ingest, &playback] {
        assert!(url.starts_with("http://127.0.0.1:") || url.starts_with("rtmp://127.0.0.1:"), "{printed}");
        assert!(!url.contains(":0/") && !url.ends_with(":0"), "a bound port, not 0: {printed}");
    }
    let api = up.api.as_str();
    let http = onair_http::client();
    let name = format!("zero_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let body = json!({"username": name, "email": format!("{name}@example.com"), "password": "correct horse battery"});
    let res = http.post(format!("{api}/api/users/register")).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let session: Value = res.json().await.unwrap();
    let token = session["access_token"].as_str().unwrap().to_owned();
    let (stream, started) =
        start_stream(&http, api, &token, json!({"title": "Port zero", "category": "games", "tags": []})).await;
    // What the apiserver hands out is what it printed: the media worker's bound addresses.
    assert_eq!(started["ingest"]["playback_url"], playback.replace("{stream_id}", &stream), "{started}");
    assert_eq!(started["ingest"]["url"], ingest.trim_end_matches("/{stream_key}"), "{started}");
    // The first stream creates the key and shows it once.
    let key = started["ingest"]["stream_key"].as_str().unwrap_or_else(|| panic!("{started}")).to_owned();

    let _publisher = onair_testkit::publish_test_pattern(&ingest.replace("{stream_key}", &key), 30);
    eventually(Duration::from_secs(20), || {
        let http = http.clone();
        let url = format!("{api}/api/streams/{stream}");
        async move {
            let view: Value = http.get(url).send().await.ok()?.json().await.ok()?;
            (view["status"] == "live").then_some(())
        }
    })
    .await;
}
