//! The real-cluster suite: runs when `KUBECONFIG` points at a reachable cluster with the chart
//! installed (README "Running on Kubernetes"), and says plainly that it skipped otherwise.
//!
//! It applies the CRD and, in the README install's stream namespace, creates a key Secret and a
//! LiveStream, waits for Ready, publishes RTMP to the stream's ingest URL (the ingest Service must be reachable from here: a LoadBalancer, or
//! `ONAIR_E2E_INGEST_URL` after a `kubectl port-forward`), waits for Live with renditions,
//! suspends it and waits for Ended, then deletes it and waits until its objects are gone.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use onair_crds::{LiveStream, Phase};
use serde_json::json;

/// The stream namespace of the README's install (`streams.namespaces={onair-streams}`): the
/// operator watches it and nothing else. Override with `ONAIR_E2E_NAMESPACE` for another install.
fn namespace() -> String {
    std::env::var("ONAIR_E2E_NAMESPACE").unwrap_or_else(|_| "onair-streams".into())
}

async fn cluster() -> Option<Client> {
    if std::env::var_os("KUBECONFIG").is_none() {
        eprintln!("SKIPPED: the real-cluster suite needs KUBECONFIG pointing at a cluster with charts/onair installed");
        return None;
    }
    let client = match Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIPPED: KUBECONFIG is set but no client could be made: {e}");
            return None;
        }
    };
    if let Err(e) = client.apiserver_version().await {
        eprintln!("SKIPPED: the cluster in KUBECONFIG does not answer: {e}");
        return None;
    }
    Some(client)
}

async fn wait_phase(api: &Api<LiveStream>, name: &str, want: Phase, within: Duration) -> LiveStream {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let ls = api.get(name).await.unwrap();
        if ls.status.as_ref().and_then(|s| s.phase) == Some(want) {
            return ls;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} never reached {want:?}: {:?}", ls.status);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn a_livestream_goes_live_on_a_real_cluster_and_back() {
    let Some(client) = cluster().await else { return };
    let pp = PatchParams::apply("onair-e2e").force();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch("livestreams.onair.dev", &pp, &Patch::Apply(onair_crds::crd())).await.unwrap();
    let ns = namespace();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(
        namespaces.get_opt(&ns).await.unwrap().is_some(),
        "namespace {ns} does not exist: install the chart as the README says, or set ONAIR_E2E_NAMESPACE"
    );

    let key = format!("live_e2e_{}", uuid::Uuid::new_v4().simple());
    let hash = onair_domain::contracts::stream_key::hash_hex(&key);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "e2e-key"}, "stringData": {"keyHash": hash}}))
    .unwrap();
    secrets.patch("e2e-key", &pp, &Patch::Apply(&secret)).await.unwrap();

    let api: Api<LiveStream> = Api::namespaced(client.clone(), &ns);
    let ls: LiveStream = serde_json::from_value(json!({"apiVersion": "onair.dev/v1alpha1", "kind": "LiveStream",
        "metadata": {"name": "e2e"},
        "spec": {"streamId": uuid::Uuid::new_v4(), "userId": uuid::Uuid::new_v4(), "channel": "e2e",
                 "streamKeySecret": {"name": "e2e-key"}, "ladder": {"preset": "Economy"}}}))
    .unwrap();
    api.patch("e2e", &pp, &Patch::Apply(&ls)).await.unwrap();

    let ready = wait_phase(&api, "e2e", Phase::Ready, Duration::from_secs(300)).await;
    let ingest = std::env::var("ONAIR_E2E_INGEST_URL")
        .ok()
        .or_else(|| ready.status.as_ref().and_then(|s| s.ingest_url.clone()))
        .expect("an ingest URL");
    let mut publisher = onair_testkit::publish_test_pattern(&format!("{ingest}/{key}"), 120);
    wait_phase(&api, "e2e", Phase::Live, Duration::from_secs(60)).await;
    // The ingest pod passes the source through; a free stream's transcode pod adds the lowest
    // rendition (the ingest pod hands it its assignment).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let st = api.get("e2e").await.unwrap().status.unwrap_or_default();
        if st.renditions.contains(&"source".to_string()) && st.renditions.contains(&"360p".to_string()) {
            assert_eq!(st.transcoders.len(), 1, "{:?}", st.transcoders);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "source and 360p never both ran: {:?}", st.renditions);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    api.patch("e2e", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": true}}))).await.unwrap();
    let ended = wait_phase(&api, "e2e", Phase::Ended, Duration::from_secs(120)).await;
    assert!(ended.status.unwrap().ended_at.is_some());
    let _ = publisher.kill().await;

    api.delete("e2e", &DeleteParams::default()).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while api.get_opt("e2e").await.unwrap().is_some() || deployments.get_opt("e2e-ingest").await.unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the LiveStream and its media objects are deleted");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
