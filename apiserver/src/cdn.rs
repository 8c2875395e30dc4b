//! The deployment's delivery bases (CDNs in front of the origin) as configuration: parsing
//! `name=url@weight,…`, the per-session order (weighted rendezvous hashing), the breaker's
//! settings and metrics, and the shapes players report failovers in. No I/O: `delivery.rs`
//! serves the lists and keeps the breaker in Redis.

use std::time::Duration;

use onair_playback_token::Keyring;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use utoipa::ToSchema;

/// The origin's name in source lists and reports.
pub const ORIGIN: &str = "origin";
/// Longest base name.
pub const MAX_BASE_NAME: usize = 32;
/// Most failovers one heartbeat may report.
pub const MAX_FAILOVERS_PER_BEAT: usize = 8;

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

/// Where a delivery report comes from, as the breaker counts it: an IPv4 address, or an IPv6
/// /64 (one host is handed a whole /64, so counting its addresses would let it report as many).
pub fn reporter(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
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

/// Why a player left a base. The web app reports `network`, `server_error` and `timeout`; the
/// others are there for players that judge more (a stall, a 4xx they do not expect).
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
    pub fn as_str(self) -> &'static str {
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
    fn reports_count_per_ipv4_address_and_per_ipv6_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:bbbb::99".parse().unwrap();
        let c: std::net::IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(reporter(a), reporter(b), "one /64 is one reporter");
        assert_ne!(reporter(a), reporter(c));
        assert_eq!(reporter("10.0.0.1".parse().unwrap()), "10.0.0.1");
        assert_eq!(reporter("::ffff:10.0.0.1".parse().unwrap()), "10.0.0.1");
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
