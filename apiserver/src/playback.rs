//! Playing recorded media: `/vod/{id}/…` and `/clip/{id}/…` answer the playlists, init and
//! media segments and poster of a VOD or clip from the recordings store.
//!
//! The store is never exposed: S3 refuses unsigned reads, and deleted media must stop playing at
//! once. Every request looks its VOD or clip up (a 2 s cache), so a deletion answers 404 on this
//! replica immediately and on every other within 2 s, while the objects are still being swept.
//!
//! A VOD or clip of a channel that restricts its broadcasts (`playback_access` other than
//! `public`) plays only from signed links, `/vod/{id}/t/{token}/…`, the way its live stream
//! does (`crates/playback-token`, over the directory `vod/{id}`); the API hands them out to
//! whoever may play it (`access.rs`).

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use onair_domain::PlaybackAccess;
use onair_recording::object_store::{self, ObjectStoreExt as _};
use onair_recording::{Rel, Root};
use onair_web::HttpError;
use uuid::Uuid;

use crate::error::ApiError;
use crate::recorded::Kind;
use crate::state::AppState;

/// The playback routes: axum's wildcard is not an OpenAPI path, so they are routed here and
/// documented by [`PlaybackDoc`].
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/vod/{vod_id}/{*path}", axum::routing::get(vod_file))
        .route("/clip/{clip_id}/{*path}", axum::routing::get(clip_file))
}

/// The public base of one VOD's or clip's files (`{base}/vod/{id}`).
pub fn base(state: &AppState, kind: Kind, id: Uuid) -> String {
    format!("{}/{}/{id}", state.vod_base_url(), kind.word())
}

/// What a token for a VOD's or clip's files signs: its directory, `vod/{id}`.
fn token_dir(kind: Kind, id: Uuid) -> String {
    format!("{}/{id}", kind.word())
}

/// The directory `viewer` plays a VOD or clip from: its [`base`] when its channel's broadcasts
/// are public; that with a token in it (`…/t/{token}`) otherwise, open for the token lifetime
/// past the media's length (a viewer who starts near the end of it still finishes); `None` when
/// this server has no keys to sign with.
pub fn viewer_dir(
    state: &AppState,
    kind: Kind,
    id: Uuid,
    access: PlaybackAccess,
    viewer: &str,
    length: std::time::Duration,
) -> Option<String> {
    let base = base(state, kind, id);
    if access == PlaybackAccess::Public {
        return Some(base);
    }
    let Some(keys) = state.delivery.keys.as_ref() else {
        tracing::error!(kind = kind.word(), id = %id, "a restricted recording needs signed links and no --playback-keys are set");
        return None;
    };
    let expires = chrono::Utc::now() + state.delivery.token_ttl + length;
    let token = keys.sign_dir(&token_dir(kind, id), viewer, expires.timestamp()).ok()?;
    Some(onair_playback_token::signed_dir(&base, &token))
}

impl AppState {
    /// Where `/vod/…` and `/clip/…` are reached from outside.
    pub fn vod_base_url(&self) -> String {
        match &self.config.vod_base_url {
            Some(base) if !base.is_empty() => base.trim_end_matches('/').to_owned(),
            _ => format!("http://{}", self.config.listen),
        }
    }
}

/// For the OpenAPI document only.
#[derive(utoipa::OpenApi)]
#[openapi(paths(vod_file_doc, clip_file_doc))]
pub struct PlaybackDoc;

/// A VOD's playlists, media and poster, as its master playlist names them (`master.m3u8`,
/// `{rendition}/index.m3u8`, `{rendition}/init/…mp4`, `{rendition}/seg/…m4s`, `thumb.jpg`).
/// 404 for an unknown or deleted VOD or a path that is none of those; 403 for a plain path of a
/// channel that restricts its broadcasts (`playback_token_required`: its VODs play from the signed
/// `/vod/{id}/t/{token}/…` the API hands out) or a signed path whose token is not valid
/// (`invalid_playback_token`); 503 when the store does not answer (retry).
#[utoipa::path(get, path = "/vod/{vod_id}/{path}", tag = "vods",
    params(("vod_id" = Uuid, Path), ("path" = String, Path, description = "the file, e.g. master.m3u8 or 360p/index.m3u8")),
    responses((status = 200, description = "the file", content(("application/vnd.apple.mpegurl"), ("video/mp4"), ("image/jpeg"))),
              (status = 403, body = onair_web::ErrorBody), (status = 404, body = onair_web::ErrorBody),
              (status = 503, body = onair_web::ErrorBody)))]
#[allow(dead_code)]
fn vod_file_doc() {}

/// A clip's playlists and media, as for a VOD (a restricted channel's clips from
/// `/clip/{id}/t/{token}/…`).
#[utoipa::path(get, path = "/clip/{clip_id}/{path}", tag = "clips",
    params(("clip_id" = Uuid, Path), ("path" = String, Path, description = "the file, e.g. master.m3u8")),
    responses((status = 200, description = "the file", content(("application/vnd.apple.mpegurl"), ("video/mp4"), ("image/jpeg"))),
              (status = 403, body = onair_web::ErrorBody), (status = 404, body = onair_web::ErrorBody),
              (status = 503, body = onair_web::ErrorBody)))]
#[allow(dead_code)]
fn clip_file_doc() {}

async fn vod_file(
    State(state): State<AppState>,
    onair_web::Path((id, path)): onair_web::Path<(String, String)>,
) -> Response {
    serve(&state, Kind::Vod, &id, &path).await
}

async fn clip_file(
    State(state): State<AppState>,
    onair_web::Path((id, path)): onair_web::Path<(String, String)>,
) -> Response {
    serve(&state, Kind::Clip, &id, &path).await
}

async fn serve(state: &AppState, kind: Kind, id_text: &str, path: &str) -> Response {
    let not_found = || ApiError::NotFound(if kind == Kind::Vod { "vod file" } else { "clip file" }).into_response();
    let Some(recordings) = state.recordings() else { return not_found() };
    let Ok(id) = Uuid::parse_str(id_text) else { return not_found() };
    let (token, path) = match onair_playback_token::split_in_stream(path) {
        Some((token, rest)) => (Some(token), rest),
        None => (None, path),
    };
    let rel = match Rel::parse(path) {
        Ok(rel @ (Rel::Master | Rel::Thumb | Rel::Playlist(_) | Rel::Init(..) | Rel::Segment(..))) => rel,
        _ => return not_found(),
    };
    let lookup = state.playback_lookups.try_get_with((kind, id), lookup(state, kind, id)).await;
    let (root, access) = match lookup {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::warn!(kind = kind.word(), id = %id, error = %e, "playback lookup failed");
            return unavailable();
        }
    };
    match token {
        // Tokens sign the canonical id: one spelling, one signed path.
        Some(token) => {
            let keys = state.delivery.keys.as_ref();
            let checked = match keys {
                Some(keys) if id.to_string() == id_text => {
                    keys.verify_dir(token, &token_dir(kind, id), chrono::Utc::now().timestamp()).map(drop)
                }
                Some(_) => Err(onair_playback_token::TokenError::Malformed),
                None => Err(onair_playback_token::TokenError::NoKeys),
            };
            if let Err(why) = checked {
                tracing::debug!(kind = kind.word(), id = %id, reason = %why, "playback token refused");
                return HttpError::new(
                    StatusCode::FORBIDDEN,
                    "invalid_playback_token",
                    "this playback link is not valid (or expired)",
                )
                .into_response();
            }
        }
        None if access != PlaybackAccess::Public => {
            return HttpError::new(
                StatusCode::FORBIDDEN,
                "playback_token_required",
                "this channel's broadcasts play only from signed links: ask the API for one",
            )
            .into_response();
        }
        None => {}
    }
    let key = onair_recording::store::path(&root, &rel);
    let got = match recordings.store.get(&key).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return not_found(),
        Err(e) => {
            tracing::warn!(kind = kind.word(), id = %id, key = %key, error = %e, "reading a recorded file failed");
            return unavailable();
        }
    };
    // Short lives, though the bytes never change: a cache in front (a CDN, the browser) serves
    // what it holds without asking, so a deleted VOD or clip plays from it for at most this long.
    // Deleting at once everywhere takes a purge of `/vod/{id}/` at the CDN.
    let cache = match rel {
        Rel::Master | Rel::Playlist(_) => "public, max-age=10",
        _ => "public, max-age=300",
    };
    let len = got.meta.size;
    let mut res = Body::from_stream(got.into_stream()).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(rel.content_type()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    res
}

/// The primary, not the replica: a deletion must be seen at once.
async fn lookup(state: &AppState, kind: Kind, id: Uuid) -> Result<Option<(Root, PlaybackAccess)>, sqlx::Error> {
    Ok(match kind {
        Kind::Vod => sqlx::query!(
            "SELECT v.stream_id, s.playback_access FROM vods v JOIN streams s ON s.id = v.stream_id WHERE v.id = $1",
            id
        )
        .fetch_optional(&state.db)
        .await?
        .map(|r| (Root::Recording(r.stream_id), crate::access::stored(&r.playback_access))),
        Kind::Clip => sqlx::query_scalar!("SELECT playback_access FROM clips WHERE id = $1", id)
            .fetch_optional(&state.db)
            .await?
            .map(|access| (Root::Clip(id), crate::access::stored(&access))),
    })
}

fn unavailable() -> Response {
    HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "the recordings store did not answer; retry")
        .with_retry_after(1)
        .into_response()
}
