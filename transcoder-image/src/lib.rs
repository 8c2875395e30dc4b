#![doc = include_str!("../README.md")]

mod api;
mod config;
mod flv;
mod gateway;
mod hls;
mod ladder;
#[allow(dead_code)] // wired into the worker with the LL-HLS encoder outputs (issue 13)
mod ll;
mod origin;
mod relay;
mod rtmp;
mod worker;

pub use config::{MediaConfig, Role};
pub use gateway::{GatewayConfig, IngestGateway};
pub use ladder::{Rendition, parse_ladder};
pub use worker::MediaWorker;
