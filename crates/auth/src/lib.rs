#![doc = include_str!("../README.md")]

mod jwks;
mod keys;
mod token;

pub use jwks::{Jwk, Jwks};
pub use keys::{KeyError, KeyRing};
pub use token::{AccessClaims, TokenError, Verifier};

/// The one algorithm onair signs and accepts. Pinned: a token naming any other algorithm
/// (`none`, `HS256` with the public key as a secret, ...) is rejected before its signature is looked at.
pub const ALGORITHM: jsonwebtoken::Algorithm = jsonwebtoken::Algorithm::EdDSA;
