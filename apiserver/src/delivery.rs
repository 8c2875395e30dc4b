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
use onair_playback_token::Keyring;
use onair_web::{Json, Path};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::OptionalUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(playback_sources))
}

/// The origin's name in source lists and reports.
pub const ORIGIN: &str = "origin";
/// Longest base name.
pub const MAX_BASE_NAME: usize = 32;
/// Most failovers one heartbeat may report.
pub const MAX_FAILOVERS_PER_BEAT: usize = 8;
/// How long a Redis question about base health may take before every base counts as healthy
/// (delivery must not stop because the breaker's store does not answer).
const HEALTH_TIMEOUT: Duration = Duration::from_millis(200);

/// One delivery base: a CDN (or edge) serving the origin's `/hls` tree at `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub name: String,
    /// Stands for the origin's `…/hls`: a stream plays at `{url}/{stream}/master.m3u8`.
    pub url: String,
    pub weight: u32,
}

/// Parses `name=url@weight,…` (`@weight` optional, 1 by default).
pub fn parse_bases(spec: &str) -> Result<Vec<Base>, String> {
    let mut bases: Vec<Base> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest) = item.split_once('=').ok_or_else(|| format!("`{item}`: each base is `name=url@weight`"))?;
        let (url, weight) = match rest.rsplit_once('@') {
            Some((url, w)) if !w.contains('/') => {
                let w: u32 = w.parse().map_err(|_| format!("base {name}: the weight is a whole number"))?;
                (url, w)
            }
            _ => (rest, 1),
        };
        let valid_name = (1..=MAX_BASE_NAME).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_name {
            return Err(format!("base `{name}`: a name is 1-32 characters of a-z, 0-9 and -"));
        }
        if name == ORIGIN {
            return Err(format!("base `{ORIGIN}` is the origin itself, always last: name the CDNs"));
        }
        if !(1..=1000).contains(&weight) {
            return Err(format!("base {name}: the weight is 1-1000"));
        }
        let parsed = url::Url::parse(url).map_err(|e| format!("base {name}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() || parsed.query().is_some() {
            return Err(format!("base {name}: an http(s) URL with a host and no query"));
        }
        if bases.iter().any(|b| b.name == name) {
            return Err(format!("base {name} is given twice"));
        }
        bases.push(Base { name: name.to_owned(), url: url.trim_end_matches('/').to_owned(), weight });
    }
    Ok(bases)
}

/// Where `session` should try bases first: weighted rendezvous hashing. Each base scores
/// `-ln(u) / weight` with `u` uniform in (0, 1] from a hash of (session, base); the lowest score
/// comes first. The first base is each base with probability proportional to its weight, a
/// session's order never changes while the set of bases does not, and a base leaving the set
/// moves only its own sessions.
pub fn order<'a>(bases: impl IntoIterator<Item = &'a Base>, session: &str) -> Vec<&'a Base> {
    let mut scored: Vec<(f64, &Base)> = bases
        .into_iter()
        .map(|b| {
            let digest = sha2::Sha256::new().chain_update(session).chain_update([0]).chain_update(&b.name).finalize();
            let bits = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
            // (0, 1]: never 0, so the logarithm is finite.
            let u = ((bits >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
            (-u.ln() / f64::from(b.weight), b)
        })
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    scored.into_iter().map(|(_, b)| b).collect()
}

/// The breaker's settings.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Failure reports (distinct sessions) within the window that open a base's breaker.
    pub failures: u32,
    /// ... and the share of the base's reports (failures and healthy heartbeats) they must be,
    /// in thousandths: a few viewers' bad Wi-Fi does not take a CDN away from thousands.
    pub failure_permille: u32,
    pub window: Duration,
    /// How long an open breaker keeps the base out of new lists.
    pub cooldown: Duration,
}

/// Delivery's configuration and metrics.
pub struct Delivery {
    pub bases: Vec<Base>,
    pub keys: Option<Keyring>,
    pub token_ttl: Duration,
    pub breaker: BreakerConfig,
    pub metrics: DeliveryMetrics,
}

impl Delivery {
    /// From the apiserver's flags; a bad base list or key list stops the start with its reason.
    pub fn from_config(
        config: &crate::config::ApiConfig,
        registry: &mut prometheus_client::registry::Registry,
    ) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret as _;
        let bases = parse_bases(&config.playback_bases).map_err(|e| anyhow::anyhow!("--playback-bases: {e}"))?;
        let keys = match &config.playback_keys {
            Some(spec) => {
                Some(Keyring::parse(spec.expose_secret()).map_err(|e| anyhow::anyhow!("--playback-keys: {e}"))?)
            }
            None => None,
        };
        if !(1..=100).contains(&config.delivery_breaker_percent) {
            anyhow::bail!("--delivery-breaker-percent: 1-100");
        }
        tracing::info!(
            bases = ?bases.iter().map(|b| format!("{}@{}", b.name, b.weight)).collect::<Vec<_>>(),
            signing_kid = keys.as_ref().map(|k| k.active_kid()),
            "delivery configured"
        );
        Ok(Self {
            bases,
            keys,
            token_ttl: Duration::from_secs(config.playback_token_ttl_secs.clamp(60, 7 * 24 * 3600)),
            breaker: BreakerConfig {
                failures: config.delivery_breaker_failures.max(1),
                failure_permille: config.delivery_breaker_percent * 10,
                window: Duration::from_secs(config.delivery_breaker_window_secs.max(1)),
                cooldown: Duration::from_secs(config.delivery_breaker_cooldown_secs.max(1)),
            },
            metrics: DeliveryMetrics::register(registry),
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct BaseLabels {
    pub base: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct FailoverLabels {
    pub base: String,
    pub reason: &'static str,
}

pub struct DeliveryMetrics {
    pub failovers: Family<FailoverLabels, Counter>,
    pub trips: Family<BaseLabels, Counter>,
    pub open: Family<BaseLabels, Gauge>,
}

impl DeliveryMetrics {
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        let m = Self { failovers: Family::default(), trips: Family::default(), open: Family::default() };
        registry.register(
            "delivery_failovers_reported",
            "Players' reports of leaving a delivery base, by base and reason",
            m.failovers.clone(),
        );
        registry.register(
            "delivery_breaker_trips",
            "Times a delivery base's circuit breaker opened (the base left new viewers' lists)",
            m.trips.clone(),
        );
        registry.register(
            "delivery_base_open",
            "1 while a delivery base's breaker is open (as this replica last saw it)",
            m.open.clone(),
        );
        m
    }
}

/// Why a player left a base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailoverReason {
    /// No answer in time (the playlist's blocking reload, a part, a segment).
    Timeout,
    /// The connection failed (refused, reset, DNS).
    Network,
    /// The base answered 5xx.
    ServerError,
    /// The base answered a 4xx other than a refused token.
    ClientError,
    /// Playback stalled past the player's threshold with the base answering slowly.
    Stall,
}

impl FailoverReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Network => "network",
            Self::ServerError => "server_error",
            Self::ClientError => "client_error",
            Self::Stall => "stall",
        }
    }
}

/// A player left `from` for the next base on its list.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct FailoverReport {
    /// The base's name, as the source list gave it.
    #[schema(max_length = 32)]
    pub from: String,
    pub reason: FailoverReason,
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
    /// Try the first; on failure (no answer, a 5xx, a stall) move to the next, keeping the
    /// position. The origin is last and serves direct viewers up to its capacity (503 with
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
    if !crate::analytics::valid_session_id(&req.session_id) {
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
    if view.playback_access == PlaybackAccess::Followers {
        let user = user.require()?;
        if !user.0.is_owner_or_admin(view.streamer.id) && !state.follows(user.id(), view.streamer.id).await? {
            return Err(ApiError::forbidden("this channel plays for its followers only"));
        }
    }
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
            let base = match &token {
                Some(t) => onair_playback_token::signed_base(&b.url, t),
                None => b.url.clone(),
            };
            let url = playback::master_url(&base, id);
            let dvr_url = view.dvr_url.is_some().then(|| playback::dvr_url(&url));
            PlaybackSource { name: b.name.clone(), url, dvr_url }
        })
        .collect();
    Ok(Json(PlaybackSources { sources, expires_at }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(name: &str, weight: u32) -> Base {
        Base { name: name.into(), url: format!("http://{name}.example/hls"), weight }
    }

    #[test]
    fn bases_parse_with_and_without_weights() {
        let got = parse_bases("edge-a=http://127.0.0.1:8081/hls@3, edge-b=https://cdn.example/hls/").unwrap();
        assert_eq!(
            got,
            vec![
                Base { name: "edge-a".into(), url: "http://127.0.0.1:8081/hls".into(), weight: 3 },
                Base { name: "edge-b".into(), url: "https://cdn.example/hls".into(), weight: 1 },
            ]
        );
        assert_eq!(parse_bases("").unwrap(), vec![]);
    }

    #[test]
    fn bad_bases_are_refused_with_the_reason() {
        for (spec, says) in [
            ("edge-a", "name=url@weight"),
            ("origin=http://x/hls", "origin itself"),
            ("Edge=http://x/hls", "a-z"),
            ("a=http://x/hls@0", "1-1000"),
            ("a=http://x/hls@many", "whole number"),
            ("a=ftp://x/hls", "http(s)"),
            ("a=http://x/hls?k=v", "no query"),
            ("a=http://x/hls,a=http://y/hls", "twice"),
        ] {
            let err = parse_bases(spec).unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
        }
    }

    #[test]
    fn a_session_always_gets_the_same_order() {
        let bases = [base("a", 1), base("b", 1), base("c", 1)];
        let first: Vec<_> = order(&bases, "session-0001").iter().map(|b| b.name.clone()).collect();
        for _ in 0..10 {
            let again: Vec<_> = order(&bases, "session-0001").iter().map(|b| b.name.clone()).collect();
            assert_eq!(again, first);
        }
    }

    #[test]
    fn sessions_spread_over_the_bases_by_weight() {
        let bases = [base("a", 3), base("b", 1)];
        let n = 20_000;
        let firsts_a = (0..n).filter(|i| order(&bases, &format!("session-{i:06}"))[0].name == "a").count();
        let share = firsts_a as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.02, "a is first for {share:.3} of sessions, not 0.75");
    }

    #[test]
    fn a_base_leaving_moves_only_its_own_sessions() {
        let all = [base("a", 1), base("b", 1), base("c", 1)];
        let without_c = [base("a", 1), base("b", 1)];
        for i in 0..2_000 {
            let s = format!("session-{i:06}");
            let before = order(&all, &s)[0].name.clone();
            let after = order(&without_c, &s)[0].name.clone();
            if before != "c" {
                assert_eq!(after, before, "{s} moved though its base stayed");
            }
        }
    }
}
