#![doc = include_str!("../README.md")]

pub mod clip;
pub mod config;
pub mod layout;
pub mod plan;
pub mod playlist;
pub mod store;
pub mod vod;

pub use config::RecordingsArgs;
pub use layout::{BadKey, InitName, Rel, Rendition, Root, SegmentName, Session};
/// The `object_store` this crate opens, so callers name the same version.
pub use object_store;
pub use plan::{ClipPlan, ClipWindow, Object, RenditionPlan, VodPlan};
pub use store::{Store, StoreConfig, StoreError, delete_prefix, open};
