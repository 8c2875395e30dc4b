//! Access-token verification with the apiserver's published keys, fetched over HTTP and
//! refreshed when a token names a key we have not seen (rotation), at most every 10 s.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use onair_auth::{AccessClaims, Jwks, TokenError, Verifier};

pub struct Keys {
    url: String,
    http: reqwest::Client,
    verifier: RwLock<Verifier>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Keys {
    /// Fetch the key set, retrying for up to `patience` (the apiserver may be starting too).
    pub async fn fetch(url: &str, patience: Duration) -> anyhow::Result<Self> {
        let http = onair_http::builder().timeout(Duration::from_secs(5)).build()?;
        let deadline = Instant::now() + patience;
        let jwks = loop {
            match get(&http, url).await {
                Ok(j) => break j,
                Err(e) if Instant::now() < deadline => {
                    tracing::info!(url, error = %e, "waiting for the apiserver's keys");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e.context(format!("fetching JWKS from {url}"))),
            }
        };
        Ok(Self {
            url: url.to_owned(),
            http,
            verifier: RwLock::new(Verifier::from_jwks(&jwks).map_err(|e| anyhow::anyhow!("bad JWKS: {e}"))?),
            last_fetch: tokio::sync::Mutex::new(Some(Instant::now())),
        })
    }

    pub async fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let first = self.verifier.read().map_err(|_| TokenError::Invalid)?.verify(token);
        match first {
            Err(TokenError::UnknownKey) if self.refresh().await => {
                self.verifier.read().map_err(|_| TokenError::Invalid)?.verify(token)
            }
            other => other,
        }
    }

    /// Re-fetch the key set unless we did so in the last 10 s; true when it was refreshed.
    async fn refresh(&self) -> bool {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
            return false;
        }
        *last = Some(Instant::now());
        match get(&self.http, &self.url).await.and_then(|j| Verifier::from_jwks(&j).map_err(|e| anyhow::anyhow!("{e}")))
        {
            Ok(v) => {
                if let Ok(mut w) = self.verifier.write() {
                    *w = v;
                }
                tracing::info!("token keys refreshed");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not refresh token keys");
                false
            }
        }
    }
}

async fn get(http: &reqwest::Client, url: &str) -> anyhow::Result<Jwks> {
    Ok(http.get(url).send().await?.error_for_status()?.json().await?)
}
