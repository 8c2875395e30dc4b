#![doc = include_str!("../README.md")]

mod app;
mod config;
mod error;
pub mod filter;
mod history;
mod hub;
mod jwks;
mod metrics;
mod persister;
pub mod protocol;
mod rest;
mod room;
mod send;
mod state;
mod whole_number;
mod ws;

pub use app::ChatGateway;
pub use config::ChatConfig;
pub use error::ChatError;
pub use rest::openapi;
pub use state::ChatState;
