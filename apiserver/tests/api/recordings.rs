//! Recordings as the apiserver keeps them (issue 15): which broadcasts get one, the media
//! worker's reports, a finished recording becoming a VOD that plays from `/vod/`, a streamer
//! deleting it while it plays, and retention. The store is a real directory (object_store's
//! LocalFileSystem); the objects are named as the worker names them. Real media through a real
//! S3 server is `transcoder-image/tests/media.rs`.

use onair_apiserver::{Finalized, RecordedCall};
use onair_recording::object_store::path::Path as StorePath;
use onair_recording::object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use onair_recording::{InitName, Rel, Rendition, Root, SegmentName, Session};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{INTERNAL_TOKEN, TestApp, User, spawn_app, spawn_app_with};

/// An app recording into a fresh directory (kept alive with it).
async fn recording_app() -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(&["--recordings-url", dir.path().to_str().unwrap()]).await;
    (app, dir)
}

fn store(app: &TestApp) -> &dyn ObjectStore {
    app.state.recordings().expect("recording is on").store.as_ref()
}

/// Start a stream; (stream id, the stream key when this start made it).
pub(crate) async fn start(app: &TestApp, user: &User) -> (String, String) {
    let body = app.start_stream(user, "Recorded", "games", &[]).await;
    let key = body["ingest"]["stream_key"].as_str().unwrap_or_default().to_owned();
    (body["stream"]["id"].as_str().unwrap().to_owned(), key)
}

/// The media worker's key check, as it calls it (the internal token); asserts 200.
pub(crate) async fn verify_key(app: &TestApp, key: &str) -> Value {
    let res = app
        .client
        .post(format!("{}/internal/stream-keys/verify", app.base))
        .header("x-onair-internal-token", INTERNAL_TOKEN)
        .json(&json!({"stream_key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

async fn report(app: &TestApp, stream: &str, body: Value, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = app.client.post(format!("{}/internal/streams/{stream}/recording", app.base)).json(&body);
    if let Some(t) = token {
        req = req.header("x-onair-internal-token", t);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn state_report(flushed: bool) -> Value {
    json!({"state": "ok", "lagMs": 0, "queuedBytes": 0, "uploadedSegments": 6, "uploadedBytes": 6000,
           "droppedSegments": 0, "flushed": flushed})
}

const T0: u64 = 1_764_000_000_000;

/// What a worker stores for a broadcast of `seconds` one-second segments in two renditions.
pub(crate) async fn record(app: &TestApp, stream: &str, seconds: u64) -> Vec<StorePath> {
    let root = Root::Recording(Uuid::parse_str(stream).unwrap());
    let session = Session(T0);
    let mut keys = Vec::new();
    for r in ["360p", "240p"] {
        let rendition = Rendition::parse(r).unwrap();
        let init = onair_recording::store::path(&root, &Rel::Init(rendition.clone(), InitName { session, version: 0 }));
        keys.push(init);
        for msn in 0..seconds {
            let name = SegmentName {
                pdt_ms: T0 + msn * 1000,
                session,
                msn,
                duration_us: 1_000_000,
                init_version: 0,
                discontinuity: false,
            };
            keys.push(onair_recording::store::path(&root, &Rel::Segment(rendition.clone(), name)));
        }
    }
    for key in &keys {
        store(app).put(key, PutPayload::from(format!("bytes of {key}").into_bytes())).await.unwrap();
    }
    keys
}

/// Objects under `rec/{stream}` (every recording when `stream` is empty).
async fn objects_under(app: &TestApp, stream: &str) -> usize {
    use futures::TryStreamExt as _;
    let prefix = StorePath::from(format!("rec/{stream}"));
    store(app).list(Some(&prefix)).try_collect::<Vec<_>>().await.unwrap().len()
}

/// Stop the stream and have its worker say everything is stored; then make the VOD.
pub(crate) async fn finish(app: &TestApp, user: &User, stream: &str) -> Finalized {
    let (status, body) = app.post(&format!("/api/streams/{stream}/stop"), Some(&user.token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(report(app, stream, state_report(true), Some(INTERNAL_TOKEN)).await.0, StatusCode::NO_CONTENT);
    let done = app.state.finalize_step().await.unwrap();
    let stream = Uuid::parse_str(stream).unwrap();
    done.into_iter().find(|(s, _)| *s == stream).map(|(_, f)| f).expect("the recording was finalized")
}

async fn fetch(app: &TestApp, path: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let res = app.client.get(format!("{}{path}", app.base)).send().await.unwrap();
    let status = res.status();
    let ctype = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    (status, ctype, res.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_recording_channel_gets_a_recording_and_one_that_opted_out_does_not() {
    let (app, _dir) = recording_app().await;
    let ada = app.register("ada").await;
    let (stream, key) = start(&app, &ada).await;
    // The worker learns it from the key check, and the row the reports and the VOD need is there.
    let owner = verify_key(&app, &key).await;
    assert_eq!((&owner["record"], &owner["record_renditions"]), (&json!(true), &json!("all")), "{owner}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM recordings WHERE stream_id = $1::uuid")
        .bind(&stream)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);

    // Keeping only the top and lowest renditions applies from the next broadcast too: a
    // publisher reconnecting to this one still records the whole ladder.
    let (status, body) = app
        .request(Method::PATCH, "/api/users/me", Some(&ada.token), Some(json!({"record_renditions": "middle"})))
        .await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("invalid_body")), "{body}");
    let (status, me) = app
        .request(Method::PATCH, "/api/users/me", Some(&ada.token), Some(json!({"record_renditions": "top_and_lowest"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["record_renditions"], "top_and_lowest");
    assert_eq!(verify_key(&app, &key).await["record_renditions"], "all");
    app.post(&format!("/api/streams/{stream}/stop"), Some(&ada.token), json!({})).await;
    let body = app.start_stream(&ada, "Top and lowest", "games", &[]).await;
    let owner = verify_key(&app, &key).await;
    assert_eq!((&owner["record"], &owner["record_renditions"]), (&json!(true), &json!("top_and_lowest")), "{owner}");
    app.post(&format!("/api/streams/{}/stop", body["stream"]["id"].as_str().unwrap()), Some(&ada.token), json!({}))
        .await;

    // Turning it off applies to the next broadcast.
    let (status, me) =
        app.request(Method::PATCH, "/api/users/me", Some(&ada.token), Some(json!({"record_broadcasts": false}))).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["record_broadcasts"], false);
    let body = app.start_stream(&ada, "Unrecorded", "games", &[]).await;
    let second = body["stream"]["id"].as_str().unwrap();
    assert_eq!(verify_key(&app, &key).await["record"], false);
    // Its worker's reports have nowhere to go: 404, and it stops sending them.
    assert_eq!(report(&app, second, state_report(false), Some(INTERNAL_TOKEN)).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_store_nothing_is_recorded() {
    let app = spawn_app().await;
    let ada = app.register("ada").await;
    let (stream, key) = start(&app, &ada).await;
    assert_eq!(verify_key(&app, &key).await["record"], false);
    assert_eq!(app.report_status(&stream, "live").await, StatusCode::NO_CONTENT);
    let (_, view) = app.get(&format!("/api/streams/{stream}"), None).await;
    assert!(view["playback_url"].is_string() && view.get("dvr_url").is_none(), "nothing to rewind: {view}");
    assert_eq!(report(&app, &stream, state_report(false), Some(INTERNAL_TOKEN)).await.0, StatusCode::NOT_FOUND);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM recordings").fetch_one(&app.pool).await.unwrap();
    assert_eq!(rows, 0, "no store, no recording to finish");
}

#[tokio::test]
async fn the_workers_report_needs_the_internal_token_and_a_valid_body() {
    let (app, _dir) = recording_app().await;
    let ada = app.register("ada").await;
    let (stream, _) = start(&app, &ada).await;
    assert_eq!(report(&app, &stream, state_report(false), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(report(&app, &stream, state_report(false), Some("wrong")).await.0, StatusCode::UNAUTHORIZED);
    for bad in [
        json!({"state": "sideways", "lagMs": 0, "queuedBytes": 0, "uploadedSegments": 0, "uploadedBytes": 0, "droppedSegments": 0, "flushed": false}),
        json!({"state": "ok", "lagMs": -1, "queuedBytes": 0, "uploadedSegments": 0, "uploadedBytes": 0, "droppedSegments": 0, "flushed": false}),
        json!({"state": "ok", "lagMs": u64::MAX, "queuedBytes": 0, "uploadedSegments": 0, "uploadedBytes": 0, "droppedSegments": 0, "flushed": false}),
        json!({"state": "ok"}),
    ] {
        let (status, body) = report(&app, &stream, bad.clone(), Some(INTERNAL_TOKEN)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    assert_eq!(
        report(&app, &Uuid::new_v4().to_string(), state_report(false), Some(INTERNAL_TOKEN)).await.0,
        StatusCode::NOT_FOUND
    );
    let behind = json!({"state": "behind", "lagMs": 12_000, "queuedBytes": 9, "uploadedSegments": 4,
                        "uploadedBytes": 4000, "droppedSegments": 0, "flushed": false});
    assert_eq!(report(&app, &stream, behind, Some(INTERNAL_TOKEN)).await.0, StatusCode::NO_CONTENT);
    let row: (String, i64, bool) = sqlx::query_as(
        "SELECT upload_state, lag_ms, flushed_at IS NOT NULL FROM recordings WHERE stream_id = $1::uuid",
    )
    .bind(&stream)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(row, ("behind".to_owned(), 12_000, false));
}

#[tokio::test]
async fn a_recording_is_made_a_vod_only_once_stored_or_after_the_grace() {
    let (app, _dir) = recording_app().await;
    let ada = app.register("ada").await;
    let (stream, _) = start(&app, &ada).await;
    record(&app, &stream, 3).await;
    // Live: not yet.
    assert!(app.state.finalize_step().await.unwrap().is_empty());
    app.post(&format!("/api/streams/{stream}/stop"), Some(&ada.token), json!({})).await;
    // Over, but the worker may still be storing its last segments.
    assert!(app.state.finalize_step().await.unwrap().is_empty());
    // Its worker went quiet for longer than the grace (the pod died): what is there is all.
    sqlx::query("UPDATE streams SET ended_at = now() - interval '1 hour' WHERE id = $1::uuid")
        .bind(&stream)
        .execute(&app.pool)
        .await
        .unwrap();
    let done = app.state.finalize_step().await.unwrap();
    assert!(matches!(done.as_slice(), [(_, Finalized::Ready(_))]), "{done:?}");
    // Done once.
    assert!(app.state.finalize_step().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_finished_recording_plays_as_a_vod_until_its_streamer_deletes_it() {
    let (app, _dir) = recording_app().await;
    let ada = app.register("ada").await;
    let eve = app.register("eve").await;
    let (stream, _) = start(&app, &ada).await;
    let keys = record(&app, &stream, 6).await;
    let Finalized::Ready(vod) = finish(&app, &ada, &stream).await else { panic!("no VOD") };

    let (status, view) = app.get(&format!("/api/vods/{vod}"), None).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["stream_id"], stream.as_str());
    assert_eq!(view["duration_secs"], 6.0);
    assert_eq!(view["renditions"].as_array().unwrap().len(), 2);
    assert_eq!(view["streamer"]["username"], "ada");
    assert_eq!(view["title"], "Recorded");
    let playback = view["playback_url"].as_str().unwrap();
    assert_eq!(playback, format!("{}/vod/{vod}/master.m3u8", app.base));
    let (status, page) = app.get(&format!("/api/users/{}/vods", ada.id), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"][0]["id"], vod.to_string());
    assert_eq!(app.get(&format!("/api/users/{}/vods", eve.id), None).await.1["items"], json!([]));

    // It plays from /vod: the master, each rendition's playlist, its segments, byte for byte.
    let (status, ctype, master) = fetch(&app, &format!("/vod/{vod}/master.m3u8")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ctype.as_deref(), Some("application/vnd.apple.mpegurl"));
    let master = String::from_utf8(master).unwrap();
    assert!(master.contains("360p/index.m3u8") && master.contains("240p/index.m3u8"), "{master}");
    let (_, _, media) = fetch(&app, &format!("/vod/{vod}/360p/index.m3u8")).await;
    let media = String::from_utf8(media).unwrap();
    assert!(media.contains("#EXT-X-PLAYLIST-TYPE:VOD") && media.contains("#EXT-X-ENDLIST"), "{media}");
    let segment = media.lines().find(|l| l.starts_with("seg/")).unwrap();
    let (status, ctype, bytes) = fetch(&app, &format!("/vod/{vod}/360p/{segment}")).await;
    assert_eq!((status, ctype.as_deref()), (StatusCode::OK, Some("video/mp4")));
    let key = keys.iter().find(|k| k.as_ref().ends_with(segment)).unwrap();
    assert_eq!(bytes, format!("bytes of {key}").into_bytes());
    // Only what a VOD is made of, and nothing outside it.
    for path in ["../master.m3u8", "360p/../../x", "360p/seg/x.m4s", "nothing", "360p/init/s1_0.mp4"] {
        assert_eq!(fetch(&app, &format!("/vod/{vod}/{path}")).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(fetch(&app, &format!("/vod/{}/master.m3u8", Uuid::new_v4())).await.0, StatusCode::NOT_FOUND);
    assert_eq!(fetch(&app, "/vod/not-a-uuid/master.m3u8").await.0, StatusCode::NOT_FOUND);

    // Only its channel's owner (or an admin) deletes it.
    let delete = |token: Option<String>| {
        let app = &app;
        async move { app.request(Method::DELETE, &format!("/api/vods/{vod}"), token.as_deref(), None).await }
    };
    assert_eq!(delete(None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(delete(Some(eve.token.clone())).await.0, StatusCode::FORBIDDEN);
    assert_eq!(delete(Some(ada.token.clone())).await.0, StatusCode::NO_CONTENT);
    // A viewer halfway through gets 404 for the next file at once, while the objects are still
    // there (the sweep runs in the background).
    assert_eq!(fetch(&app, &format!("/vod/{vod}/360p/{segment}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/api/vods/{vod}"), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(delete(Some(ada.token.clone())).await.0, StatusCode::NOT_FOUND);
    assert!(objects_under(&app, &stream).await > 0);

    // The sweep deletes the objects, then once more after the grace for late uploads.
    assert_eq!(app.state.sweep_step().await.unwrap(), keys.len() as u64 + 3);
    assert_eq!(objects_under(&app, &stream).await, 0);
    let left: i16 = sqlx::query_scalar("SELECT sweeps_left FROM storage_deletions WHERE prefix = $1")
        .bind(format!("rec/{stream}"))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 1);
    assert_eq!(app.state.sweep_step().await.unwrap(), 0, "not due before the grace");
    sqlx::query("UPDATE storage_deletions SET not_before = now()").execute(&app.pool).await.unwrap();
    assert_eq!(app.state.sweep_step().await.unwrap(), 0);
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM storage_deletions").fetch_one(&app.pool).await.unwrap();
    assert_eq!(queued, 0);
}

#[tokio::test]
async fn retention_deletes_expired_vods_with_their_objects_and_keeps_the_rest() {
    let (app, _dir) = recording_app().await;
    let ada = app.register("ada").await;
    let (old, _) = start(&app, &ada).await;
    record(&app, &old, 2).await;
    let Finalized::Ready(old_vod) = finish(&app, &ada, &old).await else { panic!("no VOD") };
    let (new, _) = start(&app, &ada).await;
    record(&app, &new, 2).await;
    let Finalized::Ready(new_vod) = finish(&app, &ada, &new).await else { panic!("no VOD") };

    // Kept 30 days after the broadcast ended (free tier).
    let days: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM v.expires_at - s.ended_at)::float8 / 86400 FROM vods v JOIN streams s ON s.id = v.stream_id WHERE v.id = $1",
    )
    .bind(new_vod)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!((days - 30.0).abs() < 0.001, "{days}");

    sqlx::query("UPDATE vods SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(old_vod)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.state.expire_step().await.unwrap(), 1);
    assert_eq!(app.get(&format!("/api/vods/{old_vod}"), None).await.0, StatusCode::NOT_FOUND);
    let recordings: i64 = sqlx::query_scalar("SELECT count(*) FROM recordings WHERE stream_id = $1::uuid")
        .bind(&old)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(recordings, 0);
    assert!(app.state.sweep_step().await.unwrap() > 0);
    assert_eq!(objects_under(&app, &old).await, 0);
    // The other one is untouched, rows and objects.
    assert_eq!(app.state.expire_step().await.unwrap(), 0);
    assert_eq!(app.get(&format!("/api/vods/{new_vod}"), None).await.0, StatusCode::OK);
    assert!(objects_under(&app, &new).await > 0);
    assert_eq!(fetch(&app, &format!("/vod/{new_vod}/master.m3u8")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_broadcast_that_recorded_nothing_leaves_no_vod_and_no_row() {
    let (app, _dir) = recording_app().await;
    let ada = app.register("ada").await;
    let (stream, _) = start(&app, &ada).await;
    assert_eq!(finish(&app, &ada, &stream).await, Finalized::Empty);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM recordings").fetch_one(&app.pool).await.unwrap();
    assert_eq!(rows, 0);
    assert_eq!(app.get(&format!("/api/users/{}/vods", ada.id), None).await.1["items"], json!([]));
}

async fn clip(app: &TestApp, user: &User, path: &str, body: Value) -> (StatusCode, Value) {
    app.post(path, Some(&user.token), body).await
}

async fn objects_of_clip(app: &TestApp, clip: &str) -> usize {
    use futures::TryStreamExt as _;
    let prefix = StorePath::from(format!("clips/{clip}"));
    store(app).list(Some(&prefix)).try_collect::<Vec<_>>().await.unwrap().len()
}

#[tokio::test]
async fn a_clip_of_a_vod_is_cut_on_segments_copied_and_outlives_the_vod() {
    let (app, _dir) = recording_app().await;
    let ada = app.register("ada").await;
    let eve = app.register("eve").await;
    let mallory = app.register("mallory").await;
    let (stream, _) = start(&app, &ada).await;
    let keys = record(&app, &stream, 10).await;
    let Finalized::Ready(vod) = finish(&app, &ada, &stream).await else { panic!("no VOD") };
    let path = format!("/api/vods/{vod}/clips");

    // Bad requests first: each a 400 with the field named, nothing cut.
    for bad in [
        json!({"title": "x", "start_secs": 1.0, "seconds": 4}),
        json!({"title": "x", "start_secs": 1.0, "seconds": 61}),
        json!({"title": "x", "start_secs": -1.0, "seconds": 5}),
        json!({"title": "x", "start_secs": 10.0, "seconds": 5}),
        json!({"title": " ", "start_secs": 1.0, "seconds": 5}),
        json!({"title": "x", "seconds": 5}),
    ] {
        let (status, body) = clip(&app, &eve, &path, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {body}");
    }
    let (status, _) = app.post(&path, None, json!({"title": "x", "start_secs": 1.0, "seconds": 5})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let unknown = format!("/api/vods/{}/clips", Uuid::new_v4());
    assert_eq!(
        clip(&app, &eve, &unknown, json!({"title": "x", "start_secs": 1.0, "seconds": 5})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(objects_under(&app, "").await, keys.len() + 3, "nothing but the VOD is stored");

    // 2.5 s for 5 s: whole segments, 2 s to 8 s, in both renditions.
    let (status, made) = clip(&app, &eve, &path, json!({"title": "The jump", "start_secs": 2.5, "seconds": 5})).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    assert_eq!((made["offset_secs"].as_f64(), made["duration_secs"].as_f64()), (Some(2.0), Some(6.0)), "{made}");
    assert_eq!(made["vod_id"], vod.to_string());
    assert_eq!(made["creator_id"], eve.id.as_str());
    assert_eq!(made["channel"]["username"], "ada");
    assert_eq!(made["playback_url"], format!("{}/clip/{id}/master.m3u8", app.base));
    assert_eq!(app.get(&format!("/api/clips/{id}"), None).await.1["title"], "The jump");
    assert_eq!(app.get(&format!("/api/users/{}/clips", ada.id), None).await.1["items"][0]["id"], id.as_str());
    // Its own objects: 6 segments and an init per rendition, and the three playlists.
    assert_eq!(objects_of_clip(&app, &id).await, 2 * (6 + 1) + 3);
    let (_, _, media) = fetch(&app, &format!("/clip/{id}/240p/index.m3u8")).await;
    let media = String::from_utf8(media).unwrap();
    let segments: Vec<&str> = media.lines().filter(|l| l.starts_with("seg/")).collect();
    assert_eq!(segments.len(), 6, "{media}");
    assert!(media.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{media}");

    // The VOD goes, objects and all; the clip plays on, byte for byte.
    assert_eq!(
        app.request(Method::DELETE, &format!("/api/vods/{vod}"), Some(&ada.token), None).await.0,
        StatusCode::NO_CONTENT
    );
    app.state.sweep_step().await.unwrap();
    assert_eq!(objects_under(&app, &stream).await, 0);
    let (status, _, bytes) = fetch(&app, &format!("/clip/{id}/240p/{}", segments[0])).await;
    assert_eq!(status, StatusCode::OK);
    let source = keys.iter().find(|k| k.as_ref().ends_with(segments[0]) && k.as_ref().contains("/240p/")).unwrap();
    assert_eq!(bytes, format!("bytes of {source}").into_bytes());
    assert_eq!(app.get(&format!("/api/clips/{id}"), None).await.1["vod_id"], Value::Null);

    // Deleting: not a stranger; its maker (or the channel's owner) can.
    let clip_path = format!("/api/clips/{id}");
    let delete = |user: &User| {
        let token = user.token.clone();
        let (app, path) = (&app, &clip_path);
        async move { app.request(Method::DELETE, path, Some(&token), None).await }
    };
    assert_eq!(delete(&mallory).await.0, StatusCode::FORBIDDEN);
    assert_eq!(delete(&eve).await.0, StatusCode::NO_CONTENT);
    assert_eq!(fetch(&app, &format!("/clip/{id}/master.m3u8")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(delete(&ada).await.0, StatusCode::NOT_FOUND);
    app.state.sweep_step().await.unwrap();
    assert_eq!(objects_of_clip(&app, &id).await, 0);
}

#[tokio::test]
async fn a_live_clip_takes_the_last_seconds_and_is_refused_when_it_cannot_be_had() {
    let (app, _dir) = recording_app().await;
    let ada = app.register("ada").await;
    let eve = app.register("eve").await;
    let (stream, _) = start(&app, &ada).await;
    let path = format!("/api/streams/{stream}/clips");
    let thirty = json!({"title": "Just now", "seconds": 30});
    // Not live yet.
    let (status, body) = clip(&app, &eve, &path, thirty.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("stream_not_live")), "{body}");
    assert_eq!(app.report_status(&stream, "live").await, StatusCode::NO_CONTENT);
    // Live and recorded: it can be rewound, from a window beside the live playlist.
    let (_, view) = app.get(&format!("/api/streams/{stream}"), None).await;
    let live = view["playback_url"].as_str().unwrap();
    assert_eq!(view["dvr_url"], live.replace("/master.m3u8", "/dvr/master.m3u8"), "{view}");
    record(&app, &stream, 40).await;
    for seconds in [29, 61] {
        let (status, body) = clip(&app, &eve, &path, json!({"title": "x", "seconds": seconds})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{seconds} → {body}");
    }
    // The recording trails the stream by more than the clip: the newest seconds are not stored.
    let behind = json!({"state": "behind", "lagMs": 45_000, "queuedBytes": 9, "uploadedSegments": 4,
                        "uploadedBytes": 4000, "droppedSegments": 0, "flushed": false});
    report(&app, &stream, behind, Some(INTERNAL_TOKEN)).await;
    let (status, body) = clip(&app, &eve, &path, thirty.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("recording_behind")), "{body}");
    report(&app, &stream, state_report(false), Some(INTERNAL_TOKEN)).await;

    let (status, made) = clip(&app, &eve, &path, thirty).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!((made["offset_secs"].as_f64(), made["duration_secs"].as_f64()), (Some(10.0), Some(30.0)), "{made}");
    assert_eq!(made["vod_id"], Value::Null);
    assert_eq!(made["stream_id"], stream.as_str());
    assert_eq!(fetch(&app, &format!("/clip/{}/master.m3u8", made["id"].as_str().unwrap())).await.0, StatusCode::OK);

    // A channel that does not record has nothing to clip.
    let (other, _) = start(&app, &eve).await;
    sqlx::query("DELETE FROM recordings WHERE stream_id = $1::uuid").bind(&other).execute(&app.pool).await.unwrap();
    assert_eq!(app.report_status(&other, "live").await, StatusCode::NO_CONTENT);
    let (status, body) =
        clip(&app, &ada, &format!("/api/streams/{other}/clips"), json!({"title": "x", "seconds": 30})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("not_recorded")), "{body}");
}

#[tokio::test]
async fn clips_per_user_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let app =
        spawn_app_with(&["--recordings-url", dir.path().to_str().unwrap(), "--clips-per-user-per-hour", "2"]).await;
    let ada = app.register("ada").await;
    let eve = app.register("eve").await;
    let (stream, _) = start(&app, &ada).await;
    record(&app, &stream, 10).await;
    let Finalized::Ready(vod) = finish(&app, &ada, &stream).await else { panic!("no VOD") };
    let path = format!("/api/vods/{vod}/clips");
    let body = json!({"title": "again", "start_secs": 0.0, "seconds": 5});
    for _ in 0..2 {
        assert_eq!(clip(&app, &eve, &path, body.clone()).await.0, StatusCode::CREATED);
    }
    let (status, refused) = clip(&app, &eve, &path, body.clone()).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")));
    // Someone else's allowance is their own.
    assert_eq!(clip(&app, &ada, &path, body).await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn deleting_an_account_deletes_its_recordings_and_keeps_its_clips_of_others() {
    let (app, _dir) = recording_app().await;
    let ada = app.register("ada").await;
    let eve = app.register("eve").await;
    // Ada's broadcast, its VOD and a clip of it; Eve's broadcast with a clip Ada made.
    let (ada_stream, _) = start(&app, &ada).await;
    record(&app, &ada_stream, 10).await;
    let Finalized::Ready(ada_vod) = finish(&app, &ada, &ada_stream).await else { panic!("no VOD") };
    let body = json!({"title": "mine", "start_secs": 0.0, "seconds": 5});
    let (_, own_clip) = clip(&app, &ada, &format!("/api/vods/{ada_vod}/clips"), body.clone()).await;
    let (eve_stream, _) = start(&app, &eve).await;
    record(&app, &eve_stream, 10).await;
    let Finalized::Ready(eve_vod) = finish(&app, &eve, &eve_stream).await else { panic!("no VOD") };
    let (_, their_clip) = clip(&app, &ada, &format!("/api/vods/{eve_vod}/clips"), body).await;
    // And a broadcast on air.
    let (live, _) = start(&app, &ada).await;
    assert_eq!(app.report_status(&live, "live").await, StatusCode::NO_CONTENT);

    // Only with the password.
    let me = "/api/users/me";
    let right = json!({"password": "correct horse battery"});
    assert_eq!(app.request(Method::DELETE, me, None, Some(right.clone())).await.0, StatusCode::UNAUTHORIZED);
    let wrong = json!({"password": "wrong"});
    assert_eq!(app.request(Method::DELETE, me, Some(&ada.token), Some(wrong)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.request(Method::DELETE, me, Some(&ada.token), Some(json!({}))).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.request(Method::DELETE, me, Some(&ada.token), Some(right)).await.0, StatusCode::NO_CONTENT);

    // Her media stopped, her rows went, her objects are queued and swept.
    let stopped =
        app.orchestrator.calls().into_iter().any(|c| matches!(c, RecordedCall::Stop(s) if s.to_string() == live));
    assert!(stopped, "the live stream's media was stopped");
    assert_eq!(app.get(&format!("/api/vods/{ada_vod}"), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/api/clips/{}", own_clip["id"].as_str().unwrap()), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(fetch(&app, &format!("/vod/{ada_vod}/master.m3u8")).await.0, StatusCode::NOT_FOUND);
    app.state.sweep_step().await.unwrap();
    assert_eq!(objects_under(&app, &ada_stream).await, 0);
    assert_eq!(objects_of_clip(&app, own_clip["id"].as_str().unwrap()).await, 0);
    // Eve's VOD and the clip Ada made of it stay, without a maker.
    assert_eq!(app.get(&format!("/api/vods/{eve_vod}"), None).await.0, StatusCode::OK);
    let (status, kept) = app.get(&format!("/api/clips/{}", their_clip["id"].as_str().unwrap()), None).await;
    assert_eq!((status, &kept["creator_id"]), (StatusCode::OK, &Value::Null), "{kept}");
    assert_eq!(fetch(&app, &format!("/clip/{}/master.m3u8", kept["id"].as_str().unwrap())).await.0, StatusCode::OK);
    // The token of a deleted account opens nothing.
    assert_eq!(app.get("/api/users/me", Some(&ada.token)).await.0, StatusCode::NOT_FOUND);
}

/// A followers-only channel's recordings keep its rule: VODs and clips are listed for anyone,
/// play (from signed links made out to the caller) for its followers and streamer only, and
/// only they may cut clips; the plain `/vod/` and `/clip/` paths are refused.
#[tokio::test]
async fn a_followers_only_channels_vods_and_clips_play_for_its_followers_only() {
    let dir = tempfile::tempdir().unwrap();
    let app =
        spawn_app_with(&["--recordings-url", dir.path().to_str().unwrap(), "--playback-keys", crate::delivery::KEYS])
            .await;
    let ada = app.register("ada").await;
    let fan = app.register("fan").await;
    let eve = app.register("eve").await;
    let (status, _) = app
        .request(Method::PATCH, "/api/users/me", Some(&ada.token), Some(json!({"playback_access": "followers"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.request(Method::PUT, &format!("/api/users/{}/follow", ada.id), Some(&fan.token), None).await;
    assert!(status.is_success(), "{status}");
    let (stream, _) = start(&app, &ada).await;
    assert_eq!(app.report_status(&stream, "live").await, StatusCode::NO_CONTENT);
    record(&app, &stream, 40).await;

    // Clipping the live stream: its followers, not others.
    let live = format!("/api/streams/{stream}/clips");
    let thirty = json!({"title": "Just now", "seconds": 30});
    let (status, body) = clip(&app, &eve, &live, thirty.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{body}");
    let (status, made) = clip(&app, &fan, &live, thirty).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let clip_id = made["id"].as_str().unwrap().to_owned();
    assert_eq!(made["playback_access"], "followers");
    let Finalized::Ready(vod) = finish(&app, &ada, &stream).await else { panic!("no VOD") };

    // Listed for everyone; playable by followers and the streamer only.
    let callers =
        [("nobody", None, false), ("eve", Some(&eve), false), ("fan", Some(&fan), true), ("ada", Some(&ada), true)];
    for (name, who, plays) in callers {
        let token = who.map(|u| u.token.as_str());
        let (status, v) = app.get(&format!("/api/vods/{vod}"), token).await;
        assert_eq!(status, StatusCode::OK, "{name}: {v}");
        assert_eq!(v["playback_access"], "followers", "{name}");
        assert_eq!(v["playback_url"].is_string(), plays, "{name}: {v}");
        let (_, page) = app.get(&format!("/api/users/{}/vods", ada.id), token).await;
        assert_eq!(page["items"][0]["playback_url"].is_string(), plays, "{name}: {page}");
        let (_, c) = app.get(&format!("/api/clips/{clip_id}"), token).await;
        assert_eq!(
            (c["playback_access"].as_str(), c["playback_url"].is_string()),
            (Some("followers"), plays),
            "{name}"
        );
        let (_, page) = app.get(&format!("/api/users/{}/clips", ada.id), token).await;
        assert_eq!(page["items"][0]["playback_url"].is_string(), plays, "{name}: {page}");
    }

    // The plain paths are refused; the fan's signed link plays, relative URIs and all.
    let code =
        |body: &[u8]| serde_json::from_slice::<Value>(body).unwrap()["error"]["code"].as_str().unwrap().to_owned();
    let (status, _, body) = fetch(&app, &format!("/vod/{vod}/master.m3u8")).await;
    assert_eq!((status, code(&body).as_str()), (StatusCode::FORBIDDEN, "playback_token_required"));
    let (status, _, body) = fetch(&app, &format!("/clip/{clip_id}/master.m3u8")).await;
    assert_eq!((status, code(&body).as_str()), (StatusCode::FORBIDDEN, "playback_token_required"));
    let url =
        app.get(&format!("/api/vods/{vod}"), Some(&fan.token)).await.1["playback_url"].as_str().unwrap().to_owned();
    let signed_dir = url.strip_prefix(&app.base).unwrap().strip_suffix("/master.m3u8").unwrap().to_owned();
    assert!(signed_dir.starts_with(&format!("/vod/{vod}/t/")), "{url}");
    let (status, _, master) = fetch(&app, &format!("{signed_dir}/master.m3u8")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8(master).unwrap().contains("360p/index.m3u8"));
    let (_, _, media) = fetch(&app, &format!("{signed_dir}/360p/index.m3u8")).await;
    let media = String::from_utf8(media).unwrap();
    let segment = media.lines().find(|l| l.starts_with("seg/")).unwrap();
    assert_eq!(fetch(&app, &format!("{signed_dir}/360p/{segment}")).await.0, StatusCode::OK);
    // The token opens that VOD's directory only: not the clip's, not another spelling, not forged
    // (its signature's first character changed: a well-formed token that does not verify).
    let token = signed_dir.rsplit('/').next().unwrap();
    let forged = |token: &str| {
        let (claims, signature) = token.rsplit_once('.').unwrap();
        let first = if signature.starts_with('A') { 'B' } else { 'A' };
        format!("{claims}.{first}{}", &signature[1..])
    };
    let elsewhere = [
        format!("/clip/{clip_id}/t/{token}/master.m3u8"),
        format!("/vod/{}/t/{token}/master.m3u8", vod.to_string().to_uppercase()),
        format!("/vod/{vod}/t/{}/master.m3u8", forged(token)),
        format!("/vod/{vod}/t/not-a-token/master.m3u8"),
    ];
    for path in elsewhere {
        let (status, _, body) = fetch(&app, &path).await;
        assert_eq!((status, code(&body).as_str()), (StatusCode::FORBIDDEN, "invalid_playback_token"), "{path}");
    }
    let clip_url = app.get(&format!("/api/clips/{clip_id}"), Some(&ada.token)).await.1["playback_url"].clone();
    let clip_path = clip_url.as_str().unwrap().strip_prefix(&app.base).unwrap().to_owned();
    assert_eq!(fetch(&app, &clip_path).await.0, StatusCode::OK, "the streamer plays the fan's clip");

    // Clipping the VOD: the same rule.
    let from_vod = format!("/api/vods/{vod}/clips");
    let range = json!({"title": "Earlier", "start_secs": 1.0, "seconds": 10});
    assert_eq!(clip(&app, &eve, &from_vod, range.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(clip(&app, &fan, &from_vod, range).await.0, StatusCode::CREATED);
}
