//! Sending a message: every check, then one JetStream publish. The same path serves sockets
//! and `POST /api/streams/{id}/chat`.

use std::time::Instant;

use async_nats::jetstream::message::PublishMessage;
use chrono::Utc;
use fnv1a::digest;
use http::StatusCode;
use onair_auth::AccessClaims;
use onair_domain::Role;
use onair_domain::contracts::{redis_keys, subjects};

use crate::error::{ChatError, ChatResult};
use crate::filter::{self, has_link};
use crate::hub::{Room, RoomInfo};
use crate::protocol::{Author, ChatMessage, MAX_MESSAGE_CHARS, ServerFrame, encode};
use crate::state::ChatState;

/// The author's badges in this room.
pub fn badges(info: &RoomInfo, claims: &AccessClaims) -> Vec<String> {
    let mut b = Vec::new();
    if claims.sub == info.channel_id {
        b.push("owner".to_owned());
    }
    if info.moderators.contains(&claims.sub) {
        b.push("moderator".to_owned());
    }
    if claims.role == Role::Admin {
        b.push("admin".to_owned());
    }
    b
}

fn reject(state: &ChatState, status: StatusCode, code: &'static str, message: impl Into<String>) -> ChatError {
    state.metrics.reject(code);
    ChatError::reject(status, code, message)
}

/// Count one hit against a limit shared by every replica; `Some(retry_ms)` past the limit.
pub async fn hit(state: &ChatState, scope: &str, subject: &str, max: u32, window_ms: u64) -> ChatResult<Option<u64>> {
    let key = redis_keys::rate_limit(&state.config.redis.redis_prefix, scope, subject);
    let (n, ttl) = state.limits.hit(&mut state.redis(), &key, window_ms).await;
    Ok((n > u64::from(max)).then_some(ttl.max(1) as u64))
}

/// Check and publish `text` from `claims` in `room`. Returns the message once JetStream has
/// stored it: from then on it is durable, and only then is the sender told it was accepted.
pub async fn send(state: &ChatState, room: &Room, claims: &AccessClaims, text: &str) -> ChatResult<ChatMessage> {
    let info = room.info();
    let user = claims.sub;
    if !info.active {
        return Err(reject(state, StatusCode::CONFLICT, "stream_ended", "this stream has ended; chat is closed"));
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(reject(state, StatusCode::BAD_REQUEST, "empty_message", "the message is empty"));
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(reject(
            state,
            StatusCode::BAD_REQUEST,
            "message_too_long",
            format!("messages are at most {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(reject(
            state,
            StatusCode::BAD_REQUEST,
            "invalid_characters",
            "the message contains control characters",
        ));
    }
    match info.restriction(user) {
        Ok(()) => {}
        Err(None) => return Err(reject(state, StatusCode::FORBIDDEN, "banned", "you are banned from this chat")),
        Err(Some(until)) => {
            let ms = (until - Utc::now()).num_milliseconds().max(1) as u64;
            return Err(reject(
                state,
                StatusCode::FORBIDDEN,
                "timed_out",
                format!("you are timed out until {}", until.to_rfc3339()),
            )
            .retry_after(ms));
        }
    }
    let privileged = info.is_staff(claims);
    let max = if privileged { state.config.mod_rate_messages } else { state.config.rate_messages };
    if let Some(ms) = hit(state, "chat_user", &user.to_string(), max, state.config.rate_window_secs * 1000).await? {
        return Err(reject(state, StatusCode::TOO_MANY_REQUESTS, "rate_limited", "you are sending messages too fast")
            .retry_after(ms));
    }
    // Checks that only read come first; the Redis keys that remember this message (slow mode,
    // flood) are set last and removed again if the publish fails, so a refused or failed send
    // does not use up the user's slot.
    let mut claimed: Vec<String> = Vec::new();
    if !privileged {
        if info.followers_only {
            let follows = sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM followers WHERE user_id = $1 AND follower_id = $2) AS "exists!""#,
                info.channel_id.0,
                user.0,
            )
            .fetch_one(&state.db)
            .await?;
            if !follows {
                return Err(reject(
                    state,
                    StatusCode::FORBIDDEN,
                    "followers_only",
                    "only followers can chat right now",
                ));
            }
        }
        if !info.links_allowed && has_link(text) {
            return Err(reject(
                state,
                StatusCode::BAD_REQUEST,
                "links_not_allowed",
                "links are not allowed in this chat",
            ));
        }
        if info.filters.matches(text) {
            return Err(reject(
                state,
                StatusCode::BAD_REQUEST,
                "message_blocked",
                "the message contains a word this chat does not allow",
            ));
        }
        if info.slow_mode_secs > 0 {
            let key = redis_keys::rate_limit(
                &state.config.redis.redis_prefix,
                &format!("slow:{}", room.id),
                &user.to_string(),
            );
            if let Some(ttl) = state.limits.claim(&mut state.redis(), &key, u64::from(info.slow_mode_secs) * 1000).await
            {
                return Err(reject(
                    state,
                    StatusCode::TOO_MANY_REQUESTS,
                    "slow_mode",
                    format!("slow mode is on: one message every {} s", info.slow_mode_secs),
                )
                .retry_after(ttl.max(1) as u64));
            }
            claimed.push(key);
        }
        // Flood: the same text (after normalisation) again within 30 s.
        let fingerprint = digest(filter::normalize(text).join(" ").as_bytes());
        let key = redis_keys::rate_limit(
            &state.config.redis.redis_prefix,
            &format!("dup:{}", room.id),
            &format!("{user}:{fingerprint}"),
        );
        if state.limits.claim(&mut state.redis(), &key, 30_000).await.is_some() {
            release(state, &claimed).await;
            return Err(reject(
                state,
                StatusCode::CONFLICT,
                "duplicate_message",
                "you just sent that; say something new",
            ));
        }
        claimed.push(key);
    }

    let msg = ChatMessage {
        id: uuid::Uuid::now_v7(),
        stream_id: room.id,
        user: Author { id: user, name: claims.name.clone(), badges: badges(&info, claims) },
        text: text.to_owned(),
        ts: Utc::now(),
    };
    // The id's timestamp and `ts` must agree to the millisecond (the row's partition key).
    let msg = ChatMessage { ts: uuid_time(&msg.id).unwrap_or(msg.ts), ..msg };
    if let Err(e) = publish(state, &msg).await {
        release(state, &claimed).await;
        return Err(e);
    }
    state.metrics.messages_in.inc();
    // The analytics counter, off the sender's path: its answer must not wait on Redis.
    let counter = redis_keys::chat_counter(&state.config.redis.redis_prefix, room.id);
    let mut redis = state.redis();
    tokio::spawn(async move {
        let _: redis::RedisResult<()> =
            redis::pipe().incr(&counter, 1).ignore().expire(&counter, 3600).ignore().query_async(&mut redis).await;
    });
    tracing::debug!(stream_id = %room.id, user_id = %user, message_id = %msg.id, "message accepted");
    Ok(msg)
}

/// Forget the slow-mode and flood keys of a send that did not go out.
async fn release(state: &ChatState, keys: &[String]) {
    state.limits.release(&mut state.redis(), keys).await;
}

/// Publish to JetStream with the message id as `Nats-Msg-Id` (a retried publish is dropped as
/// a duplicate) and wait for the store's acknowledgement.
async fn publish(state: &ChatState, msg: &ChatMessage) -> ChatResult<()> {
    let payload = encode(&ServerFrame::Message(msg));
    let subject = subjects::chat_room(&state.config.nats.nats_prefix, msg.stream_id);
    let started = Instant::now();
    let unavailable = |e: String| {
        tracing::warn!(stream_id = %msg.stream_id, error = %e, "chat publish failed");
        state.metrics.reject("unavailable");
        ChatError::reject(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "chat is briefly unavailable; send again")
    };
    let ack = state
        .js
        .send_publish(subject, PublishMessage::build().payload(payload.into()).message_id(msg.id.to_string()))
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    tokio::time::timeout(std::time::Duration::from_secs(5), ack)
        .await
        .map_err(|_| unavailable("ack timed out".into()))?
        .map_err(|e| unavailable(e.to_string()))?;
    state.metrics.publish_seconds.observe(started.elapsed().as_secs_f64());
    Ok(())
}

/// The timestamp a UUIDv7 carries.
pub fn uuid_time(id: &uuid::Uuid) -> Option<chrono::DateTime<Utc>> {
    let ts = id.get_timestamp()?;
    let (secs, nanos) = ts.to_unix();
    // v7 carries milliseconds; drop anything finer so both sides agree.
    chrono::DateTime::from_timestamp(secs as i64, (nanos / 1_000_000) * 1_000_000)
}

mod fnv1a {
    /// A short, stable fingerprint (FNV-1a) for flood detection; not a security boundary.
    pub fn digest(bytes: &[u8]) -> String {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100000001b3);
        }
        format!("{h:016x}")
    }
}
