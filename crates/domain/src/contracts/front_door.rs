//! The one front door: which public paths belong to the chat gateway when every public route is
//! served from one address. Everything else (`/api/...`, `/.well-known/...`, the web app) is the
//! apiserver's.
//!
//! Stated once, used twice: the Helm chart's Ingress (`charts/onair/templates/ingress.yaml`,
//! checked against [`CHAT_GATEWAY`] by `operator/tests/packaging.rs`) and `onair up`, which routes
//! the same paths in process. The web app therefore uses one set of relative paths everywhere.

/// One piece of a [`Rule::Pattern`], between two slashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// Exactly this text.
    Lit(&'static str),
    /// Any one non-empty segment (an id).
    Any,
    /// One of these texts.
    OneOf(&'static [&'static str]),
}

/// A path rule with the Ingress's meaning, so one list drives both setups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// An Ingress `Prefix` path: the path itself and everything below it, segment by segment.
    Prefix(&'static str),
    /// An Ingress regex path (`ImplementationSpecific` with ingress-nginx's `use-regex`): matched
    /// from the start of the path, anything may follow (nginx's `location ~* "^..."`).
    Pattern(&'static [Segment]),
}

use Segment::{Any, Lit, OneOf};

/// The chat gateway's public paths: the WebSocket, a stream's chat and its moderation, reports
/// and a channel's moderation settings.
pub const CHAT_GATEWAY: &[Rule] = &[
    Rule::Prefix("/ws/"),
    Rule::Pattern(&[Lit("api"), Lit("streams"), Any, Lit("chat")]),
    Rule::Pattern(&[
        Lit("api"),
        Lit("channels"),
        Any,
        OneOf(&["chat-filters", "chat-reports", "bans", "moderation-log", "moderators"]),
    ]),
];

impl Rule {
    /// The Ingress `pathType` this rule is written as.
    pub fn path_type(&self) -> &'static str {
        match self {
            Rule::Prefix(_) => "Prefix",
            Rule::Pattern(_) => "ImplementationSpecific",
        }
    }

    /// The rule as an Ingress `path` (a regex for patterns).
    pub fn ingress_path(&self) -> String {
        match self {
            Rule::Prefix(p) => (*p).to_owned(),
            Rule::Pattern(segments) => segments
                .iter()
                .map(|s| match s {
                    Lit(t) => format!("/{t}"),
                    Any => "/[^/]+".to_owned(),
                    OneOf(ts) => format!("/({})", ts.join("|")),
                })
                .collect(),
        }
    }

    /// Whether a request for `path` goes where this rule points.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            // Kubernetes compares `Prefix` paths element-wise and ignores a trailing slash.
            Rule::Prefix(p) => {
                let p = p.trim_end_matches('/');
                path == p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'))
            }
            Rule::Pattern(segments) => matches_from_start(segments, path),
        }
    }
}

/// `segments` match a prefix of `path` (regex semantics: the pattern is anchored at the start only).
fn matches_from_start(segments: &[Segment], path: &str) -> bool {
    let Some((first, rest)) = segments.split_first() else { return true };
    let Some(path) = path.strip_prefix('/') else { return false };
    match first {
        Lit(t) => path.strip_prefix(t).is_some_and(|after| matches_from_start(rest, after)),
        // `[^/]+` can only end at a slash or the end, so the longest run is the only candidate.
        Any => {
            let len = path.find('/').unwrap_or(path.len());
            len > 0 && matches_from_start(rest, &path[len..])
        }
        OneOf(ts) => ts.iter().any(|t| path.strip_prefix(t).is_some_and(|after| matches_from_start(rest, after))),
    }
}

/// Whether the front door sends a request for `path` to the chat gateway (else the apiserver).
pub fn is_chat_gateway_path(path: &str) -> bool {
    CHAT_GATEWAY.iter().any(|r| r.matches(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chat_gateway_route_goes_to_the_chat_gateway() {
        // The routes of chat-gateway/src/app.rs, with ids filled in.
        for path in [
            "/ws/streams/0195e4a0-0000-7000-8000-000000000001/chat",
            "/api/streams/0195e4a0-0000-7000-8000-000000000001/chat",
            "/api/streams/s1/chat/moderation",
            "/api/streams/s1/chat/reports",
            "/api/channels/c1/moderators/u1",
            "/api/channels/c1/chat-filters",
            "/api/channels/c1/chat-filters/f1",
            "/api/channels/c1/chat-reports",
            "/api/channels/c1/bans",
            "/api/channels/c1/moderation-log",
        ] {
            assert!(is_chat_gateway_path(path), "{path} should reach the chat gateway");
        }
    }

    #[test]
    fn the_apiservers_routes_stay_with_the_apiserver() {
        for path in [
            "/",
            "/assets/index-1234.js",
            "/api/streams/start",
            "/api/streams/search",
            "/api/streams/s1",
            "/api/streams/s1/stop",
            "/api/streams/s1/analytics",
            "/api/streams//chat",
            "/api/channels/c1",
            "/api/users/u1/streams",
            crate::contracts::http::JWKS_PATH,
            "/healthz",
            "/metrics",
            "/wsx",
            "/api/ws/x",
        ] {
            assert!(!is_chat_gateway_path(path), "{path} should reach the apiserver");
        }
    }

    #[test]
    fn rules_read_as_the_ingress_writes_them() {
        let paths: Vec<(String, &str)> = CHAT_GATEWAY.iter().map(|r| (r.ingress_path(), r.path_type())).collect();
        assert_eq!(
            paths,
            [
                ("/ws/".to_owned(), "Prefix"),
                ("/api/streams/[^/]+/chat".to_owned(), "ImplementationSpecific"),
                (
                    "/api/channels/[^/]+/(chat-filters|chat-reports|bans|moderation-log|moderators)".to_owned(),
                    "ImplementationSpecific"
                ),
            ]
        );
        // Prefix: `/ws` itself too, as Kubernetes ignores the trailing slash.
        assert!(Rule::Prefix("/ws/").matches("/ws"));
        // Regex paths are anchored at the start only, as nginx matches them.
        assert!(CHAT_GATEWAY[1].matches("/api/streams/s1/chatter"));
    }
}
