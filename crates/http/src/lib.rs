//! The one way to build an HTTP client in onair.
//!
//! reqwest speaks TLS through rustls with `rustls-no-provider`: the workspace uses ring (sqlx and
//! kube do), and reqwest's own `rustls` feature would add aws-lc-rs beside it. With that feature
//! reqwest panics building a client unless a process-wide provider was installed first, and Cargo
//! unifies features, so one crate asking for TLS (object_store's S3 client, an `https://` JWKS
//! URL) makes every `reqwest::Client::new()` in the build panic. [`builder`] installs ring first;
//! clippy's `disallowed-methods` (clippy.toml) keeps every other constructor out.

use std::sync::Once;

/// Installs ring as rustls' process-wide crypto provider, once. Anything that builds its own
/// reqwest client (object_store's S3 client) calls this first.
pub fn install_tls_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Refused only when another provider is installed already, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `reqwest::Client::builder()` with the TLS provider in place, and idle connections let go
/// after 5 s: onair's servers close a connection idle for 10 s (`onair_web::Connections`), and a
/// request sent on one they are closing would fail.
#[allow(clippy::disallowed_methods)] // the one place allowed to call it
pub fn builder() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder().pool_idle_timeout(std::time::Duration::from_secs(5))
}

/// A client with reqwest's defaults, for tests and one-off tools. Services set timeouts through
/// [`builder`].
pub fn client() -> reqwest::Client {
    // Building loads the system's CA certificates (rustls-platform-verifier): it fails only on
    // a host without them, and every image and machine we run on has them.
    builder().build().expect("an HTTP client builds where the system's CA certificates are installed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_build_with_tls_and_the_provider_is_installed() {
        let _ = client();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        // Idempotent: a second client in the same process builds too.
        let _ = builder().https_only(true).build().expect("builds");
    }

    #[tokio::test]
    async fn https_urls_are_spoken_not_refused() {
        // No network here: a TLS handshake with a closed local port fails with a connect error,
        // not with "scheme is not http" (reqwest without TLS) and not with a panic.
        let err = client().get("https://127.0.0.1:9/").send().await.expect_err("nothing listens on port 9");
        assert!(err.is_connect(), "{err:?}");
    }
}
