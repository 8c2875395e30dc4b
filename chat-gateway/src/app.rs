//! Building and running a gateway replica.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use futures::{FutureExt as _, StreamExt as _};
use onair_domain::StreamId;
use onair_domain::contracts::subjects;
use onair_web::{Check, HttpMetrics, Readiness};
use secrecy::ExposeSecret as _;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;

use crate::config::ChatConfig;
use crate::hub::Hub;
use crate::jwks::Keys;
use crate::metrics::ChatMetrics;
use crate::state::{ChatState, Inner};

/// How long a shutdown waits for sockets to close after telling them to reconnect.
const SOCKET_DRAIN: Duration = Duration::from_secs(5);
use crate::{persister, rest, ws};

pub struct ChatGateway {
    listener: TcpListener,
    /// The address really bound (a port of 0 is chosen at bind).
    addr: SocketAddr,
    router: Router,
    state: ChatState,
}

impl ChatGateway {
    /// Connect to Postgres, Redis and NATS, make sure the JetStream stream exists, fetch the
    /// token keys, bind the listener.
    pub async fn build(config: ChatConfig) -> anyhow::Result<Self> {
        let pool = |url: String| async move {
            PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect(&url)
                .await
                .map_err(|e| anyhow::anyhow!("connecting to Postgres: {e}"))
        };
        let db = pool(config.database.primary_url()).await?;
        let chat_db = if config.chat_database_url.is_some() { pool(config.chat_db_url()).await? } else { db.clone() };
        let redis = redis::aio::ConnectionManager::new(redis::Client::open(config.redis.redis_url.expose_secret())?)
            .await
            .map_err(|e| anyhow::anyhow!("connecting to Redis: {e}"))?;
        let nats = async_nats::connect(config.nats.nats_url.expose_secret())
            .await
            .map_err(|e| anyhow::anyhow!("connecting to NATS: {e}"))?;
        let js = jetstream::new(nats.clone());
        let js_stream = ChatState::stream_name(&config.nats.nats_prefix);
        js.get_or_create_stream(jetstream::stream::Config {
            name: js_stream.clone(),
            subjects: vec![
                format!("{}.room.*", subjects::CHAT_ROOT)
                    .replace(subjects::CHAT_ROOT, &format!("{}{}", config.nats.nats_prefix, subjects::CHAT_ROOT)),
            ],
            max_age: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: Duration::from_secs(120),
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("creating the JetStream stream {js_stream}: {e}"))?;
        let keys = Keys::fetch(&config.jwks_url, Duration::from_secs(30)).await?;

        ensure_partitions(&chat_db).await?;
        let mut registry = onair_telemetry::registry("chat");
        let http_metrics = HttpMetrics::register(&mut registry);
        let metrics = ChatMetrics::register(&mut registry);
        let readiness = Readiness::new(vec![
            Check {
                name: "postgres",
                run: {
                    let db = db.clone();
                    Box::new(move || {
                        let db = db.clone();
                        async move { sqlx::query("SELECT 1").execute(&db).await.map(|_| ()).map_err(|e| e.to_string()) }
                            .boxed()
                    })
                },
            },
            Check {
                name: "redis",
                run: {
                    let r = redis.clone();
                    Box::new(move || {
                        let mut r = r.clone();
                        async move {
                            redis::cmd("PING")
                                .query_async::<String>(&mut r)
                                .await
                                .map(|_| ())
                                .map_err(|e| e.to_string())
                        }
                        .boxed()
                    })
                },
            },
            Check {
                name: "nats",
                run: {
                    let n = nats.clone();
                    Box::new(move || {
                        let n = n.clone();
                        async move { n.flush().await.map_err(|e| e.to_string()) }.boxed()
                    })
                },
            },
        ]);
        let listener =
            TcpListener::bind(config.listen).await.map_err(|e| anyhow::anyhow!("binding {}: {e}", config.listen))?;
        let state = ChatState(Arc::new(Inner {
            config,
            db,
            chat_db,
            redis,
            limits: Default::default(),
            nats,
            js,
            js_stream,
            keys,
            hub: Hub::default(),
            metrics,
            registry,
            readiness,
            sockets_by_user: Default::default(),
            draining: tokio::sync::watch::Sender::new(false),
            open_sockets: Default::default(),
        }));
        let router = router(state.clone(), http_metrics);
        let addr = listener.local_addr()?;
        Ok(Self { listener, addr, router, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every route with the gateway's middleware, for `onair up` to serve the public ones from
    /// the API address too (the front door); the gateway's own listener keeps serving them all.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn state(&self) -> ChatState {
        self.state.clone()
    }

    /// Serve until `shutdown`; then stop the persister and lifecycle listener.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        if self.state.config.persister {
            tasks.spawn(persister::run(self.state.clone(), stop_rx.clone()));
        }
        tasks.spawn(lifecycle_listener(self.state.clone(), stop_rx.clone()));
        tasks.spawn(partition_upkeep(self.state.clone(), stop_rx.clone()));
        tracing::info!(addr = %self.local_addr(), "chat gateway listening");
        // Sockets are not the HTTP server's to drain (an upgraded connection leaves it): on
        // shutdown each one is told to reconnect (to another replica, or this one restarted;
        // `hello` with its last id resends what it missed) while the server stops accepting.
        let state = self.state.clone();
        let shutdown = async move {
            shutdown.await;
            let open = state.open_sockets.load(std::sync::atomic::Ordering::Relaxed);
            tracing::info!(open, "draining: closing sockets with a reconnect hint");
            state.draining.send_replace(true);
        };
        let result = onair_web::serve(self.listener, self.router, shutdown).await;
        let drained = tokio::time::timeout(SOCKET_DRAIN, async {
            while self.state.open_sockets.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if drained.is_err() {
            let left = self.state.open_sockets.load(std::sync::atomic::Ordering::Relaxed);
            tracing::info!(left, "drain time over: the remaining sockets are cut");
        }
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        Ok(result?)
    }
}

fn router(state: ChatState, http_metrics: Arc<HttpMetrics>) -> Router {
    let state_origins = state.config.allowed_origins.clone();
    let router = Router::new()
        .route("/ws/streams/{stream_id}/chat", get(ws::ws_handler))
        .merge(rest::router())
        .route("/healthz", get(onair_web::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(http_metrics, onair_web::track_metrics))
        .with_state(state);
    // Browsers on the web app's origin call the REST routes with a bearer token (no cookies).
    let cors = onair_web::cors_layer(&state_origins, onair_web::CorsMode::ListedOrAny);
    onair_web::finish_router(router, onair_web::Limits::default()).layer(cors)
}

async fn readyz(State(state): State<ChatState>) -> impl IntoResponse {
    onair_web::readyz(State(state.readiness.clone())).await
}

async fn metrics(State(state): State<ChatState>) -> impl IntoResponse {
    onair_web::metrics_response(&state.registry)
}

async fn ensure_partitions(db: &sqlx::PgPool) -> anyhow::Result<()> {
    // `!`: the function always returns a count; Postgres reports any call as nullable.
    sqlx::query_scalar!(r#"SELECT ensure_chat_partitions((now() AT TIME ZONE 'UTC')::date - 1, 9) AS "made!""#)
        .fetch_one(db)
        .await?;
    Ok(())
}

/// Keep a week of day partitions ahead in the chat database, which may not be the apiserver's.
async fn partition_upkeep(state: ChatState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = ensure_partitions(&state.chat_db).await {
                    tracing::warn!(error = %e, "chat partition upkeep failed");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

#[derive(serde::Deserialize)]
struct Lifecycle {
    event: String,
    stream_id: StreamId,
}

/// Streams ending close their rooms' chat on every replica; streams going live reopen it.
async fn lifecycle_listener(state: ChatState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let subject = subjects::stream_lifecycle(&state.config.nats.nats_prefix);
    let mut sub = match state.nats.subscribe(subject).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot subscribe to stream lifecycle events");
            return;
        }
    };
    loop {
        tokio::select! {
            msg = sub.next() => {
                let Some(msg) = msg else { return };
                let Ok(ev) = serde_json::from_slice::<Lifecycle>(&msg.payload) else { continue };
                if let Some(room) = state.hub.get(ev.stream_id) {
                    let active = matches!(ev.event.as_str(), "started" | "live" | "starting");
                    room.update(|i| i.active = active);
                    if !active {
                        let _ = room.tx.send(axum::extract::ws::Utf8Bytes::from_static(r#"{"type":"ended"}"#));
                    }
                }
            }
            _ = stop.changed() => return,
        }
    }
}
