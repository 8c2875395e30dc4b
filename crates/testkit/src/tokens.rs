//! Access tokens a test presents to be refused: each a way a real attacker or a stale client
//! gets it wrong, for the authorization tests of every service.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onair_auth::{AccessClaims, KeyRing};
use onair_domain::{Role, Tier, UserId};

/// Three tokens naming `user`, none of which may be honoured.
pub struct BadTokens {
    /// Signed by the real key, expired an hour ago.
    pub expired: String,
    /// Signed by another key that claims the real key's id.
    pub forged: String,
    /// Unsigned, `alg: none`, under the real key's id.
    pub alg_none: String,
}

/// Bad tokens for `user` (`name`) against the keys in `keys_dir` (the apiserver's).
pub fn bad_tokens(keys_dir: &std::path::Path, user: UserId, name: &str) -> anyhow::Result<BadTokens> {
    let real = KeyRing::load_dir(keys_dir, None, false)?;
    let kid = real.active_kid().to_owned();
    let claims = |ttl: i64| {
        AccessClaims::new(
            user,
            name.to_owned(),
            Role::Admin,
            Tier::Partner,
            uuid::Uuid::new_v4(),
            chrono::Duration::seconds(ttl),
        )
    };
    let expired = real.sign(&claims(-3600))?;
    let forged = KeyRing::from_keys(vec![(kid.clone(), KeyRing::generate_key())], None)?.sign(&claims(600))?;
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(600))?);
    let head = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#));
    Ok(BadTokens { expired, forged, alg_none: format!("{head}.{body}.") })
}
