//! Access-token claims and verification.

use std::collections::HashMap;

use jsonwebtoken::{DecodingKey, Validation, errors::ErrorKind};
use onair_domain::contracts::jwt::{AUDIENCE, ISSUER};
use onair_domain::{Role, Tier, UserId};
use serde::{Deserialize, Serialize};

use crate::jwks::Jwks;

/// What an access token says about its bearer. Short-lived: a role or ban change reaches
/// every service by the next refresh at the latest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: UserId,
    /// The username, so services can label messages without a lookup.
    pub name: String,
    pub role: Role,
    pub tier: Tier,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// The refresh-token family this access token came from (its login session).
    pub sid: uuid::Uuid,
}

impl AccessClaims {
    pub fn new(sub: UserId, name: String, role: Role, tier: Tier, sid: uuid::Uuid, ttl: chrono::Duration) -> Self {
        let now = chrono::Utc::now().timestamp();
        Self {
            sub,
            name,
            role,
            tier,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + ttl.num_seconds(),
            sid,
        }
    }

    /// The owner of `channel` (a channel is its owner's user id) or an admin: may appoint the
    /// channel's moderators and moderate them, and change its streams.
    pub fn is_owner_or_admin(&self, channel: UserId) -> bool {
        self.sub == channel || self.role == Role::Admin
    }

    /// Staff of `channel`: its owner, an admin, or (`moderator`, as the caller read it) one of
    /// its appointed moderators. Staff moderate the channel's chat and skip its slow mode and
    /// filters.
    pub fn is_staff(&self, channel: UserId, moderator: bool) -> bool {
        moderator || self.is_owner_or_admin(channel)
    }
}

/// Why a token was refused. The `code` is what clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is malformed")]
    Malformed,
    #[error("the access token uses an algorithm other than EdDSA")]
    WrongAlgorithm,
    #[error("the access token was signed by an unknown key")]
    UnknownKey,
    #[error("the access token's signature or claims are invalid")]
    Invalid,
}

impl TokenError {
    pub fn code(self) -> &'static str {
        match self {
            Self::Expired => "token_expired",
            _ => "invalid_token",
        }
    }
}

/// Verifies access tokens against a set of public keys (from a `KeyRing` or a fetched JWKS).
#[derive(Clone)]
pub struct Verifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("kids", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

impl Verifier {
    pub fn empty() -> Self {
        let mut validation = Validation::new(crate::ALGORITHM);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Clocks between services drift a little; more than this is a bug worth surfacing.
        validation.leeway = 5;
        Self { keys: HashMap::new(), validation }
    }

    /// Keys from a JWKS; entries that are not Ed25519 are skipped (we never accept them).
    pub fn from_jwks(jwks: &Jwks) -> Result<Self, TokenError> {
        let mut v = Self::empty();
        for k in &jwks.keys {
            if k.kty != "OKP" || k.crv != "Ed25519" {
                continue;
            }
            let key = DecodingKey::from_ed_components(&k.x).map_err(|_| TokenError::Malformed)?;
            v.keys.insert(k.kid.clone(), key);
        }
        Ok(v)
    }

    pub fn knows(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Check the header (algorithm pinned, known `kid`), signature, expiry, issuer and audience.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            // `alg: none` and other algorithms jsonwebtoken does not know fail to parse here.
            ErrorKind::Json(_) | ErrorKind::InvalidAlgorithmName => TokenError::WrongAlgorithm,
            _ => TokenError::Malformed,
        })?;
        if header.alg != crate::ALGORITHM {
            return Err(TokenError::WrongAlgorithm);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation).map(|d| d.claims).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
                _ => TokenError::Invalid,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::{KeyError, KeyRing};

    fn claims(ttl_secs: i64) -> AccessClaims {
        AccessClaims::new(
            UserId::new(),
            "bob".into(),
            Role::Viewer,
            Tier::Free,
            uuid::Uuid::new_v4(),
            chrono::Duration::seconds(ttl_secs),
        )
    }

    #[test]
    fn staff_is_the_owner_an_admin_or_a_moderator() {
        let channel = UserId::new();
        let with = |sub: UserId, role: Role| AccessClaims { sub, role, ..claims(60) };
        let (owner, admin, viewer) = (with(channel, Role::Viewer), with(UserId::new(), Role::Admin), claims(60));
        let streamer = with(UserId::new(), Role::Streamer);
        // (who, appointed moderator?) -> (owner or admin, staff)
        for (who, moderator, owner_or_admin, staff) in [
            (&owner, false, true, true),
            (&admin, false, true, true),
            (&viewer, true, false, true),
            (&viewer, false, false, false),
            (&streamer, false, false, false),
        ] {
            assert_eq!(who.is_owner_or_admin(channel), owner_or_admin, "{who:?}");
            assert_eq!(who.is_staff(channel, moderator), staff, "{who:?} moderator={moderator}");
        }
    }

    fn ring(kid: &str) -> KeyRing {
        KeyRing::from_keys(vec![(kid.into(), KeyRing::generate_key())], None).unwrap()
    }

    #[test]
    fn round_trip_and_kid_in_header() {
        let ring = ring("k1");
        let c = claims(60);
        let token = ring.sign(&c).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("k1"));
        assert_eq!(ring.verifier().verify(&token).unwrap(), c);
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_until_the_old_key_is_removed() {
        let old = KeyRing::generate_key();
        let new = KeyRing::generate_key();
        let before = KeyRing::from_keys(vec![("2026a".into(), old.clone())], None).unwrap();
        let token_old = before.sign(&claims(60)).unwrap();
        let after = KeyRing::from_keys(vec![("2026a".into(), old), ("2026b".into(), new.clone())], None).unwrap();
        assert_eq!(after.active_kid(), "2026b", "newest key signs");
        let token_new = after.sign(&claims(60)).unwrap();
        assert!(after.verifier().verify(&token_old).is_ok());
        assert!(after.verifier().verify(&token_new).is_ok());
        let retired = KeyRing::from_keys(vec![("2026b".into(), new)], None).unwrap();
        assert_eq!(retired.verifier().verify(&token_old), Err(TokenError::UnknownKey));
    }

    #[test]
    fn forged_and_confused_tokens_are_refused() {
        let ring = ring("k1");
        let other = ring_with_same_kid_other_key();
        let forged = other.sign(&claims(60)).unwrap();
        assert_eq!(ring.verifier().verify(&forged), Err(TokenError::Invalid));

        // alg: none, with and without a signature.
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(60)).unwrap());
        for alg in ["none", "None", "HS256", "RS256"] {
            let head = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k1"}}"#));
            for sig in ["", "c2ln"] {
                let t = format!("{head}.{body}.{sig}");
                let err = ring.verifier().verify(&t).unwrap_err();
                assert!(matches!(err, TokenError::WrongAlgorithm | TokenError::Malformed), "{alg}: {err:?}");
            }
        }

        // HS256 signed with the public key as the HMAC secret (the classic confusion attack).
        let public = URL_SAFE_NO_PAD.decode(&ring.jwks().keys[0].x).unwrap();
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some("k1".into());
        let hs = jsonwebtoken::encode(&h, &claims(60), &jsonwebtoken::EncodingKey::from_secret(&public)).unwrap();
        assert_eq!(ring.verifier().verify(&hs), Err(TokenError::WrongAlgorithm));

        for junk in ["", "abc", "a.b.c", "....", &"x".repeat(10_000)] {
            assert!(ring.verifier().verify(junk).is_err());
        }
    }

    fn ring_with_same_kid_other_key() -> KeyRing {
        ring("k1")
    }

    #[test]
    fn expired_and_wrong_audience() {
        let ring = ring("k1");
        let token = ring.sign(&claims(-3600)).unwrap();
        assert_eq!(ring.verifier().verify(&token), Err(TokenError::Expired));
        assert_eq!(TokenError::Expired.code(), "token_expired");
        let mut c = claims(60);
        c.aud = "someone-else".into();
        assert_eq!(ring.verifier().verify(&ring.sign(&c).unwrap()), Err(TokenError::Invalid));
    }

    #[test]
    fn key_directory_generates_once_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let a = KeyRing::load_dir(dir.path(), None, true).unwrap();
        let b = KeyRing::load_dir(dir.path(), None, true).unwrap();
        assert_eq!(a.jwks(), b.jwks(), "the generated key is reused, not regenerated");
        let token = a.sign(&claims(60)).unwrap();
        assert!(b.verifier().verify(&token).is_ok());
        assert!(matches!(KeyRing::load_dir(&dir.path().join("missing"), None, false), Err(KeyError::NoKeys(_))));
        std::fs::write(dir.path().join("bad.pem"), "not a key").unwrap();
        assert!(matches!(KeyRing::load_dir(dir.path(), None, false), Err(KeyError::BadKey { .. })));
    }
}
