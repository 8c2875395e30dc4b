use std::sync::Arc;

use onair_apiserver::{Application, RecordingOrchestrator};
use onair_testkit::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const INTERNAL_TOKEN: &str = "test-internal-token";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub pool: sqlx::PgPool,
    pub state: onair_apiserver::AppState,
    pub orchestrator: Arc<RecordingOrchestrator>,
    pub keys_dir: tempfile::TempDir,
    pub redis_prefix: String,
    _shutdown: tokio::sync::oneshot::Sender<()>,
    // Dropped last: the database goes after the server stops using it.
    _db: TestDb,
}

/// A registered user: id, tokens.
pub struct User {
    pub id: String,
    pub name: String,
    pub token: String,
    pub refresh: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Start the real apiserver on port 0 against a fresh database, with `extra` flags.
pub async fn spawn_app_with(extra: &[&str]) -> TestApp {
    spawn_app_orchestrated(extra, None).await
}

/// As `spawn_app_with`, with `orchestrator` running the media instead of the recording one
/// (`TestApp::orchestrator` then sees no calls).
pub async fn spawn_app_orchestrated(
    extra: &[&str],
    orchestrator: Option<Arc<dyn onair_apiserver::Orchestrator>>,
) -> TestApp {
    onair_telemetry::init_test_tracing();
    let db = TestDb::new(&onair_apiserver::MIGRATOR).await.expect("test database");
    let keys_dir = tempfile::tempdir().expect("temp dir");
    let redis_prefix = onair_testkit::unique_prefix();
    let nats_prefix = onair_testkit::unique_prefix().replace(':', ".");
    let mut args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &db.url,
        "--database-max-connections",
        "5",
        "--redis-prefix",
        &redis_prefix,
        "--nats-prefix",
        &nats_prefix,
        "--jwt-keys-dir",
        keys_dir.path().to_str().expect("utf-8 temp path"),
        "--internal-token",
        INTERNAL_TOKEN,
        "--background-tasks",
        "false",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let config = onair_apiserver::ApiConfig::from_args(args).expect("valid test config");
    let recording = Arc::new(RecordingOrchestrator::new(config.ingest_url.clone(), config.playback_base_url.clone()));
    let chosen = orchestrator.clone().unwrap_or_else(|| recording.clone());
    let app = Application::build(config, Some(chosen)).await.expect("apiserver builds");
    let base = format!("http://{}", app.local_addr());
    let state = app.state();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&db.url).await.expect("test pool");
    TestApp {
        base,
        client: onair_http::client(),
        pool,
        state,
        orchestrator: recording,
        keys_dir,
        redis_prefix,
        _shutdown: tx,
        _db: db,
    }
}

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let text = res.text().await.expect("body read");
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn register(&self, name: &str) -> User {
        let (status, body) = self
            .post(
                "/api/users/register",
                None,
                json!({"username": name, "email": format!("{}@example.com", name.to_lowercase()), "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        User {
            id: body["user"]["id"].as_str().expect("id").to_owned(),
            name: name.to_owned(),
            token: body["access_token"].as_str().expect("token").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
        }
    }

    /// Make `user` an admin and log in again so the token says so.
    pub async fn make_admin(&self, user: &User) -> User {
        sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1::uuid")
            .bind(&user.id)
            .execute(&self.pool)
            .await
            .expect("update");
        self.login(&user.name, "correct horse battery").await
    }

    pub async fn login(&self, login: &str, password: &str) -> User {
        let (status, body) = self.post("/api/users/login", None, json!({"login": login, "password": password})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        User {
            id: body["user"]["id"].as_str().expect("id").to_owned(),
            name: body["user"]["username"].as_str().expect("name").to_owned(),
            token: body["access_token"].as_str().expect("token").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
        }
    }

    /// Start a stream for `user`; returns the start response.
    pub async fn start_stream(&self, user: &User, title: &str, category: &str, tags: &[&str]) -> Value {
        let (status, body) = self
            .post("/api/streams/start", Some(&user.token), json!({"title": title, "category": category, "tags": tags}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// What a media worker does when the publisher connects.
    pub async fn report_status(&self, stream_id: &str, status: &str) -> StatusCode {
        self.client
            .post(format!("{}/internal/streams/{stream_id}/status", self.base))
            .header("x-onair-internal-token", INTERNAL_TOKEN)
            .json(&json!({"status": status}))
            .send()
            .await
            .expect("sent")
            .status()
    }

    /// Start a stream and mark it live.
    pub async fn go_live(&self, user: &User, title: &str, category: &str, tags: &[&str]) -> String {
        let body = self.start_stream(user, title, category, tags).await;
        let id = body["stream"]["id"].as_str().expect("stream id").to_owned();
        assert_eq!(self.report_status(&id, "live").await, StatusCode::NO_CONTENT);
        id
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open("redis://127.0.0.1:6379")
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }
}

/// Assert an error response: status and stable code.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "body: {}", got.1);
    assert_eq!(got.1["error"]["code"], code, "body: {}", got.1);
    assert!(got.1["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "message missing: {}", got.1);
}
