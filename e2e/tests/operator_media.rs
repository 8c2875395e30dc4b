//! The operator's media client against a real ingest worker: the routes and bodies the
//! operator sends are the ones the worker serves, and an assignment reaches a transcode pod's
//! report. (No cluster, no ffmpeg: the HTTP contract between the two.)

#![allow(clippy::unwrap_used)]

use onair_operator::{HttpMediaApi, MediaApi, OperatorConfig};
use onair_transcoder_image::{MediaConfig, MediaWorker};
use serde_json::{Value, json};

#[tokio::test]
async fn the_operator_reads_an_ingest_pod_and_hands_its_transcoders_their_renditions() {
    onair_telemetry::init_test_tracing();
    let dir = tempfile::tempdir().unwrap();
    let stream = uuid::Uuid::new_v4();
    let worker = MediaWorker::build(
        MediaConfig::from_args([
            "--role",
            "ingest",
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--internal-token",
            "contract",
            "--media-dir",
            dir.path().to_str().unwrap(),
            "--stream-id",
            &stream.to_string(),
            "--redis-prefix",
            &onair_testkit::unique_prefix(),
        ])
        .unwrap(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", worker.http_addr());
    tokio::spawn(worker.run_until_stopped(std::future::pending()));

    let config = OperatorConfig::from_args(["--internal-token", "contract"]).unwrap();
    let media = HttpMediaApi::new(&config);
    let idle = media.state(&base, stream).await.unwrap();
    assert!(!idle.publishing && idle.transcoders.is_empty(), "{idle:?}");

    // A transcode pod reports before the operator said anything: no assignment yet.
    let http = onair_http::client();
    let report = |part: &str| {
        http.post(format!("{base}/internal/streams/{stream}/transcoders/{part}"))
            .header("x-onair-internal-token", "contract")
            .json(&json!({"renditions": [], "encodeSpeed": null}))
            .send()
    };
    assert_eq!(report("t1").await.unwrap().status(), 204);

    let parts = [("t0".to_string(), vec!["720p".to_string()]), ("t1".to_string(), vec!["480p".to_string()])];
    media.assign(&base, stream, &parts.into_iter().collect()).await.unwrap();
    let answer: Value = report("t1").await.unwrap().json().await.unwrap();
    assert_eq!(answer, json!({"renditions": ["480p"]}), "the report's answer carries the part's renditions");

    let seen = media.state(&base, stream).await.unwrap();
    assert_eq!(seen.transcoders.iter().map(|t| t.part.as_str()).collect::<Vec<_>>(), ["t1"]);
    let wrong = OperatorConfig::from_args(["--internal-token", "not-it"]).unwrap();
    assert!(HttpMediaApi::new(&wrong).state(&base, stream).await.is_err(), "the internal token is checked");
}
