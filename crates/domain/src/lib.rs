#![doc = include_str!("../README.md")]

pub mod contracts;
pub mod ids;
pub mod ladder;
pub mod values;

pub use ids::{StreamId, UserId};
pub use ladder::LadderLevel;
pub use values::{
    AvatarUrl, Bio, Category, DisplayName, Email, Language, Password, PlaybackAccess, RecordRenditions, Role,
    StreamStatus, StreamTitle, Tag, Tags, Tier, Username, ValidationError,
};
