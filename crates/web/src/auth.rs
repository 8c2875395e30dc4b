//! Credentials in requests, parsed one way for every service: the bearer token of an
//! `Authorization` header, and a constant-time compare for shared secrets.

use http::HeaderMap;

/// Why an `Authorization` header is not a usable bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("the Authorization header is not valid text")]
    NotText,
    #[error("use Authorization: Bearer <access token>")]
    NotBearer,
}

/// The token of `Authorization: Bearer <token>`; `Ok(None)` when there is no such header. The
/// scheme is matched case-insensitively (RFC 7235 §2.1); the token is trimmed and must not be
/// empty.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| BearerError::NotText)?;
    let (scheme, token) = value.trim_start().split_once(' ').ok_or(BearerError::NotBearer)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(BearerError::NotBearer);
    }
    Ok(Some(token))
}

/// Compare without an early exit, so timing reveals nothing about a secret's prefix (only
/// whether the lengths differ).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, http::HeaderValue::from_bytes(value).expect("valid header bytes"));
        h
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        for v in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR  abc "] {
            assert_eq!(bearer_token(&headers(v.as_bytes())), Ok(Some("abc")), "{v}");
        }
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_refused() {
        for v in ["Basic abc", "Bearer", "Bearer   ", "Bearerabc", "abc"] {
            assert_eq!(bearer_token(&headers(v.as_bytes())), Err(BearerError::NotBearer), "{v}");
        }
        assert_eq!(bearer_token(&headers(b"Bearer \xff")), Err(BearerError::NotText));
        assert_eq!(bearer_token(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(constant_time_eq(b"", b""));
    }
}
