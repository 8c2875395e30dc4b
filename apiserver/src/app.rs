//! Building and running the apiserver: `Application::build` connects and binds,
//! `run_until_stopped` serves until the shutdown future resolves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::get;
use http::HeaderValue;
use onair_auth::KeyRing;
use onair_web::HttpMetrics;
use secrecy::SecretString;
use tokio::net::TcpListener;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;

use crate::config::ApiConfig;
use crate::orchestrator::{Orchestrator, RecordingOrchestrator};
use crate::state::{AppMetrics, AppState, Inner};
use crate::{
    MIGRATOR, analytics, clips, delivery, discovery, followers, internal, openapi, recordings, stream_keys, streams,
    users, vods,
};

pub struct Application {
    listener: TcpListener,
    /// The address really bound (a port of 0 is chosen at bind time).
    addr: SocketAddr,
    router: Router,
    state: AppState,
    openapi: utoipa::openapi::OpenApi,
}

impl Application {
    /// Bind `config.listen`, then [`Application::build_on`] it.
    pub async fn build(config: ApiConfig, orchestrator: Option<Arc<dyn Orchestrator>>) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(config.listen).await.map_err(|e| anyhow::anyhow!("binding {}: {e}", config.listen))?;
        Self::build_on(listener, config, orchestrator).await
    }

    /// Connect to Postgres (migrating it), Redis and NATS and load signing keys, to serve on
    /// `listener` (bound by the caller, so what needs the address can have it first: `onair up`
    /// tells the media worker). `config.listen` becomes the bound address.
    /// `orchestrator`: `None` uses the recording one (no media).
    pub async fn build_on(
        listener: TcpListener,
        mut config: ApiConfig,
        orchestrator: Option<Arc<dyn Orchestrator>>,
    ) -> anyhow::Result<Self> {
        let addr = listener.local_addr().map_err(|e| anyhow::anyhow!("the apiserver's bound address: {e}"))?;
        config.listen = addr;
        let db =
            onair_infra::pg_pool(&config.database.primary_url(), config.database.database_max_connections, "Postgres")
                .await?;
        MIGRATOR.run(&db).await?;
        let read_db = match config.database.read_url() {
            Some(url) => {
                onair_infra::pg_pool(&url, config.database.database_max_connections, "the Postgres read replica")
                    .await?
            }
            None => db.clone(),
        };
        let redis = onair_infra::redis(&config.redis).await?;
        let nats = onair_infra::nats(&config.nats).await?;

        let keys = KeyRing::load_dir(&config.jwt_keys_dir, config.jwt_active_kid.as_deref(), !config.jwt_require_keys)?;
        tracing::info!(active_kid = keys.active_kid(), "signing keys loaded");
        let verifier = keys.verifier();
        let internal_token =
            config.internal_token.clone().unwrap_or_else(|| SecretString::from(crate::sessions::random_token("int_")));
        let orchestrator: Arc<dyn Orchestrator> = match orchestrator {
            Some(o) => o,
            None if config.orchestrator == "kubernetes" => {
                let client = kube::Client::try_default().await?;
                Arc::new(crate::kubernetes::KubernetesOrchestrator::new(
                    client,
                    &config.streams_namespace,
                    &config.ingest_url,
                    &config.playback_base_url,
                ))
            }
            None => Arc::new(RecordingOrchestrator::new(config.ingest_url.clone(), config.playback_base_url.clone())),
        };

        let mut registry = onair_telemetry::registry("apiserver");
        let http_metrics = HttpMetrics::register(&mut registry);
        let metrics = AppMetrics::register(&mut registry);
        let delivery = crate::cdn::Delivery::from_config(&config, &mut registry)?;

        let readiness = onair_infra::readiness(&db, &redis, &nats);
        let recordings = open_recordings(&config, &mut registry)?;
        let playback_lookups =
            moka::future::Cache::builder().max_capacity(100_000).time_to_live(crate::recorded::LOOKUP_TTL).build();

        let stream_cache = moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_millis(config.stream_cache_ms.max(1)))
            .build();
        let stream_stale =
            moka::future::Cache::builder().max_capacity(100_000).time_to_live(crate::streams::STALE_FOR).build();

        let state = AppState(Arc::new(Inner {
            passwords: crate::passwords::Passwords::new()?,
            config,
            db,
            read_db,
            redis,
            nats,
            keys,
            verifier,
            orchestrator,
            stream_cache,
            limits: Default::default(),
            stream_stale,
            internal_token,
            metrics,
            readiness,
            registry,
            recordings,
            playback_lookups,
            delivery,
        }));
        ensure_partitions(&state).await?;
        let (router, openapi) = api_router(state.clone(), http_metrics);
        Ok(Self { listener, addr, router, state, openapi })
    }

    /// The address the apiserver serves on (the bound one, never a port of 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The state handlers see; tests use it to drive background steps by hand.
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// The generated OpenAPI document.
    pub fn openapi(&self) -> &utoipa::openapi::OpenApi {
        &self.openapi
    }

    /// Serve the chat gateway's public paths from this address too, as the Ingress does on
    /// Kubernetes (`onair up`); attach the gateway's router to the returned door once it is up.
    pub fn front_door(&mut self) -> crate::ChatDoor {
        let door = crate::ChatDoor::default();
        let api = std::mem::take(&mut self.router);
        self.router = crate::front_door::router(api, door.clone());
        door
    }

    /// The internal token media workers must present.
    pub fn internal_token(&self) -> &SecretString {
        &self.state.internal_token
    }

    /// Serve until `shutdown` resolves, then finish in-flight requests and stop background tasks.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        if self.state.config.background_tasks {
            tasks.spawn(sampler_loop(self.state.clone(), stop_rx.clone()));
            tasks.spawn(partition_loop(self.state.clone(), stop_rx.clone()));
            tasks.spawn(crate::recordings::recordings_loop(self.state.clone(), stop_rx.clone()));
        }
        tracing::info!(addr = %self.local_addr(), orchestrator = self.state.orchestrator.name(), "apiserver listening");
        let result = onair_web::serve(self.listener, self.router, shutdown).await;
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        tracing::info!("apiserver stopped");
        Ok(result?)
    }
}

/// Every route, documented: the OpenAPI document is built from the same registrations.
fn api_router(state: AppState, http_metrics: Arc<HttpMetrics>) -> (Router, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(users::router())
        .merge(stream_keys::router())
        .merge(streams::router())
        .merge(discovery::router())
        .merge(followers::router())
        .merge(analytics::router())
        .merge(delivery::router())
        .merge(internal::router())
        .merge(recordings::router())
        .merge(vods::router())
        .merge(clips::router())
        .merge(openapi::router())
        .split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    // The chat gateway's REST routes answer at the same address (the Ingress on Kubernetes,
    // `onair up` on one machine), so one document describes both.
    doc.merge(onair_chat_gateway::openapi());
    doc.merge(crate::playback::PlaybackDoc::openapi());
    openapi::document_extractor_errors(&mut doc);
    doc.paths.paths.insert("/api/openapi.json".to_owned(), openapi_path_item());
    let doc_json = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());

    let cors = onair_web::cors_layer(&state.config.cors_origins, onair_web::CorsMode::ListedWithCredentials);
    let router = router
        .route(
            "/api/openapi.json",
            get(move || {
                let body = doc_json.clone();
                async move { ([(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body) }
            }),
        )
        .merge(crate::playback::router())
        .route_layer(axum::middleware::from_fn_with_state(http_metrics, onair_web::track_metrics))
        .with_state(state);
    let router =
        onair_web::finish_router(router.merge(crate::web_app::router()), onair_web::Limits::default()).layer(cors);
    (router, doc)
}

/// The recordings store `ONAIR_RECORDINGS_URL` names (a relative path is taken from the working
/// directory, as the media worker takes it), or `None` when recording is off.
fn open_recordings(
    config: &ApiConfig,
    registry: &mut prometheus_client::registry::Registry,
) -> anyhow::Result<Option<Arc<crate::recorded::Recordings>>> {
    let cwd = std::env::current_dir()?;
    let Some(store_config) = config.recordings.store_config(&cwd)? else {
        tracing::info!("recording is off (ONAIR_RECORDINGS_URL is empty): no VODs");
        return Ok(None);
    };
    let store = onair_recording::open(&store_config)?;
    tracing::info!(url = %store_config.url, "recordings store");
    Ok(Some(crate::recorded::Recordings::new(store, registry)))
}

/// The document describes itself too, so "every routed path is documented" has no exception.
fn openapi_path_item() -> utoipa::openapi::PathItem {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder};
    use utoipa::openapi::response::ResponseBuilder;
    utoipa::openapi::PathItem::new(
        HttpMethod::Get,
        OperationBuilder::new()
            .summary(Some("This OpenAPI document"))
            .tag("operations")
            .response("200", ResponseBuilder::new().description("OpenAPI 3.1 JSON").build())
            .build(),
    )
}

/// Chat partitions for yesterday through a week ahead; safe to run from every replica.
async fn ensure_partitions(state: &AppState) -> anyhow::Result<()> {
    // `!`: the function always returns a count; Postgres reports any call as nullable.
    let made =
        sqlx::query_scalar!(r#"SELECT ensure_chat_partitions((now() AT TIME ZONE 'UTC')::date - 1, 9) AS "made!""#)
            .fetch_one(&state.db)
            .await?;
    if made > 0 {
        tracing::info!(partitions = made, "created chat_messages partitions");
    }
    Ok(())
}

async fn sampler_loop(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(state.config.sample_interval_secs.max(1)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = state.sample_analytics().await {
                    tracing::warn!(error = %e, "analytics sample failed");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

async fn partition_loop(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = ensure_partitions(&state).await {
                    tracing::warn!(error = %e, "chat partition upkeep failed");
                }
            }
            _ = stop.changed() => return,
        }
    }
}
