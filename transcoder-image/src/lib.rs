#![doc = include_str!("../README.md")]

mod api;
mod config;
mod flv;
mod gateway;
mod hls;
mod ladder;
mod origin;
mod relay;
mod rtmp;
mod worker;

pub use config::{MediaConfig, Role};
pub use gateway::{GatewayConfig, IngestGateway};
pub use ladder::{Rendition, parse_ladder};
pub use worker::MediaWorker;
