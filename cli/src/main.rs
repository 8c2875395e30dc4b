//! `onair`: one binary that runs any onair service, or all of them on one machine.

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use onair_apiserver::{ApiConfig, Application};
use onair_chat_gateway::{ChatConfig, ChatGateway};
use onair_config::{DatabaseArgs, LogArgs};
use onair_domain::contracts::{http::JWKS_PATH, playback};
use onair_transcoder_image::{MediaConfig, MediaWorker};
use tokio::net::TcpListener;

mod supervise;

#[derive(Parser)]
#[command(name = "onair", version, about = "onair live streaming platform")]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct UpArgs {
    #[command(flatten)]
    api: ApiConfig,
    /// Publish a test pattern as a live demo stream (needs ffmpeg).
    #[arg(long, env = "ONAIR_DEMO", default_value_t = true, action = clap::ArgAction::Set)]
    demo: bool,
    /// `low`: LL-HLS (parts of 200 ms, blocking playlist reload); `normal`: standard HLS.
    #[arg(long, env = "ONAIR_LATENCY", value_enum, default_value = "low")]
    latency: onair_transcoder_image::Latency,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server.
    Apiserver(ApiConfig),
    /// Apply database migrations (creating the database if needed) and exit.
    Migrate(DatabaseArgs),
    /// Run every service on this machine.
    Up(UpArgs),
    /// Run a chat gateway (WebSocket rooms over NATS, history persister included).
    ChatGateway(ChatConfig),
    /// Run a media worker (RTMP ingest -> HLS ladder -> HLS origin).
    Media(MediaConfig),
    /// Run the Kubernetes operator (reconciles LiveStream resources; needs a kubeconfig or an
    /// in-cluster service account).
    Operator(onair_operator::OperatorConfig),
    /// Run the RTMP ingest gateway: one address for every streamer, forwarding each publisher
    /// to its stream's ingest pod after checking the key.
    IngestGateway(onair_transcoder_image::GatewayConfig),
    /// Print the `LiveStream` CustomResourceDefinition as YAML (what `crds/livestream.yaml` holds).
    Crd,
    /// Create the internal token Secret with a random token unless it exists (the chart's
    /// pre-install hook; never changes an existing token).
    InternalToken(onair_operator::internal_token::InternalTokenArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    onair_telemetry::init_tracing(cli.log.json());
    // rml_rtmp's panics on a peer's malformed messages are caught (onair-rtmp): not log noise.
    onair_telemetry::install_panic_hook(onair_rtmp::containing);
    match cli.command {
        Command::Apiserver(config) => {
            let app = Application::build(config, None).await?;
            app.run_until_stopped(shutdown_signal()).await
        }
        Command::Migrate(db) => {
            onair_apiserver::migrate(&db.primary_url()).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Up(args) => {
            let given = matches.subcommand_matches("up").map(Given::from).unwrap_or_default();
            up(args, given).await
        }
        Command::ChatGateway(config) => {
            let gw = ChatGateway::build(config).await?;
            gw.run_until_stopped(shutdown_signal()).await
        }
        Command::Media(config) => {
            let worker = MediaWorker::build(config).await?;
            worker.run_until_stopped(shutdown_signal()).await
        }
        Command::Operator(config) => onair_operator::run(config, shutdown_signal()).await,
        Command::IngestGateway(config) => {
            let gw = onair_transcoder_image::IngestGateway::build(config).await?;
            gw.run_until_stopped(shutdown_signal()).await
        }
        Command::InternalToken(args) => onair_operator::internal_token::run(args).await,
        Command::Crd => {
            use std::io::Write as _;
            std::io::stdout().write_all(onair_crds::crd_yaml().as_bytes())?;
            Ok(())
        }
    }
}

/// Which of `onair up`'s settings the user gave (flag or environment) rather than left at
/// their defaults.
#[derive(Debug, Default)]
struct Given {
    ingest_url: bool,
    playback_base_url: bool,
    recordings_url: bool,
}

impl From<&ArgMatches> for Given {
    fn from(m: &ArgMatches) -> Self {
        let given = |id: &str| !matches!(m.value_source(id), None | Some(ValueSource::DefaultValue));
        Self {
            ingest_url: given("ingest_url"),
            playback_base_url: given("playback_base_url"),
            recordings_url: given("recordings_url"),
        }
    }
}

/// Where `onair up` records broadcasts unless told otherwise (relative to where it runs, like
/// its signing keys).
const DEFAULT_RECORDINGS_DIR: &str = ".onair/recordings";

/// The single-machine platform: the API server, a chat gateway and a media worker sharing
/// Postgres, Redis and NATS, plus (by default) a demo stream publishing a test pattern.
///
/// Every listener is bound before anything that needs its address is built, and each service
/// is handed the bound addresses, so a port of 0 works anywhere (`--listen 127.0.0.1:0`).
async fn up(args: UpArgs, given: Given) -> anyhow::Result<()> {
    use secrecy::ExposeSecret as _;
    let mut config = args.api;
    onair_apiserver::migrate(&config.database.primary_url()).await?;
    // One internal token for the apiserver and the media worker it orchestrates.
    let internal = match &config.internal_token {
        Some(t) => t.expose_secret().to_owned(),
        None => format!("int_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()),
    };
    config.internal_token = Some(secrecy::SecretString::from(internal.clone()));
    // Signed playback links work out of the box (a channel set to `signed` or `followers`): one
    // key the apiserver signs with and the media worker verifies, unless one was given. 64
    // base64 characters of two random UUIDs: 48 bytes, 244 of them random bits.
    let playback_keys = match &config.playback_keys {
        Some(k) => k.expose_secret().to_owned(),
        None => format!("local:{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()),
    };
    config.playback_keys = Some(secrecy::SecretString::from(playback_keys.clone()));
    let (redis_url, redis_prefix) =
        (config.redis.redis_url.expose_secret().to_owned(), config.redis.redis_prefix.clone());
    let shared = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> =
            vec!["--redis-url".into(), redis_url.clone(), "--redis-prefix".into(), redis_prefix.clone()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let db_url = config.database.primary_url();
    let nats_url = config.nats.nats_url.expose_secret().to_owned();
    let nats_prefix = config.nats.nats_prefix.clone();
    // The API address first: the media worker calls it (stream keys, status reports).
    let api_listener =
        TcpListener::bind(config.listen).await.map_err(|e| anyhow::anyhow!("binding {}: {e}", config.listen))?;
    let addr = api_listener.local_addr().map_err(|e| anyhow::anyhow!("the apiserver's bound address: {e}"))?;
    let api_url = format!("http://{addr}");
    let latency =
        clap::ValueEnum::to_possible_value(&args.latency).map(|v| v.get_name().to_owned()).unwrap_or_default();
    // One machine records into a directory by default (services started on their own, as on
    // Kubernetes, record only where they are told to); the worker stores where the apiserver reads.
    if !given.recordings_url {
        config.recordings.url = DEFAULT_RECORDINGS_DIR.to_owned();
    }
    let recordings_dir = match config.recordings.store_config(&std::env::current_dir()?)? {
        Some(store) => store.url.to_string(),
        None => String::new(),
    };
    let media_config = MediaConfig::from_args(shared(&[
        "--apiserver-url",
        &api_url,
        "--internal-token",
        &internal,
        "--latency",
        &latency,
        "--recordings-url",
        &recordings_dir,
        "--playback-keys",
        &playback_keys,
    ]))?;
    // Then the media worker, whose bound addresses the apiserver hands out: what streamers
    // publish to and viewers play from, unless the user named other URLs (a CDN, a proxy).
    let media = MediaWorker::build(media_config).await?;
    let (rtmp_addr, hls_addr) = (media.rtmp_addr(), media.http_addr());
    let (local_ingest, local_playback) = (media.ingest_url(), media.playback_base_url());
    if !given.ingest_url {
        config.ingest_url = local_ingest.clone();
    }
    if !given.playback_base_url {
        config.playback_base_url = local_playback.clone();
    }
    let ingest_url = config.ingest_url.clone();
    let playback_base_url = config.playback_base_url.clone();
    let orchestrator = onair_apiserver::LocalOrchestrator::new(
        &format!("http://{hls_addr}"),
        secrecy::SecretString::from(internal.clone()),
        &ingest_url,
        &playback_base_url,
    );
    let mut app = Application::build_on(api_listener, config, Some(std::sync::Arc::new(orchestrator))).await?;
    // One address for every public route, chat included, as the Ingress gives on Kubernetes.
    let chat_door = app.front_door();

    let mut chat_config = ChatConfig::from_args(shared(&[
        "--database-url",
        &db_url,
        "--nats-url",
        &nats_url,
        "--nats-prefix",
        &nats_prefix,
    ]))?;
    chat_config.jwks_url = format!("{api_url}{JWKS_PATH}");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.changed().await;
    };
    let mut services = supervise::Supervisor::start(vec![
        ("apiserver", Box::pin(app.run_until_stopped(stopped(stop_rx.clone())))),
        ("media worker", Box::pin(media.run_until_stopped(stopped(stop_rx.clone())))),
    ]);
    // The chat gateway starts from the apiserver's keys: built once that serves.
    let chat = ChatGateway::build(chat_config).await?;
    chat_door.attach(chat.router());
    services.add(("chat gateway", Box::pin(chat.run_until_stopped(stopped(stop_rx)))));

    println!("onair is up:");
    println!("  web app    http://{addr}/");
    println!("  API        http://{addr}/api   (chat included; OpenAPI: http://{addr}/api/openapi.json)");
    println!("  chat       ws://{addr}/ws/streams/{{stream_id}}/chat");
    println!("  ingest     {ingest_url}/{{stream_key}}   (RTMP on {rtmp_addr})");
    println!("  playback   {}", playback::master_url(&playback_base_url, "{stream_id}"));
    let demo = if args.demo {
        // The demo publishes to and plays from this machine's worker, whatever URLs are handed out.
        match demo::start(&api_url, &local_ingest, &local_playback).await {
            Ok(d) => {
                println!("  demo       {}   (live test pattern; open in Safari, VLC or `ffplay`)", d.playback_url);
                Some(d)
            }
            Err(e) => {
                tracing::warn!(error = %e, "demo stream not started");
                None
            }
        }
    } else {
        None
    };
    services
        .run(shutdown_signal(), move || {
            drop(demo);
            let _ = stop_tx.send(true);
        })
        .await
}

mod demo {
    //! A demo streamer: an account, a started stream, and ffmpeg publishing a test pattern
    //! to it over RTMP, exactly as OBS would.

    use serde_json::{Value, json};

    pub struct Demo {
        pub playback_url: String,
        _publisher: tokio::process::Child,
    }

    pub async fn start(api: &str, rtmp: &str, hls: &str) -> anyhow::Result<Demo> {
        let http = onair_http::client();
        let creds = json!({"username": "demo", "email": "demo@onair.local", "password": "demo stream password"});
        let mut session: Value =
            http.post(format!("{api}/api/users/register")).json(&creds).send().await?.json().await?;
        if session.get("access_token").is_none() {
            session = http
                .post(format!("{api}/api/users/login"))
                .json(&json!({"login": "demo", "password": "demo stream password"}))
                .send()
                .await?
                .json()
                .await?;
        }
        let token =
            session["access_token"].as_str().ok_or_else(|| anyhow::anyhow!("demo login failed: {session}"))?.to_owned();
        // A test pattern running as long as the platform is not worth ~2.4 GB an hour of
        // recordings: the demo channel opts out (every other channel records by default).
        http.patch(format!("{api}/api/users/me"))
            .bearer_auth(&token)
            .json(&json!({"record_broadcasts": false}))
            .send()
            .await?
            .error_for_status()?;
        let key: Value =
            http.post(format!("{api}/api/users/me/stream-key")).bearer_auth(&token).send().await?.json().await?;
        let key = key["stream_key"].as_str().ok_or_else(|| anyhow::anyhow!("no demo stream key"))?.to_owned();
        let body = json!({"title": "onair demo: test pattern", "category": "software", "tags": ["demo"]});
        let mut started: Value =
            http.post(format!("{api}/api/streams/start")).bearer_auth(&token).json(&body).send().await?.json().await?;
        if started["stream"]["id"].is_null() {
            // A demo stream from an earlier run is still open: end it and start afresh.
            let me: Value = http.get(format!("{api}/api/users/me")).bearer_auth(&token).send().await?.json().await?;
            let profile: Value = http
                .get(format!("{api}/api/users/{}", me["id"].as_str().unwrap_or_default()))
                .send()
                .await?
                .json()
                .await?;
            if let Some(old) = profile["live_stream_id"].as_str() {
                http.post(format!("{api}/api/streams/{old}/stop")).bearer_auth(&token).send().await?;
            }
            started = http
                .post(format!("{api}/api/streams/start"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await?
                .json()
                .await?;
        }
        let stream = started["stream"]["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("demo stream did not start: {started}"))?
            .to_owned();
        let publisher = tokio::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=1280x720:rate=30",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
            ])
            // A burned-in wall clock, so the delay to the viewer can be read off the picture.
            .args([
                "-vf",
                "drawtext=text='%{localtime\\:%T}':fontsize=64:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=12:x=40:y=40",
            ])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-tune",
                "zerolatency",
                "-g",
                "60",
                "-b:v",
                "3000k",
                "-c:a",
                "aac",
                "-f",
                "flv",
            ])
            .arg(format!("{rtmp}/{key}"))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        Ok(Demo { playback_url: onair_domain::contracts::playback::master_url(hls, &stream), _publisher: publisher })
    }
}

/// Resolves on Ctrl-C or SIGTERM, so Kubernetes and terminals both stop us gracefully.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested");
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        // Catches clashing flag names across flattened config groups at test time, not at launch.
        super::Cli::command().debug_assert();
    }

    #[test]
    fn defaults_work_on_one_machine() {
        use clap::Parser as _;
        let cli = super::Cli::try_parse_from(["onair", "apiserver"]).unwrap();
        let super::Command::Apiserver(c) = cli.command else { panic!("parsed the wrong subcommand") };
        use secrecy::ExposeSecret as _;
        assert_eq!(c.database.database_url.expose_secret(), "postgres://localhost/onair");
        assert_eq!(c.redis.redis_url.expose_secret(), "redis://127.0.0.1:6379");
        assert_eq!(c.nats.nats_url.expose_secret(), "nats://127.0.0.1:4222");
    }
}
