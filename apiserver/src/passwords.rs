//! Password hashing: argon2id with OWASP's parameters (19 MiB, t=2, p=1), run off the async
//! threads and bounded, so a login burst cannot exhaust memory or starve other requests.

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use onair_domain::Password;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    /// A real hash of a random password: verified against when a login names no account, so
    /// "no such user" and "wrong password" take the same time.
    dummy_hash: Arc<String>,
}

impl Passwords {
    pub fn new() -> anyhow::Result<Self> {
        let params = Params::new(19 * 1024, 2, 1, None).map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?;
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let mut p = Self { params, permits: Arc::new(Semaphore::new(cpus * 2)), dummy_hash: Arc::new(String::new()) };
        let random: [u8; 16] = rand::random();
        p.dummy_hash = Arc::new(p.hash_sync(&random)?);
        Ok(p)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    fn hash_sync(&self, password: &[u8]) -> anyhow::Result<String> {
        self.argon2().hash_password(password).map(|h| h.to_string()).map_err(|e| anyhow::anyhow!("argon2 hash: {e}"))
    }

    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        let this = self.clone();
        let pw = password.expose().as_bytes().to_vec();
        tokio::task::spawn_blocking(move || this.hash_sync(&pw)).await?
    }

    /// `Ok(true)` when `password` matches `hash`; `hash` None verifies against the dummy.
    pub async fn verify(&self, password: &str, hash: Option<String>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        let this = self.clone();
        let pw = password.as_bytes().to_vec();
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| (*self.dummy_hash).clone());
        let ok = tokio::task::spawn_blocking(move || this.argon2().verify_password(&pw, hash.as_str()).is_ok()).await?;
        Ok(ok && real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_is_argon2id_owasp_and_verifies() {
        let p = Passwords::new().unwrap();
        let pw = Password::parse("password", "correct horse battery").unwrap();
        let h = p.hash(&pw).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(p.verify("correct horse battery", Some(h.clone())).await.unwrap());
        assert!(!p.verify("wrong horse battery", Some(h)).await.unwrap());
        assert!(!p.verify("anything", None).await.unwrap(), "the dummy never matches");
    }
}
