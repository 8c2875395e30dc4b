#![doc = include_str!("../README.md")]

mod access;
mod analytics;
mod app;
mod auth;
mod cdn;
mod clips;
mod config;
mod delivery;
mod discovery;
mod error;
mod events;
mod followers;
mod front_door;
mod internal;
pub mod kubernetes;
mod lifecycle;
mod openapi;
mod orchestrator;
mod pagination;
mod passwords;
mod playback;
mod ratelimit;
mod recorded;
mod recordings;
mod sessions;
mod state;
mod stream_keys;
mod streams;
mod users;
mod vods;
mod web_app;

pub use app::Application;
pub use config::ApiConfig;
pub use error::ApiError;
pub use front_door::ChatDoor;
pub use orchestrator::{
    LocalOrchestrator, MediaEndpoints, MediaStatus, Orchestrator, OrchestratorError, RecordedCall,
    RecordingOrchestrator, StreamSpec,
};
pub use recorded::Recordings;
pub use recordings::Finalized;
pub use state::AppState;

/// The schema, embedded: `onair migrate` and apiserver start-up apply it.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Apply pending migrations to the database at `url`, creating the database if it is missing.
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    use sqlx::migrate::MigrateDatabase as _;
    if !sqlx::Postgres::database_exists(url).await? {
        tracing::info!("creating database");
        sqlx::Postgres::create_database(url).await?;
    }
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(url).await?;
    MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(())
}
