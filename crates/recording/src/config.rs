//! `ONAIR_RECORDINGS_*`: where recordings go, for every service that reads or writes them (the
//! media worker stores segments; the apiserver finalizes, serves and deletes).

use std::path::Path;

use onair_config::secret;
use secrecy::SecretString;
use url::Url;

use crate::store::{StoreConfig, StoreError};

#[derive(clap::Args, Debug, Clone)]
pub struct RecordingsArgs {
    /// Where broadcasts are recorded: a directory (relative to the working directory, e.g.
    /// `.onair/recordings`), `file:///abs/dir`, or `s3://bucket[/prefix]` (any S3-compatible
    /// service). Empty turns recording off: the default for a service started on its own (a
    /// pod's disk is no place for recordings); `onair up` records into `.onair/recordings`.
    #[arg(id = "recordings_url", long = "recordings-url", env = "ONAIR_RECORDINGS_URL", default_value = "")]
    pub url: String,
    /// An S3-compatible endpoint (MinIO, Ceph, R2): addressed path-style unless told otherwise.
    #[arg(long = "recordings-endpoint", env = "ONAIR_RECORDINGS_ENDPOINT")]
    pub endpoint: Option<String>,
    #[arg(long = "recordings-region", env = "ONAIR_RECORDINGS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Both keys unset: credentials come from the environment (`AWS_*`, IRSA, instance metadata).
    #[arg(long = "recordings-access-key-id", env = "ONAIR_RECORDINGS_ACCESS_KEY_ID", value_parser = secret)]
    pub access_key_id: Option<SecretString>,
    #[arg(long = "recordings-secret-access-key", env = "ONAIR_RECORDINGS_SECRET_ACCESS_KEY", value_parser = secret)]
    pub secret_access_key: Option<SecretString>,
    /// Allow `http://` endpoints (default: exactly when the endpoint is `http://`).
    #[arg(long = "recordings-allow-http", env = "ONAIR_RECORDINGS_ALLOW_HTTP")]
    pub allow_http: Option<bool>,
    /// `https://bucket.host/key` instead of `https://host/bucket/key`.
    #[arg(long = "recordings-virtual-hosted", env = "ONAIR_RECORDINGS_VIRTUAL_HOSTED", default_value_t = false, action = clap::ArgAction::Set)]
    pub virtual_hosted_style: bool,
}

impl RecordingsArgs {
    /// From a flag list alone (tests, tools); `ONAIR_RECORDINGS_*` fill what it leaves out.
    pub fn from_flags<T: AsRef<str>>(flags: &[T]) -> Result<Self, clap::Error> {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            r: RecordingsArgs,
        }
        use clap::Parser as _;
        Wrapper::try_parse_from(std::iter::once("recordings").chain(flags.iter().map(AsRef::as_ref))).map(|w| w.r)
    }

    /// The store to open, `None` when recording is off. A plain path is made absolute against
    /// `cwd`, so a relative default works from wherever the platform was started.
    pub fn store_config(&self, cwd: &Path) -> Result<Option<StoreConfig>, StoreError> {
        let raw = self.url.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        let url = if raw.contains("://") {
            let url = Url::parse(raw).map_err(|_| StoreError::NotAUrl(raw.to_owned()))?;
            // Keys in the URL would be logged with it (and object_store ignores them).
            if !url.username().is_empty() || url.password().is_some() {
                return Err(StoreError::CredentialsInUrl);
            }
            url
        } else {
            let path = cwd.join(raw);
            Url::from_directory_path(&path).map_err(|()| StoreError::NotAUrl(raw.to_owned()))?
        };
        let mut config = StoreConfig::new(url);
        config.endpoint = self.endpoint.clone().filter(|e| !e.is_empty());
        config.region = self.region.clone();
        config.allow_http = self.allow_http;
        config.virtual_hosted_style = self.virtual_hosted_style;
        config.access_key_id = self.access_key_id.clone();
        config.secret_access_key = self.secret_access_key.clone();
        Ok(Some(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> RecordingsArgs {
        RecordingsArgs::from_flags(list).expect("valid flags")
    }

    #[test]
    fn paths_urls_and_off() {
        let cwd = Path::new("/srv/onair");
        let url = |list: &[&str]| args(list).store_config(cwd).map(|c| c.map(|c| c.url.to_string()));
        assert_eq!(url(&[]).ok().flatten(), None, "off until retention lands");
        assert_eq!(
            url(&["--recordings-url", ".onair/recordings"]).ok().flatten().as_deref(),
            Some("file:///srv/onair/.onair/recordings/")
        );
        assert_eq!(url(&["--recordings-url", "/data/rec"]).ok().flatten().as_deref(), Some("file:///data/rec/"));
        assert_eq!(url(&["--recordings-url", "s3://b/p"]).ok().flatten().as_deref(), Some("s3://b/p"));
        assert_eq!(url(&["--recordings-url", ""]).ok().flatten(), None);
        assert!(matches!(
            args(&["--recordings-url", "s3://AK:SK@b/p"]).store_config(cwd),
            Err(StoreError::CredentialsInUrl)
        ));
        let c = args(&["--recordings-url", "s3://b", "--recordings-endpoint", "http://127.0.0.1:9000"])
            .store_config(cwd)
            .ok()
            .flatten()
            .expect("a store");
        assert_eq!((c.endpoint.as_deref(), c.region.as_str()), (Some("http://127.0.0.1:9000"), "us-east-1"));
    }
}
