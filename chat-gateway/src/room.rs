//! Rooms: one per stream with local sockets. A room holds the moderation state its sends are
//! checked against, and one task that reads the room's NATS subjects and fans frames out to
//! the local sockets, coalescing a busy room's events into one frame per tick.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use onair_domain::contracts::subjects;
use onair_domain::{StreamId, UserId};
use tokio::sync::broadcast;
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::{ChatError, ChatResult};
use crate::filter::Filters;
use crate::protocol::ModEvent;
use crate::state::ChatState;

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
    /// The restriction on `user` now, if any: `Err(None)` banned, `Err(Some(until))` timed out.
    pub fn restriction(&self, user: UserId) -> Result<(), Option<DateTime<Utc>>> {
        match self.bans.get(&user) {
            None => Ok(()),
            Some(None) => Err(None),
            Some(Some(until)) if *until > Utc::now() => Err(Some(*until)),
            Some(Some(_)) => Ok(()),
        }
    }

    fn apply(&mut self, ev: &ModEvent) {
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

/// Load a room's state; `None` when the stream does not exist.
pub async fn load_info(state: &ChatState, stream: StreamId) -> ChatResult<Option<RoomInfo>> {
    let row: Option<(Uuid, String)> = sqlx::query_as("SELECT user_id, status FROM streams WHERE id = $1")
        .bind(stream.0)
        .fetch_optional(&state.db)
        .await?;
    let Some((channel, status)) = row else { return Ok(None) };
    let settings: Option<(i32, bool, bool)> =
        sqlx::query_as("SELECT slow_mode_secs, followers_only, links_allowed FROM chat_settings WHERE channel_id = $1")
            .bind(channel)
            .fetch_optional(&state.db)
            .await?;
    let (slow, followers_only, links_allowed) = settings.unwrap_or((0, false, true));
    let moderators: Vec<Uuid> = sqlx::query_scalar("SELECT user_id FROM chat_moderators WHERE channel_id = $1")
        .bind(channel)
        .fetch_all(&state.db)
        .await?;
    let bans: Vec<(Uuid, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT user_id, until FROM chat_bans WHERE channel_id = $1 AND (until IS NULL OR until > now())",
    )
    .bind(channel)
    .fetch_all(&state.db)
    .await?;
    Ok(Some(RoomInfo {
        stream_id: stream,
        channel_id: UserId(channel),
        // `ending`: the streamer pressed stop; chat closes with it (as the lifecycle event does).
        active: matches!(status.as_str(), "starting" | "live"),
        slow_mode_secs: slow.max(0) as u32,
        followers_only,
        links_allowed,
        moderators: moderators.into_iter().map(UserId).collect(),
        bans: bans.into_iter().map(|(u, t)| (UserId(u), t)).collect(),
        filters: load_filters(state, UserId(channel)).await?,
    }))
}

async fn load_filters(state: &ChatState, channel: UserId) -> ChatResult<Filters> {
    let rules: Vec<(String, bool)> =
        sqlx::query_as("SELECT pattern, is_regex FROM chat_filters WHERE channel_id = $1 OR channel_id IS NULL")
            .bind(channel.0)
            .fetch_all(&state.db)
            .await?;
    Ok(Filters::new(rules.iter().map(|(p, r)| (p.as_str(), *r))))
}

pub struct Room {
    pub id: StreamId,
    pub info: RwLock<RoomInfo>,
    /// Serialised frames for the local sockets. A socket that falls behind by the channel's
    /// capacity is a slow consumer and is closed.
    pub tx: broadcast::Sender<Utf8Bytes>,
    users: AtomicUsize,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
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
    rooms: Mutex<HashMap<StreamId, Arc<Room>>>,
}

/// A use of a room (a socket, or one REST send). The room closes, and its NATS interest is
/// dropped, when the last handle goes.
pub struct RoomHandle {
    pub room: Arc<Room>,
    state: ChatState,
}

impl Drop for RoomHandle {
    fn drop(&mut self) {
        if self.room.users.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut rooms = self.state.hub.rooms.lock().unwrap_or_else(|e| e.into_inner());
            // Someone may have joined between the decrement and the lock.
            if self.room.users.load(Ordering::Acquire) == 0
                && rooms.get(&self.room.id).is_some_and(|r| Arc::ptr_eq(r, &self.room))
            {
                rooms.remove(&self.room.id);
                if let Some(t) = self.room.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    t.abort();
                }
                self.state.metrics.rooms.dec();
                tracing::debug!(stream_id = %self.room.id, "room closed");
            }
        }
    }
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

/// Join `stream`'s room, opening it (state from Postgres, subscriptions on NATS) if this
/// replica has none. 404 when the stream does not exist.
pub async fn join(state: &ChatState, stream: StreamId) -> ChatResult<RoomHandle> {
    let existing = {
        let rooms = state.hub.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.get(&stream).cloned().inspect(|r| {
            r.users.fetch_add(1, Ordering::AcqRel);
        })
    };
    if let Some(room) = existing {
        return Ok(RoomHandle { room, state: state.clone() });
    }
    // Subscribe before reading the room's state, so a moderation event published in between is
    // applied on top of what we read instead of being lost.
    let prefix = &state.config.nats.nats_prefix;
    let msgs = state.nats.subscribe(subjects::chat_room(prefix, stream)).await.map_err(anyhow::Error::from)?;
    let mods = state.nats.subscribe(subjects::chat_moderation(prefix, stream)).await.map_err(anyhow::Error::from)?;
    let info =
        load_info(state, stream).await?.ok_or_else(|| ChatError::not_found("stream_not_found", "no such stream"))?;
    let (tx, _) = broadcast::channel(state.config.outbound_queue.max(8));
    let room =
        Arc::new(Room { id: stream, info: RwLock::new(info), tx, users: AtomicUsize::new(1), task: Mutex::new(None) });

    let mut rooms = state.hub.rooms.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(other) = rooms.get(&stream).cloned() {
        // Another join opened it while we loaded; use theirs (our subscriptions drop here).
        other.users.fetch_add(1, Ordering::AcqRel);
        return Ok(RoomHandle { room: other, state: state.clone() });
    }
    let task = tokio::spawn(run_room(state.clone(), room.clone(), msgs, mods));
    *room.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    rooms.insert(stream, room.clone());
    state.metrics.rooms.inc();
    tracing::debug!(stream_id = %stream, "room opened");
    Ok(RoomHandle { room, state: state.clone() })
}

/// Fan a room's NATS traffic out to its sockets. The first event after a quiet tick goes out
/// at once; events arriving within a tick of the last frame wait for the tick's end and share
/// one frame, so the cost per socket grows with ticks, not with messages.
async fn run_room(
    state: ChatState,
    room: Arc<Room>,
    mut msgs: async_nats::Subscriber,
    mut mods: async_nats::Subscriber,
) {
    let tick = Duration::from_millis(state.config.tick_ms.max(1));
    let mut pending: Vec<bytes::Bytes> = Vec::new();
    let mut last_flush = Instant::now() - tick;
    loop {
        let deadline = last_flush + tick;
        tokio::select! {
            Some(m) = msgs.next() => pending.push(m.payload),
            Some(m) = mods.next() => {
                match serde_json::from_slice::<ModEvent>(&m.payload) {
                    Ok(ev) => {
                        if matches!(ev, ModEvent::FiltersChanged) {
                            // Moderators or word rules changed: reload the room's rules.
                            match load_info(&state, room.id).await {
                                Ok(Some(fresh)) => room.update(|i| {
                                    i.moderators = fresh.moderators;
                                    i.filters = fresh.filters;
                                }),
                                Ok(None) => {}
                                Err(e) => tracing::warn!(stream_id = %room.id, error = %e, "reloading room rules failed"),
                            }
                        } else {
                            room.update(|i| i.apply(&ev));
                        }
                        if !matches!(ev, ModEvent::FiltersChanged) {
                            pending.push(m.payload);
                        }
                    }
                    Err(e) => tracing::warn!(stream_id = %room.id, error = %e, "bad moderation event"),
                }
            }
            _ = tokio::time::sleep_until(deadline), if !pending.is_empty() => {}
            else => return,
        }
        if !pending.is_empty() && Instant::now() >= last_flush + tick {
            flush(&state, &room, &mut pending);
            last_flush = Instant::now();
        }
    }
}

fn flush(state: &ChatState, room: &Room, pending: &mut Vec<bytes::Bytes>) {
    let frame: Utf8Bytes = if pending.len() == 1 {
        Utf8Bytes::from(String::from_utf8_lossy(&pending[0]).into_owned())
    } else {
        let mut s = String::with_capacity(pending.iter().map(|p| p.len() + 1).sum::<usize>() + 32);
        s.push_str(r#"{"type":"batch","events":["#);
        for (i, p) in pending.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&String::from_utf8_lossy(p));
        }
        s.push_str("]}");
        state.metrics.coalesced_frames.inc();
        Utf8Bytes::from(s)
    };
    pending.clear();
    let receivers = room.tx.send(frame).unwrap_or(0);
    state.metrics.deliveries.inc_by(receivers as u64);
}
