#![doc = include_str!("../README.md")]

pub mod layout;
pub mod plan;
pub mod playlist;

pub use layout::{BadKey, InitName, Rel, Rendition, Root, SegmentName, Session};
pub use plan::{Object, RenditionPlan, VodPlan};
