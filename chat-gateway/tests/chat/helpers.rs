use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use onair_apiserver::{Application, RecordingOrchestrator};
use onair_chat_gateway::{ChatConfig, ChatGateway, ChatState};
use onair_testkit::TestDb;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Gateway {
    pub base: String,
    pub ws: String,
    pub state: ChatState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Gateway {
    /// Shut this replica down as SIGTERM does (it drains) and wait until it has; how long it took.
    pub async fn shut_down(mut self) -> Duration {
        let started = std::time::Instant::now();
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("shut down in time")
                .expect("joined")
                .expect("ok");
        }
        started.elapsed()
    }

    /// Stop this replica (its sockets drop) and wait until it has.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

pub struct Env {
    pub api: String,
    pub client: reqwest::Client,
    pub pool: sqlx::PgPool,
    pub gateways: Vec<Gateway>,
    pub db_url: String,
    pub redis_prefix: String,
    pub nats_prefix: String,
    pub jwks: String,
    /// The apiserver's signing keys.
    pub keys: tempfile::TempDir,
    _api_stop: tokio::sync::oneshot::Sender<()>,
    _db: TestDb,
}

pub struct User {
    pub id: String,
    pub token: String,
}

pub async fn env(replicas: usize, extra: &[&str]) -> Env {
    onair_telemetry::init_test_tracing();
    let db = TestDb::new(&onair_apiserver::MIGRATOR).await.expect("db");
    let keys = tempfile::tempdir().expect("tmp");
    let redis_prefix = onair_testkit::unique_prefix();
    let nats_prefix = onair_testkit::unique_prefix().replace(':', ".");
    let config = onair_apiserver::ApiConfig::from_args([
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &db.url,
        "--database-max-connections",
        "4",
        "--redis-prefix",
        &redis_prefix,
        "--nats-prefix",
        &nats_prefix,
        "--jwt-keys-dir",
        keys.path().to_str().expect("utf-8"),
        "--background-tasks",
        "false",
        "--stream-cache-ms",
        "1",
    ])
    .expect("api config");
    let orch = Arc::new(RecordingOrchestrator::new(config.ingest_url.clone(), config.playback_base_url.clone()));
    let app = Application::build(config, Some(orch)).await.expect("apiserver");
    let api = format!("http://{}", app.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&db.url).await.expect("pool");
    let mut env = Env {
        jwks: format!("{api}{}", onair_domain::contracts::http::JWKS_PATH),
        api,
        client: onair_http::client(),
        pool,
        gateways: vec![],
        db_url: db.url.clone(),
        redis_prefix,
        nats_prefix,
        keys,
        _api_stop: tx,
        _db: db,
    };
    for _ in 0..replicas {
        let g = env.start_gateway(extra).await;
        env.gateways.push(g);
    }
    env
}

impl Env {
    pub async fn start_gateway(&self, extra: &[&str]) -> Gateway {
        let mut args: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &self.db_url,
            "--redis-prefix",
            &self.redis_prefix,
            "--nats-prefix",
            &self.nats_prefix,
            "--jwks-url",
            &self.jwks,
            "--tick-ms",
            "20",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let gw = ChatGateway::build(ChatConfig::from_args(args).expect("chat config")).await.expect("gateway");
        let addr = gw.local_addr();
        let state = gw.state();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(gw.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Gateway { base: format!("http://{addr}"), ws: format!("ws://{addr}"), state, stop: Some(tx), task: Some(task) }
    }

    pub async fn register(&self, name: &str) -> User {
        let res = self
            .client
            .post(format!("{}/api/users/register", self.api))
            .json(
                &json!({"username": name, "email": format!("{name}@example.com"), "password": "correct horse battery"}),
            )
            .send()
            .await
            .expect("register");
        assert_eq!(res.status(), StatusCode::CREATED);
        let body: Value = res.json().await.expect("json");
        User {
            id: body["user"]["id"].as_str().expect("id").into(),
            token: body["access_token"].as_str().expect("token").into(),
        }
    }

    /// A live stream owned by `owner`; returns its id.
    pub async fn live_stream(&self, owner: &User) -> String {
        let res = self
            .client
            .post(format!("{}/api/streams/start", self.api))
            .bearer_auth(&owner.token)
            .json(&json!({"title": "chat test", "category": "games"}))
            .send()
            .await
            .expect("start");
        assert_eq!(res.status(), StatusCode::CREATED);
        let body: Value = res.json().await.expect("json");
        body["stream"]["id"].as_str().expect("id").to_owned()
    }

    pub async fn connect(&self, gw: usize, stream: &str, token: Option<&str>) -> Socket {
        self.connect_with_hello(gw, stream, token).await.0
    }

    /// Connect and return the socket with its `hello` frame.
    pub async fn connect_with_hello(
        &self,
        gw: usize,
        stream: &str,
        token: Option<&str>,
    ) -> (Socket, serde_json::Value) {
        let mut req =
            format!("{}/ws/streams/{stream}/chat", self.gateways[gw].ws).into_client_request().expect("request");
        let protocols = match token {
            Some(t) => format!("onair.chat.v1, access_token.{t}"),
            None => "onair.chat.v1".to_owned(),
        };
        req.headers_mut().insert("sec-websocket-protocol", protocols.parse().expect("header"));
        let (mut ws, res) = tokio_tungstenite::connect_async(req).await.expect("socket opens");
        assert_eq!(res.headers()["sec-websocket-protocol"], "onair.chat.v1");
        let hello = next_json(&mut ws).await;
        assert_eq!(hello["type"], "hello", "{hello}");
        (ws, hello)
    }

    pub async fn rest(
        &self,
        gw: usize,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.gateways[gw].base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("sent");
        let status = res.status();
        let text = res.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn moderate(&self, gw: usize, stream: &str, token: &str, action: Value) -> (StatusCode, Value) {
        self.rest(
            gw,
            reqwest::Method::POST,
            &format!("/api/streams/{stream}/chat/moderation"),
            Some(token),
            Some(action),
        )
        .await
    }

    pub async fn history(&self, stream: &str) -> Vec<Value> {
        let (status, body) =
            self.rest(0, reqwest::Method::GET, &format!("/api/streams/{stream}/chat?limit=200"), None, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"].as_array().expect("items").clone()
    }
}

pub async fn send(ws: &mut Socket, text: &str, r: &str) {
    ws.send(Message::Text(json!({"type": "send", "text": text, "ref": r}).to_string().into())).await.expect("send");
}

/// The next JSON frame (pings skipped); fails after 5 s.
pub async fn next_json(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame within 5 s")
            .expect("open")
            .expect("ok");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).expect("json frame"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Flatten frames into events until `want` events arrived or `wait` passes with nothing new.
pub async fn collect_events(ws: &mut Socket, want: usize, wait: Duration) -> Vec<Value> {
    let mut events = Vec::new();
    while events.len() < want {
        let Ok(Some(Ok(msg))) = tokio::time::timeout(wait, ws.next()).await else { break };
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == "batch" {
                events.extend(v["events"].as_array().expect("events").iter().cloned());
            } else {
                events.push(v);
            }
        }
    }
    events
}

/// Wait for a frame of `kind` (flattening batches), skipping others.
pub async fn wait_for(ws: &mut Socket, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        assert!(!left.is_zero(), "no {kind} frame within 5 s");
        for ev in collect_events(ws, 1, left).await {
            if ev["type"] == kind {
                return ev;
            }
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Each test has its own JetStream stream; remove it so runs do not pile up on disk.
        let name = ChatState::stream_name(&self.nats_prefix);
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok(c) = async_nats::connect("nats://127.0.0.1:4222").await {
                    let _ = async_nats::jetstream::new(c).delete_stream(&name).await;
                }
            });
        })
        .join();
    }
}

/// Wait until this replica has closed every room.
pub async fn eventually_empty(state: &ChatState) {
    onair_testkit::eventually(Duration::from_secs(5), || async { state.hub.is_empty().then_some(()) }).await
}

/// Wait until history holds at least `n` messages.
pub async fn eventually_history(env: &Env, stream: &str, n: usize) -> Vec<Value> {
    // A replica stopped while holding a fetched batch delays it by the consumer's ack wait (5 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let h = env.history(stream).await;
        if h.len() >= n {
            return h;
        }
        assert!(tokio::time::Instant::now() < deadline, "history has {} of {n} messages", h.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
