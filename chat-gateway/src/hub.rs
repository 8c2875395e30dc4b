//! The rooms of this replica and what each holds: the moderation state its sends are checked
//! against and the channel to its local sockets. Opening, closing and feeding rooms is
//! `room`'s job; this is the data both it and the shared state name.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use onair_auth::AccessClaims;
use onair_domain::{StreamId, UserId};
use tokio::sync::broadcast;

use crate::filter::Filters;
use crate::protocol::ModEvent;

/// What sends in a room are checked against. Loaded from Postgres when the room opens and
/// kept current by the moderation events every replica receives.
#[derive(Debug, Clone)]
pub struct RoomInfo {
    pub stream_id: StreamId,
    /// The streamer: bans, moderators and rules belong to the channel, not the broadcast.
    pub channel_id: UserId,
    pub active: bool,
    pub slow_mode_secs: u32,
    pub followers_only: bool,
    pub links_allowed: bool,
    pub moderators: HashSet<UserId>,
    /// `None`: banned; `Some(t)`: timed out until `t`.
    pub bans: HashMap<UserId, Option<DateTime<Utc>>>,
    pub filters: Filters,
}

impl RoomInfo {
    /// Whether `claims` are staff here, with the room's list of moderators.
    pub fn is_staff(&self, claims: &AccessClaims) -> bool {
        claims.is_staff(self.channel_id, self.moderators.contains(&claims.sub))
    }

    /// The restriction on `user` now, if any: `Err(None)` banned, `Err(Some(until))` timed out.
    pub fn restriction(&self, user: UserId) -> Result<(), Option<DateTime<Utc>>> {
        match self.bans.get(&user) {
            None => Ok(()),
            Some(None) => Err(None),
            Some(Some(until)) if *until > Utc::now() => Err(Some(*until)),
            Some(Some(_)) => Ok(()),
        }
    }

    pub(crate) fn apply(&mut self, ev: &ModEvent) {
        match ev {
            ModEvent::Timeout { user_id, until } => {
                self.bans.insert(*user_id, Some(*until));
            }
            ModEvent::Ban { user_id } => {
                self.bans.insert(*user_id, None);
            }
            ModEvent::Unban { user_id } => {
                self.bans.remove(user_id);
            }
            ModEvent::SlowMode { seconds } => self.slow_mode_secs = *seconds,
            ModEvent::Settings { followers_only, links_allowed } => {
                self.followers_only = *followers_only;
                self.links_allowed = *links_allowed;
            }
            ModEvent::Ended => self.active = false,
            ModEvent::Delete { .. } | ModEvent::Clear | ModEvent::FiltersChanged => {}
        }
    }
}

pub struct Room {
    pub id: StreamId,
    pub info: RwLock<RoomInfo>,
    /// Serialised frames for the local sockets. A socket that falls behind by the channel's
    /// capacity is a slow consumer and is closed.
    pub tx: broadcast::Sender<Utf8Bytes>,
    pub(crate) users: AtomicUsize,
    pub(crate) task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Room {
    pub fn info(&self) -> RoomInfo {
        // A poisoned lock means a panic mid-update elsewhere; the data is still the last good state.
        self.info.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut RoomInfo)) {
        f(&mut self.info.write().unwrap_or_else(|e| e.into_inner()));
    }
}

/// The rooms of this replica.
#[derive(Default)]
pub struct Hub {
    pub(crate) rooms: Mutex<HashMap<StreamId, Arc<Room>>>,
}

impl Hub {
    pub fn get(&self, stream: StreamId) -> Option<Arc<Room>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner()).get(&stream).cloned()
    }

    pub fn len(&self) -> usize {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
