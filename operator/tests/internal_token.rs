//! The chart's pre-install hook, `onair internal-token`, against the in-memory API server: it
//! creates the token Secret once, keeps it on every later run (an upgrade, a GitOps sync), and
//! leaves a Secret that is not its own alone.

#![allow(clippy::unwrap_used)]

use onair_operator::internal_token::{KEY, Outcome, ensure};
use onair_testkit::kube_fake::FakeApi;
use serde_json::json;

const PATH: &str = "/api/v1/namespaces/default/secrets/onair-internal";

#[tokio::test]
async fn the_token_is_made_once_and_never_changed() {
    let fake = FakeApi::new();
    assert_eq!(ensure(fake.client(), "default", "onair-internal").await.unwrap(), Outcome::Created);
    let first = fake.get(PATH).unwrap();
    let token = first["data"][KEY].as_str().unwrap().to_string();
    // base64 of 48 alphanumerics.
    assert_eq!(token.len(), 64, "{token}");
    for _ in 0..3 {
        assert_eq!(ensure(fake.client(), "default", "onair-internal").await.unwrap(), Outcome::Kept);
    }
    assert_eq!(fake.get(PATH).unwrap()["data"][KEY], token.as_str(), "an upgrade never rotates the token");

    // Another install gets another token.
    let other = FakeApi::new();
    ensure(other.client(), "default", "onair-internal").await.unwrap();
    assert_ne!(other.get(PATH).unwrap()["data"][KEY], token.as_str());
}

#[tokio::test]
async fn a_secret_without_the_key_is_not_taken_over() {
    let fake = FakeApi::new();
    fake.put(
        PATH,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "onair-internal", "namespace": "default"},
               "data": {"password": "aHVudGVyMg=="}}),
    );
    let err = ensure(fake.client(), "default", "onair-internal").await.unwrap_err();
    assert!(err.to_string().contains("without the key internal-token"), "{err}");
    assert_eq!(fake.get(PATH).unwrap()["data"], json!({"password": "aHVudGVyMg=="}), "left as it was");
}
