//! Signing keys: Ed25519, one PKCS#8 PEM file per key id in a directory.
//!
//! Rotation: drop a new `<kid>.pem` into the directory and make it active (`active_kid`, or it
//! becomes active by sorting last). Tokens signed by the old key keep verifying while its file
//! stays; remove the file once the longest access-token lifetime has passed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{EncodingKey, Header};
use rand::RngCore as _;

use crate::jwks::{Jwk, Jwks};
use crate::token::{AccessClaims, Verifier};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading key directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("key file {path} is not an Ed25519 PKCS#8 PEM private key")]
    BadKey { path: PathBuf },
    #[error("no signing keys in {0} (and generation was not allowed)")]
    NoKeys(PathBuf),
    #[error("active key id {0:?} is not among the loaded keys")]
    UnknownActive(String),
    #[error("key id {0:?} must be 1-64 characters of a-z, A-Z, 0-9, '-', '_', '.'")]
    BadKid(String),
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

struct Key {
    encoding: EncodingKey,
    public: [u8; 32],
}

/// Every signing key the apiserver holds; one of them signs, all of them verify.
pub struct KeyRing {
    keys: BTreeMap<String, Key>,
    active: String,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish()
    }
}

fn valid_kid(kid: &str) -> bool {
    (1..=64).contains(&kid.len()) && kid.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl KeyRing {
    /// A ring from already-decoded keys (tests, or keys held in memory).
    pub fn from_keys(keys: Vec<(String, SigningKey)>, active: Option<&str>) -> Result<Self, KeyError> {
        let mut map = BTreeMap::new();
        for (kid, sk) in keys {
            if !valid_kid(&kid) {
                return Err(KeyError::BadKid(kid));
            }
            let der = sk.to_pkcs8_der().map_err(|_| KeyError::BadKey { path: PathBuf::from(&kid) })?;
            map.insert(
                kid,
                Key { encoding: EncodingKey::from_ed_der(der.as_bytes()), public: sk.verifying_key().to_bytes() },
            );
        }
        let active = match active {
            Some(a) if map.contains_key(a) => a.to_owned(),
            Some(a) => return Err(KeyError::UnknownActive(a.to_owned())),
            // Key ids sort by the date they were made (see `generate_into`), so the last is the newest.
            None => map.keys().next_back().cloned().ok_or_else(|| KeyError::NoKeys(PathBuf::new()))?,
        };
        Ok(Self { keys: map, active })
    }

    /// A fresh random key (used by tests and by `load_dir` on an empty directory).
    pub fn generate_key() -> SigningKey {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        SigningKey::from_bytes(&seed)
    }

    /// Load every `*.pem` in `dir`. With `generate` and an empty (or missing) directory, make
    /// one key and write it there (0600), so a single machine keeps its tokens valid across restarts.
    pub fn load_dir(dir: &Path, active: Option<&str>, generate: bool) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io { path: dir.to_owned(), source };
        if generate {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut keys = Vec::new();
        if dir.exists() {
            for entry in std::fs::read_dir(dir).map_err(io)? {
                let path = entry.map_err(io)?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("pem") {
                    continue;
                }
                let kid = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
                let pem =
                    std::fs::read_to_string(&path).map_err(|source| KeyError::Io { path: path.clone(), source })?;
                let sk = SigningKey::from_pkcs8_pem(&pem).map_err(|_| KeyError::BadKey { path: path.clone() })?;
                keys.push((kid, sk));
            }
        }
        if keys.is_empty() {
            if !generate {
                return Err(KeyError::NoKeys(dir.to_owned()));
            }
            keys.push(Self::generate_into(dir)?);
        }
        Self::from_keys(keys, active)
    }

    /// Write a new key named by today's date and a random suffix into `dir`; returns it.
    pub fn generate_into(dir: &Path) -> Result<(String, SigningKey), KeyError> {
        let sk = Self::generate_key();
        let kid = format!("{}-{:08x}", chrono::Utc::now().format("%Y%m%d%H%M%S"), rand::random::<u32>());
        let path = dir.join(format!("{kid}.pem"));
        let pem = sk.to_pkcs8_pem(Default::default()).map_err(|_| KeyError::BadKey { path: path.clone() })?;
        write_private(&path, pem.as_bytes()).map_err(|source| KeyError::Io { path, source })?;
        Ok((kid, sk))
    }

    pub fn active_kid(&self) -> &str {
        &self.active
    }

    /// Sign `claims` with the active key; the header names the key id and the pinned algorithm.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        let mut header = Header::new(crate::ALGORITHM);
        header.kid = Some(self.active.clone());
        let key = &self.keys[&self.active].encoding;
        Ok(jsonwebtoken::encode(&header, claims, key)?)
    }

    /// The public half of every key, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self
                .keys
                .iter()
                .map(|(kid, k)| Jwk {
                    kty: "OKP".into(),
                    crv: "Ed25519".into(),
                    x: URL_SAFE_NO_PAD.encode(k.public),
                    kid: kid.clone(),
                    alg: Some("EdDSA".into()),
                    use_: Some("sig".into()),
                })
                .collect(),
        }
    }

    /// A verifier that accepts tokens from any key in this ring.
    pub fn verifier(&self) -> Verifier {
        // Cannot fail: every JWK here was produced from a valid key just above.
        Verifier::from_jwks(&self.jwks()).unwrap_or_else(|_| Verifier::empty())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
