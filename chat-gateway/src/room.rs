//! Rooms: one per stream with local sockets (the data is in `hub`). Joining opens a room and
//! its one task, which reads the room's NATS subjects and fans frames out to the local sockets,
//! coalescing a busy room's events into one frame per tick; the last handle dropped closes it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures::StreamExt as _;
use onair_domain::contracts::subjects;
use onair_domain::{StreamId, UserId};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::error::{ChatError, ChatResult};
use crate::filter::Filters;
pub(crate) use crate::hub::{Room, RoomInfo};
use crate::protocol::ModEvent;
use crate::state::ChatState;

/// Load a room's state; `None` when the stream does not exist.
pub async fn load_info(state: &ChatState, stream: StreamId) -> ChatResult<Option<RoomInfo>> {
    let row =
        sqlx::query!("SELECT user_id, status FROM streams WHERE id = $1", stream.0).fetch_optional(&state.db).await?;
    let Some(row) = row else { return Ok(None) };
    let (channel, status) = (row.user_id, row.status);
    let settings = sqlx::query!(
        "SELECT slow_mode_secs, followers_only, links_allowed FROM chat_settings WHERE channel_id = $1",
        channel,
    )
    .fetch_optional(&state.db)
    .await?;
    let (slow, followers_only, links_allowed) =
        settings.map_or((0, false, true), |s| (s.slow_mode_secs, s.followers_only, s.links_allowed));
    let moderators = sqlx::query_scalar!("SELECT user_id FROM chat_moderators WHERE channel_id = $1", channel)
        .fetch_all(&state.db)
        .await?;
    let bans = sqlx::query!(
        "SELECT user_id, until FROM chat_bans WHERE channel_id = $1 AND (until IS NULL OR until > now())",
        channel,
    )
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
        bans: bans.into_iter().map(|b| (UserId(b.user_id), b.until)).collect(),
        filters: load_filters(state, UserId(channel)).await?,
    }))
}

async fn load_filters(state: &ChatState, channel: UserId) -> ChatResult<Filters> {
    let rules = sqlx::query!(
        "SELECT pattern, is_regex FROM chat_filters WHERE channel_id = $1 OR channel_id IS NULL",
        channel.0,
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Filters::new(rules.iter().map(|r| (r.pattern.as_str(), r.is_regex))))
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
