//! Signed playback URLs.
//!
//! A token is `{kid}.{expires}.{viewer}.{signature}` and rides in the URL's path, inside the
//! stream's directory: `{origin}/hls/{stream}/t/{token}/master.m3u8`. In the path, not the
//! query: playlists name their media by relative URI, and a relative URI keeps the directory it
//! was read from but drops the query string (RFC 3986 §5.2), so every rendition playlist, part
//! and segment a player loads carries the token without the origin writing per-viewer
//! playlists. After the stream id, not before `/hls/`: whatever routes a stream's directory
//! (an Ingress's `/hls/{stream}` prefix, a CDN's path rule) routes its signed links too. An edge
//! that knows the keys verifies it and caches by the path without it (one cached copy for every
//! viewer); one that does not passes the path through and the origin verifies it.
//!
//! The signature is HMAC-SHA256 under the key named by `kid`, over
//! `{kid}.{expires}.{viewer}/{dir}/`, base64url without padding, where `dir` is the directory
//! the token opens (`hls/{stream}` for a live stream, `vod/{id}` or `clip/{id}` for recorded
//! media): it covers that whole directory and nothing else, so a token for one opens no other. Keys rotate
//! without breaking viewers mid-stream: add the new key beside the old, make it the one that
//! signs, and drop the old one once every token it signed has expired.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The path segment that introduces a token: `/hls/{stream}/t/{token}/…`.
pub const PREFIX: &str = "t";
/// Longest a key id may be.
pub const MAX_KID_CHARS: usize = 16;
/// A signature's length: 32 bytes of HMAC-SHA256 in unpadded base64url.
const SIGNATURE_CHARS: usize = 43;
/// The latest expiry a token may carry (12 digits of unix seconds).
const MAX_EXPIRES: i64 = 999_999_999_999;
/// Shortest secret a key may have, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is not `kid.expires.viewer.signature`")]
    Malformed,
    #[error("no key has this token's key id")]
    UnknownKey,
    #[error("this server has no playback keys")]
    NoKeys,
    #[error("the token has expired")]
    Expired,
    #[error("the signature does not match")]
    BadSignature,
    #[error("playback keys: {0}")]
    Keys(String),
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub kid: String,
    /// Unix seconds.
    pub expires: i64,
    pub viewer: String,
}

/// The keys that sign and verify playback tokens, by key id; the first signs.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("Keyring").field("kids", &self.keys.iter().map(|(k, _)| k).collect::<Vec<_>>()).finish()
    }
}

fn valid_id(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Keyring {
    /// `kid:secret,kid:secret,…` (the first signs; secrets in base64url or standard base64, at
    /// least [`MIN_SECRET_BYTES`] bytes each).
    pub fn parse(spec: &str) -> Result<Self, TokenError> {
        let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (kid, secret) =
                item.split_once(':').ok_or_else(|| TokenError::Keys("each key is `kid:secret`".into()))?;
            if !valid_id(kid, 1, MAX_KID_CHARS) {
                return Err(TokenError::Keys(format!(
                    "a key id is 1-{MAX_KID_CHARS} characters of A-Z, a-z, 0-9, - and _"
                )));
            }
            let secret = URL_SAFE_NO_PAD
                .decode(secret.trim_end_matches('='))
                .or_else(|_| base64::engine::general_purpose::STANDARD.decode(secret))
                .map_err(|_| TokenError::Keys(format!("key {kid}: the secret is not base64")))?;
            if secret.len() < MIN_SECRET_BYTES {
                return Err(TokenError::Keys(format!("key {kid}: secrets are at least {MIN_SECRET_BYTES} bytes")));
            }
            if keys.iter().any(|(k, _)| k == kid) {
                return Err(TokenError::Keys(format!("key {kid} is given twice")));
            }
            keys.push((kid.to_owned(), secret));
        }
        if keys.is_empty() {
            return Err(TokenError::Keys("no keys".into()));
        }
        Ok(Self { keys })
    }

    /// The key id that signs.
    pub fn active_kid(&self) -> &str {
        &self.keys[0].0
    }

    fn key(&self, kid: &str) -> Option<&[u8]> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, s)| s.as_slice())
    }

    /// A token for `viewer` to play the live `stream` until `expires` (unix seconds), signed by
    /// the active key. `viewer` is 8-64 of `A-Za-z0-9_-` (the player's session id).
    pub fn sign(&self, stream: &str, viewer: &str, expires: i64) -> Result<String, TokenError> {
        self.sign_dir(&live_dir(stream), viewer, expires)
    }

    /// A token for `viewer` to play what is under the directory `dir` (a path without its
    /// leading and trailing `/`: `hls/{stream}`, `vod/{id}`, `clip/{id}`) until `expires`.
    pub fn sign_dir(&self, dir: &str, viewer: &str, expires: i64) -> Result<String, TokenError> {
        if !valid_id(viewer, 8, 64) || !(0..=MAX_EXPIRES).contains(&expires) {
            return Err(TokenError::Malformed);
        }
        let (kid, secret) = (&self.keys[0].0, &self.keys[0].1);
        let signature = URL_SAFE_NO_PAD.encode(mac(secret, kid, expires, viewer, dir).finalize().into_bytes());
        Ok(format!("{kid}.{expires}.{viewer}.{signature}"))
    }

    /// Checks `token` for the live `stream` at `now` (unix seconds).
    pub fn verify(&self, token: &str, stream: &str, now: i64) -> Result<Claims, TokenError> {
        self.verify_dir(token, &live_dir(stream), now)
    }

    /// Checks `token` for the directory `dir` (as [`Keyring::sign_dir`] names it) at `now`.
    pub fn verify_dir(&self, token: &str, dir: &str, now: i64) -> Result<Claims, TokenError> {
        let mut fields = token.split('.');
        let (Some(kid), Some(expires), Some(viewer), Some(signature), None) =
            (fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(TokenError::Malformed);
        };
        // One spelling per token: digits without leading zeros, so a token string names its
        // claims exactly (deny lists and logs can key on it).
        let well_formed = valid_id(kid, 1, MAX_KID_CHARS)
            && (1..=12).contains(&expires.len())
            && expires.bytes().all(|b| b.is_ascii_digit())
            && (expires == "0" || !expires.starts_with('0'))
            && valid_id(viewer, 8, 64)
            && signature.len() == SIGNATURE_CHARS;
        if !well_formed {
            return Err(TokenError::Malformed);
        }
        let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        let secret = self.key(kid).ok_or(TokenError::UnknownKey)?;
        let given = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        // Constant time: the comparison must not tell how much of a forged signature was right.
        mac(secret, kid, expires, viewer, dir).verify_slice(&given).map_err(|_| TokenError::BadSignature)?;
        if now >= expires {
            return Err(TokenError::Expired);
        }
        Ok(Claims { kid: kid.to_owned(), expires, viewer: viewer.to_owned() })
    }
}

fn mac(secret: &[u8], kid: &str, expires: i64, viewer: &str, dir: &str) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as hmac::Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(signed_text(kid, expires, viewer, dir).as_bytes());
    m
}

/// A live stream's directory, as tokens name it: `hls/{stream}`.
pub fn live_dir(stream: &str) -> String {
    format!("hls/{stream}")
}

/// What the signature covers: the key id, the expiry, the viewer, and the directory it opens
/// (`{kid}.{expires}.{viewer}/hls/{stream}/` for a live stream).
pub fn signed_text(kid: &str, expires: i64, viewer: &str, dir: &str) -> String {
    format!("{kid}.{expires}.{viewer}/{dir}/")
}

/// A stream's directory URL with a token in it: `http://cdn/hls/{stream}` and a token give
/// `http://cdn/hls/{stream}/t/{token}` (what the stream's playlists name follows it as before).
pub fn signed_dir(stream_dir: &str, token: &str) -> String {
    format!("{}/{PREFIX}/{token}", stream_dir.trim_end_matches('/'))
}

/// Splits a path inside a stream's directory, `t/{token}/rest…`, into the token and `rest…`;
/// `None` when the path carries no token.
pub fn split_in_stream(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix(PREFIX)?.strip_prefix('/')?;
    let (token, tail) = rest.split_once('/')?;
    (!token.is_empty() && !tail.is_empty()).then_some((token, tail))
}

/// Splits a playback path, `/hls/{stream}/t/{token}/rest…`, into the token and the path without
/// it, `/hls/{stream}/rest…`; `None` when the path carries no token.
pub fn split_path(path: &str) -> Option<(&str, String)> {
    let rest = path.strip_prefix("/hls/")?;
    let (stream, inside) = rest.split_once('/')?;
    let (token, tail) = split_in_stream(inside)?;
    (!stream.is_empty()).then(|| (token, format!("/hls/{stream}/{tail}")))
}

/// `path` with every token in it (a segment after a `t` segment, even with nothing after it)
/// replaced by `-`: what logs may show. A path with percent-escapes is decoded first (routers
/// decode `t%2F{token}` into a token the server accepts; the log must not keep it).
pub fn redact(path: &str) -> std::borrow::Cow<'_, str> {
    // Once, as a router decodes it.
    if path.contains('%') {
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        return redact_decoded(&decoded).into_owned().into();
    }
    redact_decoded(path)
}

fn redact_decoded(path: &str) -> std::borrow::Cow<'_, str> {
    let marker = format!("/{PREFIX}/");
    if !path.contains(&marker) {
        return path.into();
    }
    let mut out = Vec::new();
    let mut after_marker = false;
    for segment in path.split('/') {
        out.push(if after_marker && !segment.is_empty() { "-" } else { segment });
        after_marker = segment == PREFIX;
    }
    out.join("/").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const B: &str = "b:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";
    const STREAM: &str = "0192f3a0-0000-7000-8000-000000000001";

    #[test]
    fn a_token_opens_its_stream_until_it_expires() {
        let ring = Keyring::parse(A).unwrap();
        let t = ring.sign(STREAM, "viewer-0001", 2_000).unwrap();
        let claims = ring.verify(&t, STREAM, 1_999).unwrap();
        assert_eq!(ring.sign(STREAM, "viewer-0001", 1_000_000_000_000), Err(TokenError::Malformed), "past 12 digits");
        assert_eq!(claims, Claims { kid: "a".into(), expires: 2_000, viewer: "viewer-0001".into() });
        assert_eq!(ring.verify(&t, STREAM, 2_000), Err(TokenError::Expired));
        assert_eq!(ring.verify(&t, "0192f3a0-0000-7000-8000-000000000002", 1_000), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_token_opens_one_directory() {
        let ring = Keyring::parse(A).unwrap();
        let vod = ring.sign_dir(&format!("vod/{STREAM}"), "viewer-0001", 2_000).unwrap();
        assert!(ring.verify_dir(&vod, &format!("vod/{STREAM}"), 1_000).is_ok());
        assert_eq!(
            ring.verify(&vod, STREAM, 1_000),
            Err(TokenError::BadSignature),
            "a VOD's token is not the live one's"
        );
        assert_eq!(ring.verify_dir(&vod, &format!("clip/{STREAM}"), 1_000), Err(TokenError::BadSignature));
        let live = ring.sign(STREAM, "viewer-0001", 2_000).unwrap();
        assert_eq!(
            signed_text("a", 2_000, "viewer-0001", &live_dir(STREAM)),
            format!("a.2000.viewer-0001/hls/{STREAM}/")
        );
        assert!(ring.verify_dir(&live, &live_dir(STREAM), 1_000).is_ok());
    }

    #[test]
    fn any_change_to_a_token_breaks_it() {
        let ring = Keyring::parse(A).unwrap();
        let t = ring.sign(STREAM, "viewer-0001", 2_000).unwrap();
        let forged_expiry = t.replacen(".2000.", ".9000.", 1);
        assert_eq!(ring.verify(&forged_expiry, STREAM, 1_000), Err(TokenError::BadSignature));
        let forged_viewer = t.replacen("viewer-0001", "viewer-0002", 1);
        assert_eq!(ring.verify(&forged_viewer, STREAM, 1_000), Err(TokenError::BadSignature));
        let mut sig: Vec<char> = t.chars().collect();
        let last = sig.len() - 2;
        sig[last] = if sig[last] == 'A' { 'B' } else { 'A' };
        assert_eq!(ring.verify(&sig.into_iter().collect::<String>(), STREAM, 1_000), Err(TokenError::BadSignature));
        let leading_zero = t.replacen(".2000.", ".02000.", 1);
        for bad in [
            "",
            "a.b.c",
            "a.2000.viewer-0001.sig",
            "a.-1.viewer-0001.x",
            "a.2000.short.AAAA",
            &format!("{t}.x"),
            &leading_zero,
        ] {
            assert_eq!(ring.verify(bad, STREAM, 1_000), Err(TokenError::Malformed), "{bad}");
        }
    }

    #[test]
    fn keys_rotate_without_breaking_tokens_already_out() {
        let old = Keyring::parse(A).unwrap();
        let out = old.sign(STREAM, "viewer-0001", 2_000).unwrap();
        // The new key signs; the old one still verifies until it is dropped.
        let both = Keyring::parse(&format!("{B},{A}")).unwrap();
        assert_eq!(both.active_kid(), "b");
        assert!(both.verify(&out, STREAM, 1_000).is_ok());
        let fresh = both.sign(STREAM, "viewer-0001", 2_000).unwrap();
        assert!(fresh.starts_with("b."));
        assert_eq!(old.verify(&fresh, STREAM, 1_000), Err(TokenError::UnknownKey));
        let new_only = Keyring::parse(B).unwrap();
        assert_eq!(new_only.verify(&out, STREAM, 1_000), Err(TokenError::UnknownKey));
    }

    #[test]
    fn keyrings_refuse_weak_or_muddled_keys() {
        for bad in ["", "a", "a:c2hvcnQ", "bad kid:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", &format!("{A},{A}")] {
            assert!(matches!(Keyring::parse(bad), Err(TokenError::Keys(_))), "{bad}");
        }
        assert!(!format!("{:?}", Keyring::parse(A).unwrap()).contains("AAEC"), "secrets stay out of Debug");
    }

    #[test]
    fn the_token_rides_in_the_path_inside_the_streams_directory() {
        assert_eq!(signed_dir("http://cdn.example/hls/s1", "TOK"), "http://cdn.example/hls/s1/t/TOK");
        assert_eq!(signed_dir("http://cdn.example/hls/s1/", "TOK"), "http://cdn.example/hls/s1/t/TOK");
        assert_eq!(split_in_stream("t/TOK/720p/index.m3u8"), Some(("TOK", "720p/index.m3u8")));
        assert_eq!(split_in_stream("master.m3u8"), None);
        assert_eq!(split_in_stream("t//master.m3u8"), None);
        assert_eq!(split_in_stream("t/TOK"), None);
        assert_eq!(split_in_stream("t/TOK/"), None);
        assert_eq!(split_path("/hls/s1/t/TOK/dvr/master.m3u8"), Some(("TOK", "/hls/s1/dvr/master.m3u8".to_owned())));
        assert_eq!(split_path("/hls/s1/master.m3u8"), None);
        assert_eq!(split_path("/t/TOK/hls/s1/master.m3u8"), None, "the token goes inside the stream's directory");
        assert_eq!(redact("/hls/s1/t/a.2000.viewer-0001.SIG/x.m4s"), "/hls/s1/t/-/x.m4s");
        assert_eq!(redact("/hls/s1/x.m4s"), "/hls/s1/x.m4s");
        assert_eq!(redact("/hls/s1/t/a.2000.viewer-0001.SIG"), "/hls/s1/t/-", "a token with nothing after it");
        assert_eq!(redact("/cdn/t/A/hls/s1/t/B/x"), "/cdn/t/-/hls/s1/t/-/x", "every token");
        assert_eq!(redact("/hls/s1/t%2FSECRET%2Fmaster.m3u8"), "/hls/s1/t/-/master.m3u8", "escaped slashes");
        assert_eq!(redact("/hls/s1/%74/SECRET/x"), "/hls/s1/t/-/x", "an escaped t");
        assert_eq!(redact("/hls/s1/%2525"), "/hls/s1/%25", "decoded once");
    }
}
