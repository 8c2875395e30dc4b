//! LL-HLS origin core (RFC 8216bis): fragmented MP4 from an encoder in, parts, segments and
//! (blocking) playlists out. No HTTP: [`Store`] answers what a handler needs (bytes, playlist
//! text, or an error that maps to a status code). See the README for the URI scheme and rules.

pub mod blocking;
pub mod fmp4;
pub mod packager;
pub mod playlist;
pub mod store;
#[cfg(test)]
mod synth;

pub use blocking::{Decision, Live, Position, Request, WaitError, decide};
pub use packager::{Config, Packager, Part, Segment, Stats};
pub use playlist::{Form, RenditionReport, Variant};
pub use store::{CompletedSegment, FetchError, PlaylistError, Resource, SegmentSink, Store, WriteError, Writer};
