//! `onair`: one binary that runs any onair service, or all of them on one machine.

use clap::{Parser, Subcommand};
use onair_apiserver::{ApiConfig, Application};
use onair_chat_gateway::{ChatConfig, ChatGateway};
use onair_config::{DatabaseArgs, LogArgs};

#[derive(Parser)]
#[command(name = "onair", version, about = "onair live streaming platform")]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server.
    Apiserver(ApiConfig),
    /// Apply database migrations (creating the database if needed) and exit.
    Migrate(DatabaseArgs),
    /// Run every service on this machine.
    Up(ApiConfig),
    /// Run a chat gateway (WebSocket rooms over NATS, history persister included).
    ChatGateway(ChatConfig),
    /// Run a media worker (RTMP ingest -> HLS ladder).
    Media,
    /// Run the Kubernetes operator.
    Operator,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    onair_telemetry::init_tracing(cli.log.json());
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
        Command::Up(config) => {
            // The single-machine platform: the API server and a chat gateway sharing Postgres,
            // Redis and NATS (the media pipeline joins with its issue).
            onair_apiserver::migrate(&config.database.primary_url()).await?;
            let chat_args = {
                use secrecy::ExposeSecret as _;
                vec![
                    "--database-url".to_owned(),
                    config.database.primary_url(),
                    "--redis-url".to_owned(),
                    config.redis.redis_url.expose_secret().to_owned(),
                    "--redis-prefix".to_owned(),
                    config.redis.redis_prefix.clone(),
                    "--nats-url".to_owned(),
                    config.nats.nats_url.expose_secret().to_owned(),
                    "--nats-prefix".to_owned(),
                    config.nats.nats_prefix.clone(),
                ]
            };
            let app = Application::build(config, None).await?;
            let addr = app.local_addr();
            let mut chat_config = ChatConfig::from_args(chat_args)?;
            chat_config.jwks_url = format!("http://{addr}/.well-known/jwks.json");
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                let _ = rx.changed().await;
            };
            let api = tokio::spawn(app.run_until_stopped(stopped(stop_rx.clone())));
            let chat = ChatGateway::build(chat_config).await?;
            let chat_addr = chat.local_addr();
            let chat = tokio::spawn(chat.run_until_stopped(stopped(stop_rx)));
            println!("onair is up:");
            println!("  API        http://{addr}/api   (OpenAPI: http://{addr}/api/openapi.json)");
            println!("  chat       ws://{chat_addr}/ws/streams/{{stream_id}}/chat");
            shutdown_signal().await;
            let _ = stop_tx.send(true);
            api.await??;
            chat.await??;
            Ok(())
        }
        Command::ChatGateway(config) => {
            let gw = ChatGateway::build(config).await?;
            gw.run_until_stopped(shutdown_signal()).await
        }
        Command::Media | Command::Operator => {
            anyhow::bail!(
                "this target is not part of this build yet (see the open issues: chat gateway, media pipeline, Kubernetes)"
            )
        }
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
