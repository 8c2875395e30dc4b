#![doc = include_str!("../README.md")]

mod accept;
mod api;
mod capacity;
mod config;
mod encoder;
mod feed;
mod gateway;
mod guard;
mod hls;
mod internal;
mod ladder;
mod ll;
mod ll_streams;
mod metering;
mod metrics;
mod origin;
mod playlists;
mod progress;
mod publisher;
mod record;
mod relay;
mod rtmp;
mod server;
mod shed;
mod slots;
mod state;
mod sweep;
mod transcoders;
mod worker;

pub use config::{Latency, MediaConfig, Role};
pub use gateway::{GatewayConfig, IngestGateway};
pub use ladder::{Rendition, parse_ladder};
pub use origin::MAX_UPLOAD_BYTES;
pub use worker::MediaWorker;
