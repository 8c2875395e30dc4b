//! `onair internal-token`: the chart's pre-install hook. Creates the Secret holding the token
//! the services and media pods share, with a random value, unless it exists; never changes one
//! that does. Made in the cluster rather than rendered by Helm, so offline renders (`helm
//! template`, Argo CD, Flux) are identical every time and a sync never rotates the token.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};
use rand::Rng as _;
use rand::distr::Alphanumeric;

/// The key the services read (`secretKeyRef ... key: internal-token`).
pub const KEY: &str = crate::desired::MEDIA_SECRET_TOKEN_KEY;
/// 48 alphanumerics: ~285 bits.
const LENGTH: usize = 48;

#[derive(clap::Args, Debug, Clone)]
pub struct InternalTokenArgs {
    /// The Secret to create if missing.
    #[arg(long)]
    pub secret: String,
    /// Its namespace (the release's; the pod's own by default).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub namespace: String,
}

/// What `ensure` found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Kept,
}

/// Create `name` in `namespace` with a fresh random token unless it exists with the key. An
/// existing Secret without the key is an error (someone else's Secret: not ours to change).
pub async fn ensure(client: Client, namespace: &str, name: &str) -> anyhow::Result<Outcome> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    if let Some(existing) = api.get_opt(name).await? {
        anyhow::ensure!(
            existing.data.as_ref().is_some_and(|d| d.contains_key(KEY)),
            "Secret {namespace}/{name} exists without the key {KEY}; add it or name another Secret"
        );
        tracing::info!(%namespace, secret = %name, "internal token Secret exists; kept");
        return Ok(Outcome::Kept);
    }
    let token: String = rand::rng().sample_iter(&Alphanumeric).take(LENGTH).map(char::from).collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([("app.kubernetes.io/part-of".to_string(), "onair".to_string())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(KEY.to_string(), ByteString(token.into_bytes()))])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(%namespace, secret = %name, "internal token Secret created");
            Ok(Outcome::Created)
        }
        // Another run of the hook made it meanwhile: theirs stands.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Outcome::Kept),
        Err(e) => Err(e.into()),
    }
}

/// The subcommand: in-cluster (or kubeconfig) client, then `ensure`.
pub async fn run(args: InternalTokenArgs) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    ensure(client, &args.namespace, &args.secret).await.map(|_| ())
}
