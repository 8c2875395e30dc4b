//! Viewer presence (heartbeats into Redis), the analytics sampler (Redis -> Postgres every
//! interval), and the streamer's analytics report.

use axum::extract::State;
use chrono::{DateTime, Utc};
use http::StatusCode;
use onair_domain::contracts::redis_keys;
use onair_domain::{StreamId, UserId};
use onair_web::{Json, Path};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{AuthUser, ClientIp};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(heartbeat)).routes(routes!(analytics))
}

/// Presence keys outlive the stream by this much, then Redis forgets them.
const PRESENCE_TTL_SECS: i64 = 24 * 3600;

#[derive(Deserialize, ToSchema)]
pub struct HeartbeatRequest {
    /// The player's viewer session id (random, made by the player, 8-64 of `A-Za-z0-9_-`).
    #[schema(min_length = 8, max_length = 64, pattern = r"^[A-Za-z0-9_-]+$", example = "v_3f9a2c71b0d4")]
    pub session_id: String,
    /// The delivery base the player is playing from now (a name from its source list).
    #[schema(max_length = 32)]
    pub base: Option<String>,
    /// The bases it left since its last beat, and why (at most 8).
    #[serde(default)]
    #[schema(max_items = 8)]
    pub failovers: Vec<crate::cdn::FailoverReport>,
}

impl AppState {
    /// Record that `session` is watching `stream` now. Shared with HLS request counting.
    pub(crate) async fn record_viewer(&self, stream: StreamId, session: &str) -> Result<(), redis::RedisError> {
        let prefix = &self.config.redis.redis_prefix;
        let sessions = redis_keys::viewer_sessions(prefix, stream);
        let uniq = redis_keys::unique_viewers(prefix, stream);
        let now_ms = Utc::now().timestamp_millis();
        redis::pipe()
            .zadd(&sessions, session, now_ms)
            .ignore()
            .expire(&sessions, PRESENCE_TTL_SECS)
            .ignore()
            .pfadd(&uniq, session)
            .ignore()
            .expire(&uniq, PRESENCE_TTL_SECS)
            .ignore()
            .query_async::<()>(&mut self.redis())
            .await
    }

    /// Take one analytics sample now (what the background sampler does every interval).
    /// Returns how many streams were sampled, or `None` when another replica claimed this tick.
    pub async fn sample_analytics(&self) -> Result<Option<usize>, ApiError> {
        sample_once(self, Utc::now()).await
    }

    /// [`Self::sample_analytics`] as if it were `at` (tests: a sampler kept away for a while).
    pub async fn sample_analytics_at(&self, at: DateTime<Utc>) -> Result<Option<usize>, ApiError> {
        sample_once(self, at).await
    }

    /// Sessions seen within the viewer window.
    pub(crate) async fn current_viewers(&self, stream: StreamId) -> Result<i64, redis::RedisError> {
        onair_infra::current_viewers(&mut self.redis(), &self.config.redis.redis_prefix, stream, self.viewer_window())
            .await
    }
}

/// A player says "still watching". Counted as a viewer for the viewer window after each beat. A
/// beat within the viewer window after the stream ended is accepted and not counted (it raced
/// the end); later ones are refused with 409.
#[utoipa::path(post, path = "/api/streams/{stream_id}/heartbeat", tag = "analytics", params(("stream_id" = Uuid, Path)),
    request_body = HeartbeatRequest,
    responses((status = 204), (status = 400, body = onair_web::ErrorBody), (status = 404, body = onair_web::ErrorBody),
              (status = 409, body = onair_web::ErrorBody), (status = 429, body = onair_web::ErrorBody)))]
async fn heartbeat(
    State(state): State<AppState>,
    ip: ClientIp,
    Path(stream_id): Path<Uuid>,
    Json(req): Json<HeartbeatRequest>,
) -> ApiResult<StatusCode> {
    if !onair_domain::contracts::viewer_session::is_valid(&req.session_id) {
        return Err(onair_domain::ValidationError::new(
            "session_id",
            "must be 8-64 characters of A-Z, a-z, 0-9, - and _",
        )
        .into());
    }
    if req.failovers.len() > crate::cdn::MAX_FAILOVERS_PER_BEAT {
        return Err(onair_domain::ValidationError::new("failovers", "at most 8 per beat").into());
    }
    let long = |name: &str| name.len() > crate::cdn::MAX_BASE_NAME;
    if req.base.as_deref().is_some_and(long) || req.failovers.iter().any(|f| long(&f.from)) {
        return Err(onair_domain::ValidationError::new("base", "a base name is at most 32 characters").into());
    }
    state.rate_limit(state.heartbeat_ip_limit(), &ip.0.to_string()).await?;
    let id = StreamId(stream_id);
    // The cached public state answers "does it exist and is it on" without a query per beat.
    let json = state.stream_json(id).await?.ok_or(ApiError::NotFound("stream"))?;
    #[derive(Deserialize)]
    struct StatusOnly {
        status: onair_domain::StreamStatus,
        ended_at: Option<DateTime<Utc>>,
    }
    let s: StatusOnly = serde_json::from_slice(&json).map_err(anyhow::Error::from)?;
    if !s.status.is_active() {
        // A player's last beat races the end (its page learns of it on its next poll): within
        // the viewer window it is accepted and not counted; later it is a client mistake.
        let window = chrono::Duration::seconds(state.config.viewer_window_secs as i64);
        if s.ended_at.is_some_and(|at| Utc::now() - at <= window) {
            return Ok(StatusCode::NO_CONTENT);
        }
        return Err(ApiError::conflict("stream_not_live", "this stream ended before this beat"));
    }
    state.record_viewer(id, &req.session_id).await?;
    if req.base.is_some() || !req.failovers.is_empty() {
        // Delivery health is a side channel: a beat counts even when its report cannot be kept.
        if let Err(e) = state.report_delivery(ip.0, req.base.as_deref(), &req.failovers).await {
            tracing::debug!(stream_id = %id, error = %e, "delivery report not kept");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// How far back a sampler that was kept away (Redis or Postgres not answering, every replica
/// restarting) fills in the ticks it missed once it is back.
const CATCH_UP_SECS: i64 = 300;

/// Moves the replicas' "last tick written" (KEYS[1]) forward to ARGV[1], never back.
const WRITTEN: &str = r"local last = redis.call('GET', KEYS[1])
if not last or tonumber(last) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
return 1";

/// Records that `tick` is written (so a sampler back from an outage knows what it missed).
async fn mark_written(state: &AppState, tick: i64, interval: i64) -> ApiResult<()> {
    let _: i64 = redis::Script::new(WRITTEN)
        .key(redis_keys::sampler_written(&state.config.redis.redis_prefix))
        .arg(tick)
        .arg(CATCH_UP_SECS.max(interval * 6))
        .invoke_async(&mut state.redis())
        .await?;
    Ok(())
}

/// The ticks to sample now: the one `at` falls in, and any missed since `last` was written (at
/// most [`CATCH_UP_SECS`] back); none when `at`'s tick is written already.
fn ticks_due(at: DateTime<Utc>, interval: i64, last: Option<i64>) -> Vec<i64> {
    let tick = at.timestamp().div_euclid(interval) * interval;
    if last.is_some_and(|l| l >= tick) {
        return vec![];
    }
    let oldest = tick - CATCH_UP_SECS.div_euclid(interval) * interval;
    let first = last.map_or(tick, |l| (l.div_euclid(interval) * interval + interval).clamp(oldest, tick));
    (first..=tick).step_by(interval as usize).collect()
}

/// Take a sample of every active stream at `at`'s tick, and at each tick missed before it (a
/// sampler kept from its tick by a paused Redis or Postgres, or by a restart, fills them in once
/// it is back: a hole in a streamer's graph is worse than a late point). One replica claims each
/// tick; what was missed is told by the last tick *written*, so a claim that a paused Redis runs
/// late, or a sampler that died before its commit, leaves no hole. Returns how many samples were
/// written, or `None` when another replica has taken this tick.
pub(crate) async fn sample_once(state: &AppState, at: DateTime<Utc>) -> ApiResult<Option<usize>> {
    let interval = state.config.sample_interval_secs.max(1) as i64;
    let prefix = &state.config.redis.redis_prefix;
    let tick = at.timestamp().div_euclid(interval) * interval;
    let claimed: Option<String> = redis::cmd("SET")
        .arg(redis_keys::sampler_tick(prefix, tick))
        .arg("1")
        .arg("NX")
        .arg("EX")
        .arg(interval * 6)
        .query_async(&mut state.redis())
        .await?;
    if claimed.is_none() {
        return Ok(None);
    }
    let last: Option<i64> =
        redis::cmd("GET").arg(redis_keys::sampler_written(prefix)).query_async(&mut state.redis()).await?;
    let ticks = ticks_due(at, interval, last);
    if ticks.is_empty() {
        return Ok(None);
    }
    if ticks.len() > 1 {
        tracing::info!(missed = ticks.len() - 1, "analytics sampler filling in the ticks it missed");
    }

    let streams = sqlx::query!(
        "SELECT id, COALESCE(started_at, created_at) AS \"began!\" FROM streams WHERE status IN ('starting', 'live')"
    )
    .fetch_all(&state.db)
    .await?;
    if streams.is_empty() {
        mark_written(state, tick, interval).await?;
        state.metrics.samples_taken.inc();
        return Ok(Some(0));
    }
    let since = Utc::now().timestamp_millis() - state.viewer_window().as_millis() as i64;
    // One round trip for all streams: drop expired sessions, count the rest, read the chat
    // counter (taken off only once the samples are committed), count uniques.
    let mut pipe = redis::pipe();
    for s in &streams {
        let sid = StreamId(s.id);
        let sessions = redis_keys::viewer_sessions(prefix, sid);
        pipe.cmd("ZREMRANGEBYSCORE").arg(&sessions).arg("-inf").arg(since - 1).ignore();
        pipe.cmd("ZCARD").arg(&sessions);
        pipe.cmd("GET").arg(redis_keys::chat_counter(prefix, sid));
        pipe.cmd("PFCOUNT").arg(redis_keys::unique_viewers(prefix, sid));
    }
    let flat: Vec<redis::Value> = pipe.query_async(&mut state.redis()).await?;
    let n = |v: &redis::Value| -> Option<i64> { redis::from_redis_value_ref(v).ok() };
    let clamp = |v: i64| v.clamp(0, i32::MAX as i64) as i32;
    let (mut ids, mut ats, mut viewers, mut chat) = (vec![], vec![], vec![], vec![]);
    let (mut now_viewers, mut uniques, mut taken) = (vec![], vec![], vec![]);
    for (s, c) in streams.iter().zip(flat.chunks(3)) {
        let count = clamp(n(&c[0]).unwrap_or(0));
        let messages = n(&c[1]).unwrap_or(0).max(0);
        // A missed tick gets the audience counted now (presence keeps only each session's last
        // beat, so who watched back then cannot be told apart from who came since), and only
        // from the stream's start; the chat since the last sample is told at the newest tick.
        let due: Vec<i64> = ticks.iter().copied().filter(|t| *t + interval > s.began.timestamp()).collect();
        let newest = due.last().copied();
        for t in due {
            ids.push(s.id);
            ats.push(DateTime::from_timestamp(t, 0).unwrap_or(at));
            viewers.push(count);
            chat.push(if Some(t) == newest { clamp(messages) } else { 0 });
        }
        now_viewers.push(count);
        uniques.push(clamp(n(&c[2]).unwrap_or(0)));
        taken.push((StreamId(s.id), messages));
    }
    let live: Vec<uuid::Uuid> = streams.iter().map(|s| s.id).collect();

    let mut tx = state.db.begin().await?;
    // Two replicas may both write a tick (one filling in what the other is still committing):
    // the audience is the same count, the chat adds up.
    sqlx::query!(
        "INSERT INTO analytics_samples (stream_id, at, concurrent_viewers, chat_messages)
         SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::int[], $4::int[])
         ON CONFLICT (stream_id, at) DO UPDATE
         SET chat_messages = analytics_samples.chat_messages + EXCLUDED.chat_messages",
        &ids,
        &ats,
        &viewers,
        &chat,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE streams s SET current_viewers = t.v, peak_viewers = greatest(s.peak_viewers, t.v),
            unique_viewers = greatest(s.unique_viewers, t.u)
         FROM unnest($1::uuid[], $2::int[], $3::int[]) AS t(id, v, u)
         WHERE s.id = t.id AND s.status IN ('starting', 'live')",
        &live,
        &now_viewers,
        &uniques,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // What was written is taken off the chat counters (what came since stays for the next tick).
    let taken: Vec<_> = taken.into_iter().filter(|(_, m)| *m > 0).collect();
    if !taken.is_empty() {
        let mut pipe = redis::pipe();
        for (sid, m) in &taken {
            pipe.cmd("DECRBY").arg(redis_keys::chat_counter(prefix, *sid)).arg(*m).ignore();
        }
        let _: () = pipe.query_async(&mut state.redis()).await?;
    }
    mark_written(state, tick, interval).await?;
    state.metrics.samples_taken.inc();
    tracing::debug!(streams = streams.len(), ticks = ticks.len(), "analytics sample taken");
    Ok(Some(ids.len()))
}

#[derive(Serialize, ToSchema)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub viewers: i32,
    pub chat_messages: i32,
}

#[derive(Serialize, ToSchema)]
pub struct ChatMinute {
    pub minute: DateTime<Utc>,
    pub messages: i64,
}

#[derive(Serialize, ToSchema)]
pub struct StreamAnalytics {
    pub stream_id: StreamId,
    /// Concurrent viewers at each sample (10 s resolution by default).
    pub samples: Vec<Sample>,
    pub sample_interval_secs: u64,
    pub peak_viewers: i32,
    pub average_viewers: f64,
    pub unique_viewers: i32,
    /// Sum over samples of concurrent viewers x the sample interval.
    pub watch_minutes: f64,
    pub chat_messages: i64,
    pub chat_per_minute: Vec<ChatMinute>,
    /// Follows of the channel between the stream's start and its end (or now).
    pub followers_gained: i64,
    /// The encoder's last reported speed (1.0 = real time), if media has run.
    pub encode_speed: Option<f32>,
    pub dropped_frames: i32,
}

/// Viewership and chat of one broadcast (its owner or an admin).
#[utoipa::path(get, path = "/api/streams/{stream_id}/analytics", tag = "analytics", security(("bearer" = [])),
    params(("stream_id" = Uuid, Path)),
    responses((status = 200, body = StreamAnalytics), (status = 401, body = onair_web::ErrorBody),
              (status = 403, body = onair_web::ErrorBody), (status = 404, body = onair_web::ErrorBody)))]
async fn analytics(
    State(state): State<AppState>,
    user: AuthUser,
    Path(stream_id): Path<Uuid>,
) -> ApiResult<Json<StreamAnalytics>> {
    let id = StreamId(stream_id);
    struct Head {
        user_id: Uuid,
        peak_viewers: i32,
        unique_viewers: i32,
        created_at: DateTime<Utc>,
        started_at: Option<DateTime<Utc>>,
        ended_at: Option<DateTime<Utc>>,
        encode_speed: Option<f32>,
        dropped_frames: i32,
    }
    let head = sqlx::query_as!(
        Head,
        "SELECT user_id, peak_viewers, unique_viewers, created_at, started_at, ended_at, encode_speed, dropped_frames
         FROM streams WHERE id = $1",
        id.0,
    )
    .fetch_optional(&state.read_db)
    .await?
    .ok_or(ApiError::NotFound("stream"))?;
    let Head {
        user_id: owner,
        peak_viewers: peak,
        unique_viewers: uniques,
        created_at: created,
        started_at: started,
        ended_at: ended,
        encode_speed,
        dropped_frames,
    } = head;
    user.require_owner_or_admin(UserId(owner), "stream")?;

    let samples = sqlx::query_as!(
        Sample,
        "SELECT at, concurrent_viewers AS viewers, chat_messages FROM analytics_samples WHERE stream_id = $1 ORDER BY at",
        id.0,
    )
    .fetch_all(&state.read_db)
    .await?;
    // `!`: Postgres reports every computed column as nullable; a minute with samples has a
    // time and a sum.
    let chat_per_minute = sqlx::query_as!(
        ChatMinute,
        r#"SELECT date_trunc('minute', at) AS "minute!", sum(chat_messages)::bigint AS "messages!"
         FROM analytics_samples WHERE stream_id = $1 GROUP BY 1 ORDER BY 1"#,
        id.0,
    )
    .fetch_all(&state.read_db)
    .await?;
    let from = started.unwrap_or(created);
    let followers_gained = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM followers
         WHERE user_id = $1 AND created_at >= $2 AND created_at <= coalesce($3, now())"#,
        owner,
        from,
        ended,
    )
    .fetch_one(&state.read_db)
    .await?;

    let interval = state.config.sample_interval_secs.max(1);
    let total_viewer_samples: i64 = samples.iter().map(|s| i64::from(s.viewers)).sum();
    let average_viewers = if samples.is_empty() { 0.0 } else { total_viewer_samples as f64 / samples.len() as f64 };
    let peak = peak.max(samples.iter().map(|s| s.viewers).max().unwrap_or(0));
    Ok(Json(StreamAnalytics {
        stream_id: id,
        sample_interval_secs: interval,
        peak_viewers: peak,
        average_viewers,
        unique_viewers: uniques,
        watch_minutes: total_viewer_samples as f64 * interval as f64 / 60.0,
        chat_messages: samples.iter().map(|s| i64::from(s.chat_messages)).sum(),
        chat_per_minute,
        followers_gained,
        encode_speed,
        dropped_frames,
        samples,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sampler_back_from_an_outage_takes_the_ticks_it_missed_and_no_more() {
        let at = |s: i64| chrono::DateTime::from_timestamp(s, 500_000_000).unwrap();
        assert_eq!(super::ticks_due(at(1005), 10, None), [1000], "first ever: this tick");
        assert_eq!(super::ticks_due(at(1005), 10, Some(990)), [1000], "on time");
        assert_eq!(super::ticks_due(at(1035), 10, Some(990)), [1000, 1010, 1020, 1030], "three missed");
        let long = super::ticks_due(at(10_005), 10, Some(990));
        assert_eq!((long.len(), long[0], long[long.len() - 1]), (31, 9_700, 10_000), "five minutes back at most");
        assert!(super::ticks_due(at(1005), 10, Some(1000)).is_empty(), "written already");
        assert!(super::ticks_due(at(995), 10, Some(1000)).is_empty(), "never backwards");
    }
}
