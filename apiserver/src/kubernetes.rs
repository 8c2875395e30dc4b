//! The Kubernetes orchestrator: a stream is a `LiveStream` resource the operator runs.
//!
//! Start applies a Secret holding the stream key's hash (never the key) and the LiveStream;
//! stop deletes the LiveStream (its finalizer ends the stream gracefully, its owner references
//! take the Secret and the media objects with it); the stream's media status is read back from
//! the LiveStream's status. Needs only create/get/patch/delete on LiveStreams and Secrets in
//! its namespace (charts/onair/templates/apiserver-rbac.yaml).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, Resource as _};
use onair_crds::{Ladder, LadderPreset, LiveStream, LiveStreamSpec, SecretKeyRef, StreamTier};
use onair_domain::{PlaybackAccess, StreamId, Tier};

use crate::orchestrator::{MediaEndpoints, MediaStatus, Orchestrator, OrchestratorError, StreamSpec};

const MANAGER: &str = "onair-apiserver";

pub struct KubernetesOrchestrator {
    api: Api<LiveStream>,
    secrets: Api<Secret>,
    ingest_url: String,
    playback_base_url: String,
}

/// The LiveStream's name for a stream: a DNS label the operator's suffixes keep valid.
pub fn livestream_name(stream: StreamId) -> String {
    format!("stream-{}", stream.0)
}

/// The ladder a stream asks for: the streamer's quality caps it; partners get the full ladder.
pub fn ladder_for(tier: Tier, quality: &str) -> Ladder {
    let preset = match quality {
        "1080p" => LadderPreset::Full,
        "720p" => LadderPreset::Standard,
        "480p" => LadderPreset::Economy,
        _ if tier == Tier::Partner => LadderPreset::Full,
        _ => LadderPreset::Standard,
    };
    Ladder { preset: Some(preset), renditions: None }
}

impl KubernetesOrchestrator {
    pub fn new(client: Client, namespace: &str, ingest_url: &str, playback_base_url: &str) -> Self {
        Self {
            api: Api::namespaced(client.clone(), namespace),
            secrets: Api::namespaced(client, namespace),
            ingest_url: ingest_url.to_owned(),
            playback_base_url: playback_base_url.trim_end_matches('/').to_owned(),
        }
    }

    fn error(what: &str, e: kube::Error) -> OrchestratorError {
        OrchestratorError(format!("{what}: {e}"))
    }
}

#[async_trait::async_trait]
impl Orchestrator for KubernetesOrchestrator {
    async fn start(&self, spec: &StreamSpec) -> Result<MediaEndpoints, OrchestratorError> {
        let name = livestream_name(spec.stream_id);
        let secret_name = format!("{name}-key");
        let labels = BTreeMap::from([
            ("app.kubernetes.io/part-of".to_string(), "onair".to_string()),
            ("app.kubernetes.io/managed-by".to_string(), MANAGER.to_string()),
            ("onair.dev/stream-id".to_string(), spec.stream_id.to_string()),
        ]);
        let mut ls = LiveStream::new(
            &name,
            LiveStreamSpec {
                stream_id: spec.stream_id.0,
                user_id: spec.user_id.0,
                channel: spec.channel.clone(),
                stream_key_secret: SecretKeyRef { name: secret_name.clone(), key: "keyHash".into() },
                ladder: ladder_for(spec.tier, &spec.quality),
                latency: Default::default(),
                tier: if spec.tier == Tier::Partner { StreamTier::Partner } else { StreamTier::Free },
                playback_access: match spec.playback_access {
                    PlaybackAccess::Public => onair_crds::PlaybackAccess::Public,
                    PlaybackAccess::Signed => onair_crds::PlaybackAccess::Signed,
                    PlaybackAccess::Followers => onair_crds::PlaybackAccess::Followers,
                },
                scaling: Default::default(),
                resources: None,
                suspend: false,
            },
        );
        ls.metadata.labels = Some(labels.clone());
        let params = PatchParams::apply(MANAGER).force();
        // The key hash first, so the operator never sees a LiveStream without its Secret; then
        // the LiveStream; then the Secret becomes owned by it (deleting the stream deletes it).
        let secret = |owner: Option<OwnerReference>| Secret {
            metadata: ObjectMeta {
                name: Some(secret_name.clone()),
                labels: Some(labels.clone()),
                owner_references: owner.map(|o| vec![o]),
                ..Default::default()
            },
            string_data: Some(BTreeMap::from([("keyHash".to_string(), spec.key_hash.clone())])),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        self.secrets
            .patch(&secret_name, &params, &Patch::Apply(&secret(None)))
            .await
            .map_err(|e| Self::error("Secret", e))?;
        let applied =
            self.api.patch(&name, &params, &Patch::Apply(&ls)).await.map_err(|e| Self::error("LiveStream", e))?;
        let owner = OwnerReference {
            api_version: LiveStream::api_version(&()).into_owned(),
            kind: LiveStream::kind(&()).into_owned(),
            name: name.clone(),
            uid: applied.metadata.uid.clone().unwrap_or_default(),
            controller: Some(false),
            block_owner_deletion: Some(true),
        };
        self.secrets
            .patch(&secret_name, &params, &Patch::Apply(&secret(Some(owner))))
            .await
            .map_err(|e| Self::error("Secret", e))?;
        tracing::info!(stream_id = %spec.stream_id, livestream = %name, "LiveStream applied");
        Ok(MediaEndpoints {
            ingest_url: self.ingest_url.clone(),
            playback_url: onair_domain::contracts::playback::master_url(&self.playback_base_url, spec.stream_id),
        })
    }

    async fn stop(&self, stream: StreamId) -> Result<(), OrchestratorError> {
        match self.api.delete(&livestream_name(stream), &DeleteParams::foreground()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Self::error("LiveStream", e)),
        }
    }

    async fn media_status(&self, stream: StreamId) -> Option<MediaStatus> {
        let ls = match self.api.get_opt(&livestream_name(stream)).await {
            Ok(ls) => ls?,
            Err(e) => {
                tracing::warn!(stream_id = %stream, error = %e, "cannot read the LiveStream");
                return None;
            }
        };
        let status = ls.status.unwrap_or_default();
        let message = onair_crds::conditions::condition(&status.conditions, onair_crds::ConditionType::Ready)
            .filter(|c| c.status != "True" && !c.message.is_empty())
            .map(|c| c.message.clone());
        Some(MediaStatus {
            phase: status.phase.unwrap_or_default().as_str().to_string(),
            ingest_url: status.ingest_url,
            playback_url: status.playback_url,
            renditions: status.renditions,
            message,
            playable: None,
            recording: None,
        })
    }

    fn name(&self) -> &'static str {
        "kubernetes"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_follow_tier_and_quality() {
        let preset = |t, q| ladder_for(t, q).preset.unwrap();
        assert_eq!(preset(Tier::Free, "source"), LadderPreset::Standard);
        assert_eq!(preset(Tier::Partner, "source"), LadderPreset::Full);
        assert_eq!(preset(Tier::Partner, "480p"), LadderPreset::Economy);
        assert_eq!(preset(Tier::Free, "1080p"), LadderPreset::Full);
        assert!(livestream_name(StreamId::new()).len() <= 50, "operator suffixes must still fit a DNS label");
    }
}
