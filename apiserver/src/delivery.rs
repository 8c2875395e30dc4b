//! Where viewers play a live stream from: the deployment's delivery bases (CDNs in front of the
//! origin), each with a weight and a health state, and the origin last.
//!
//! `POST /api/streams/{id}/playback` hands each viewer session its ordered list: the healthy
//! bases by weighted rendezvous hashing on the session (a base with twice the weight comes first
//! for twice the sessions, and a session gets the same order on every replica and every reload,
//! so its CDN's cache stays warm), then the origin. Players fail over down the list and report it
//! with their heartbeat; the reports feed a circuit breaker per base in Redis that takes a
//! failing base out of new lists for a cool-down, then lets it back (and out again at once if
//! it still fails). Channels that ask for it get signed URLs (`onair_playback_token`).

use std::time::Duration;

use axum::extract::State;
use chrono::{DateTime, Utc};
use onair_domain::contracts::{playback, redis_keys};
use onair_domain::{PlaybackAccess, StreamId, StreamStatus, UserId};
use onair_web::{Json, Path};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::OptionalUser;
use crate::cdn::{Base, BaseLabels, FailoverLabels, FailoverReport, ORIGIN, order};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How long a Redis question about base health may take before every base counts as healthy
/// (delivery must not stop because the breaker's store does not answer).
const HEALTH_TIMEOUT: Duration = Duration::from_millis(200);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(playback_sources))
}

/// Moves one failure report into the base's window and opens the breaker when the window says
/// so. KEYS: fail (this bucket), fail (previous), ok (this), ok (previous), open, seen (this
/// client address). ARGV: bucket TTL, failures, permille, cooldown. Returns -1 (this address
/// reported this base already in the window), 0 (counted), 1 (open already), 2 (opened now).
///
/// Reports count once per client address per window, and so do healthy ones: the breaker needs
/// that many different places failing, which one client inventing sessions cannot be.
const REPORT_FAILURE: &str = r"
if not redis.call('SET', KEYS[6], '1', 'NX', 'EX', ARGV[1]) then return -1 end
local f = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
f = f + tonumber(redis.call('GET', KEYS[2]) or '0')
local ok = tonumber(redis.call('GET', KEYS[3]) or '0') + tonumber(redis.call('GET', KEYS[4]) or '0')
if f >= tonumber(ARGV[2]) and f * 1000 >= tonumber(ARGV[3]) * (f + ok) then
  if redis.call('SET', KEYS[5], '1', 'NX', 'EX', ARGV[4]) then return 2 end
  return 1
end
return 0";

/// One healthy report per client address per bucket. KEYS: seen (address, bucket), ok
/// (bucket). ARGV: TTL.
const REPORT_HEALTHY: &str = r"
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
return 1";

impl AppState {
    fn base_key(&self, base: &str, what: &str) -> String {
        redis_keys::delivery_base(&self.config.redis.redis_prefix, base, what)
    }

    fn bucket(&self, at: DateTime<Utc>) -> i64 {
        at.timestamp() / self.delivery.breaker.window.as_secs().max(1) as i64
    }

    /// What a heartbeat says about delivery: the base it plays from is healthy, and the ones it
    /// left (since its last beat) failed it. Reports of unknown bases (an older list) are ignored.
    pub(crate) async fn report_delivery(
        &self,
        client: std::net::IpAddr,
        playing: Option<&str>,
        failovers: &[FailoverReport],
    ) -> Result<(), redis::RedisError> {
        let d = &self.delivery;
        let client = crate::cdn::reporter(client);
        let known = |name: &str| d.bases.iter().any(|b| b.name == name);
        let now = Utc::now();
        let bucket = self.bucket(now);
        let ttl = d.breaker.window.as_secs().max(1) * 2;
        if let Some(base) = playing.filter(|b| known(b)) {
            let _: i64 = redis::Script::new(REPORT_HEALTHY)
                .key(self.base_key(base, &format!("okseen:{client}:{bucket}")))
                .key(self.base_key(base, &format!("ok:{bucket}")))
                .arg(ttl)
                .invoke_async(&mut self.redis())
                .await?;
        }
        for report in failovers.iter().filter(|r| known(&r.from)) {
            d.metrics
                .failovers
                .get_or_create(&FailoverLabels { base: report.from.clone(), reason: report.reason.as_str() })
                .inc();
            let outcome: i64 = redis::Script::new(REPORT_FAILURE)
                .key(self.base_key(&report.from, &format!("fail:{bucket}")))
                .key(self.base_key(&report.from, &format!("fail:{}", bucket - 1)))
                .key(self.base_key(&report.from, &format!("ok:{bucket}")))
                .key(self.base_key(&report.from, &format!("ok:{}", bucket - 1)))
                .key(self.base_key(&report.from, "open"))
                .key(self.base_key(&report.from, &format!("seen:{client}")))
                .arg(ttl)
                .arg(d.breaker.failures)
                .arg(d.breaker.failure_permille)
                .arg(d.breaker.cooldown.as_secs().max(1))
                .invoke_async(&mut self.redis())
                .await?;
            if outcome == 2 {
                d.metrics.trips.get_or_create(&BaseLabels { base: report.from.clone() }).inc();
                tracing::info!(
                    base = %report.from,
                    cooldown_secs = d.breaker.cooldown.as_secs(),
                    "delivery base failing its viewers: out of new viewers' lists for the cool-down"
                );
            }
        }
        Ok(())
    }

    /// The bases whose breaker is open now (none when Redis does not answer in time).
    async fn open_bases(&self) -> Vec<String> {
        let d = &self.delivery;
        if d.bases.is_empty() {
            return Vec::new();
        }
        let keys: Vec<String> = d.bases.iter().map(|b| self.base_key(&b.name, "open")).collect();
        let got: Vec<Option<String>> =
            match tokio::time::timeout(HEALTH_TIMEOUT, redis::cmd("MGET").arg(&keys).query_async(&mut self.redis()))
                .await
            {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "delivery health unknown: every base counts as healthy");
                    return Vec::new();
                }
                Err(_) => return Vec::new(),
            };
        let mut open = Vec::new();
        for (base, state) in d.bases.iter().zip(got) {
            let is_open = state.is_some();
            d.metrics.open.get_or_create(&BaseLabels { base: base.name.clone() }).set(i64::from(is_open));
            if is_open {
                open.push(base.name.clone());
            }
        }
        open
    }
}

#[derive(Deserialize, ToSchema)]
pub struct PlaybackRequest {
    /// The player's viewer session id (as its heartbeats send it): the sources' order is
    /// sticky per session, and a signed URL names it.
    #[schema(min_length = 8, max_length = 64, pattern = r"^[A-Za-z0-9_-]+$", example = "v3f9a2c71b0d4e5f6")]
    pub session_id: String,
}

/// One place to play the stream from.
#[derive(Serialize, ToSchema, Debug)]
pub struct PlaybackSource {
    /// The base's name (`origin` for the origin), as heartbeats report it.
    pub name: String,
    /// The live HLS master playlist there.
    pub url: String,
    /// The rewind window's master there, when the stream is recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dvr_url: Option<String>,
}

/// Where this viewer plays the stream from, in order.
#[derive(Serialize, ToSchema, Debug)]
pub struct PlaybackSources {
    /// Try the first; on failure (no connection, a 500/502/504, no first byte in time) move to
    /// the next, keeping the position. The origin is last and serves direct viewers up to its capacity (503 with
    /// Retry-After beyond it).
    pub sources: Vec<PlaybackSource>,
    /// When the signed URLs stop opening (ask again before); absent for unsigned ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Where a viewer plays a live stream from: the deployment's delivery bases in this session's
/// order (weighted, sticky per session, failing bases left out), the origin last. `public`
/// channels get plain URLs; `signed` ones expiring URLs signed for this session; `followers` ones
/// those too, for signed-in followers and the streamer only (401 without a token, 403 for
/// others). 409 `stream_not_playable` until the stream plays; 503 `playback_keys_missing` when
/// a channel needs signed URLs and this server has no keys to sign them.
#[utoipa::path(post, path = "/api/streams/{stream_id}/playback", tag = "streams", params(("stream_id" = Uuid, Path)),
    request_body = PlaybackRequest,
    security((), ("bearer" = [])),
    responses((status = 200, body = PlaybackSources), (status = 400, body = onair_web::ErrorBody),
              (status = 401, body = onair_web::ErrorBody), (status = 403, body = onair_web::ErrorBody),
              (status = 404, body = onair_web::ErrorBody), (status = 409, body = onair_web::ErrorBody),
              (status = 429, body = onair_web::ErrorBody), (status = 503, body = onair_web::ErrorBody)))]
async fn playback_sources(
    State(state): State<AppState>,
    user: OptionalUser,
    ip: crate::auth::ClientIp,
    Path(stream_id): Path<Uuid>,
    Json(req): Json<PlaybackRequest>,
) -> ApiResult<Json<PlaybackSources>> {
    if !onair_domain::contracts::viewer_session::is_valid(&req.session_id) {
        return Err(onair_domain::ValidationError::new(
            "session_id",
            "must be 8-64 characters of A-Z, a-z, 0-9, - and _",
        )
        .into());
    }
    // Asked once per player start (and on a token's renewal): the heartbeat's budget covers it.
    state.rate_limit(state.heartbeat_ip_limit(), &ip.0.to_string()).await?;
    let id = StreamId(stream_id);
    let json = state.stream_json(id).await?.ok_or(ApiError::NotFound("stream"))?;
    #[derive(Deserialize)]
    struct Streamer {
        id: UserId,
    }
    #[derive(Deserialize)]
    struct View {
        status: StreamStatus,
        streamer: Streamer,
        playback_access: PlaybackAccess,
        playback_url: Option<String>,
        dvr_url: Option<String>,
    }
    let view: View = serde_json::from_slice(&json).map_err(anyhow::Error::from)?;
    let (Some(live), true) = (view.playback_url, view.status.is_active()) else {
        return Err(ApiError::conflict("stream_not_playable", "this stream is not playing (yet, or any more)"));
    };
    state.require_play(view.playback_access, view.streamer.id, user).await?;
    // The origin's base, as the stream's own URL names it (a LiveStream's status may name
    // another origin than the configured one).
    let suffix = format!("/{id}/master.m3u8");
    let origin = live.strip_suffix(&suffix).unwrap_or(&state.config.playback_base_url).to_owned();
    let d = &state.delivery;
    let (token, expires_at) = match view.playback_access {
        PlaybackAccess::Public => (None, None),
        PlaybackAccess::Signed | PlaybackAccess::Followers => {
            let keys = d.keys.as_ref().ok_or_else(|| {
                tracing::error!(stream_id = %id, "a channel needs signed playback URLs and no --playback-keys are set");
                ApiError::ServiceUnavailable {
                    code: "playback_keys_missing",
                    message: "this channel needs signed playback links and this server cannot sign them",
                }
            })?;
            let expires = Utc::now() + d.token_ttl;
            let token =
                keys.sign(&id.to_string(), &req.session_id, expires.timestamp()).map_err(anyhow::Error::from)?;
            (Some(token), Some(expires))
        }
    };
    let open = state.open_bases().await;
    let healthy = d.bases.iter().filter(|b| !open.contains(&b.name));
    let origin_base = Base { name: ORIGIN.to_owned(), url: origin, weight: 1 };
    let sources = order(healthy, &req.session_id)
        .into_iter()
        .chain(std::iter::once(&origin_base))
        .map(|b| {
            let dir = playback::stream_dir(&b.url, id);
            let dir = match &token {
                Some(t) => onair_playback_token::signed_dir(&dir, t),
                None => dir,
            };
            let url = format!("{dir}/master.m3u8");
            let dvr_url = view.dvr_url.is_some().then(|| playback::dvr_url(&url));
            PlaybackSource { name: b.name.clone(), url, dvr_url }
        })
        .collect();
    Ok(Json(PlaybackSources { sources, expires_at }))
}
