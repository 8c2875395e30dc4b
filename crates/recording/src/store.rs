//! Opening the recordings store (design §1, §7) and the operations every user shares on top of
//! `object_store`: the local filesystem on one machine, any S3-compatible service otherwise.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

use crate::layout::{Rel, Root};

/// The store every part of recording talks to.
pub type Store = Arc<dyn ObjectStore>;

/// Per attempt: a live pipeline must notice a stuck server in seconds, then retry in its own
/// loop (design §4.3); object_store's defaults (10 retries over 3 minutes) would stall the queue.
const TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_RETRIES: usize = 2;
const RETRY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where recordings go: what `ONAIR_RECORDINGS_*` configure.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `file:///abs/dir` or `s3://bucket[/prefix]`.
    pub url: Url,
    /// An S3-compatible endpoint (MinIO, Ceph, R2, moto), addressed path-style by default.
    pub endpoint: Option<String>,
    pub region: String,
    /// `None`: allowed exactly when the endpoint is `http://`.
    pub allow_http: Option<bool>,
    pub virtual_hosted_style: bool,
    /// Both unset: credentials come from the environment (`AWS_*`, IRSA, instance metadata).
    pub access_key_id: Option<SecretString>,
    pub secret_access_key: Option<SecretString>,
}

impl StoreConfig {
    /// The defaults of design §7 for `url`.
    pub fn new(url: Url) -> Self {
        Self {
            url,
            endpoint: None,
            region: "us-east-1".into(),
            allow_http: None,
            virtual_hosted_style: false,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

/// Why the store could not be opened or a prefix not deleted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("recordings URL {0:?}: not a URL or path")]
    NotAUrl(String),
    #[error(
        "the recordings URL carries credentials: give them as ONAIR_RECORDINGS_ACCESS_KEY_ID and _SECRET_ACCESS_KEY"
    )]
    CredentialsInUrl,
    #[error("recordings URL {0}: only file:// and s3:// are supported")]
    Scheme(Url),
    #[error("recordings URL {0}: not an absolute local path")]
    FilePath(Url),
    #[error("recordings URL {0}: no bucket")]
    Bucket(Url),
    #[error("cannot create the recordings directory {}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open the recordings store {url}")]
    Open { url: Url, source: Box<object_store::Error> },
    #[error("recordings store: {key}")]
    Io { key: String, source: Box<object_store::Error> },
    #[error("cannot delete the objects under {prefix}")]
    Delete { prefix: Path, source: Box<object_store::Error> },
}

/// Opens the store `config` names. Opening checks the configuration only; the first request
/// finds out whether the service answers.
pub fn open(config: &StoreConfig) -> Result<Store, StoreError> {
    let url = &config.url;
    let open_err = |source| StoreError::Open { url: url.clone(), source: Box::new(source) };
    match url.scheme() {
        "file" => {
            let path = url.to_file_path().map_err(|()| StoreError::FilePath(url.clone()))?;
            // `new_with_prefix` canonicalizes, so the directory has to exist first.
            std::fs::create_dir_all(&path).map_err(|source| StoreError::CreateDir { path: path.clone(), source })?;
            // Cleanup: retention must not leave a tree of empty directories behind.
            let local = LocalFileSystem::new_with_prefix(&path).map_err(open_err)?.with_automatic_cleanup(true);
            Ok(Arc::new(local))
        }
        "s3" => {
            let bucket = url.host_str().filter(|b| !b.is_empty()).ok_or_else(|| StoreError::Bucket(url.clone()))?;
            // object_store builds its own reqwest client, which needs rustls' provider.
            onair_http::install_tls_provider();
            let retry = RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(1),
                    base: 2.0,
                },
                max_retries: MAX_RETRIES,
                retry_timeout: RETRY_TIMEOUT,
            };
            // Client options first: `with_allow_http` writes into them.
            let client = ClientOptions::new().with_timeout(TIMEOUT).with_connect_timeout(CONNECT_TIMEOUT);
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(&config.region)
                .with_client_options(client)
                .with_retry(retry)
                .with_virtual_hosted_style_request(config.virtual_hosted_style);
            if let Some(endpoint) = &config.endpoint {
                let allow_http = config.allow_http.unwrap_or_else(|| endpoint.starts_with("http://"));
                builder = builder.with_endpoint(endpoint).with_allow_http(allow_http);
            } else if let Some(allow_http) = config.allow_http {
                builder = builder.with_allow_http(allow_http);
            }
            if let Some(key) = &config.access_key_id {
                builder = builder.with_access_key_id(key.expose_secret());
            }
            if let Some(secret) = &config.secret_access_key {
                builder = builder.with_secret_access_key(secret.expose_secret());
            }
            let s3 = builder.build().map_err(open_err)?;
            let prefix = url.path().trim_matches('/');
            if prefix.is_empty() { Ok(Arc::new(s3)) } else { Ok(Arc::new(PrefixStore::new(s3, prefix))) }
        }
        _ => Err(StoreError::Scheme(url.clone())),
    }
}

/// The store path of a root: what to list or delete for a whole recording or clip.
pub fn root_path(root: &Root) -> Path {
    Path::from(root.to_string())
}

/// The store path of one object.
pub fn path(root: &Root, rel: &Rel) -> Path {
    Path::from(root.key(rel))
}

/// Deletes every object under `prefix` (whole path segments: `rec/a` never touches `rec/ab`).
/// Idempotent: objects already gone count as deleted by someone else. Returns how many this
/// call removed.
pub async fn delete_prefix(store: &dyn ObjectStore, prefix: &Path) -> Result<u64, StoreError> {
    let fail = |source| StoreError::Delete { prefix: prefix.clone(), source: Box::new(source) };
    let locations = store.list(Some(prefix)).map_ok(|meta| meta.location).boxed();
    let mut results = store.delete_stream(locations);
    let mut deleted = 0;
    while let Some(result) = results.next().await {
        match result {
            Ok(_) => deleted += 1,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(fail(e)),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("valid URL in test")
    }

    #[test]
    fn unsupported_or_incomplete_urls_are_refused() {
        for (u, want) in [
            ("gs://bucket/prefix", "only file:// and s3://"),
            ("http://example.com/x", "only file:// and s3://"),
            ("s3:///prefix", "no bucket"),
            ("file://remote-host/x", "not an absolute local path"),
        ] {
            let err = open(&StoreConfig::new(url(u))).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(want), "{u}: {err}");
        }
    }

    #[test]
    fn s3_opens_without_contacting_anyone() {
        let mut config = StoreConfig::new(url("s3://onair-recordings/prod"));
        config.endpoint = Some("http://127.0.0.1:9".into());
        config.access_key_id = Some("AK".into());
        config.secret_access_key = Some("SK".into());
        assert!(open(&config).is_ok());
    }

    #[test]
    fn paths_are_the_layout_keys() {
        let root = Root::Recording(uuid::Uuid::nil());
        assert_eq!(root_path(&root).as_ref(), "rec/00000000-0000-0000-0000-000000000000");
        assert_eq!(path(&root, &Rel::Master).as_ref(), "rec/00000000-0000-0000-0000-000000000000/master.m3u8");
    }
}
