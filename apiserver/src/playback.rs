//! Playing recorded media: `/vod/{id}/…` and `/clip/{id}/…` answer the playlists, init and
//! media segments and poster of a VOD or clip from the recordings store.
//!
//! The store is never exposed: S3 refuses unsigned reads, and deleted media must stop playing at
//! once. Every request looks its VOD or clip up (a 2 s cache), so a deletion answers 404 on this
//! replica immediately and on every other within 2 s, while the objects are still being swept.

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
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
/// 404 for an unknown or deleted VOD or a path that is none of those; 503 when the store does
/// not answer (retry).
#[utoipa::path(get, path = "/vod/{vod_id}/{path}", tag = "vods",
    params(("vod_id" = Uuid, Path), ("path" = String, Path, description = "the file, e.g. master.m3u8 or 360p/index.m3u8")),
    responses((status = 200, description = "the file", content(("application/vnd.apple.mpegurl"), ("video/mp4"), ("image/jpeg"))),
              (status = 404, body = onair_web::ErrorBody), (status = 503, body = onair_web::ErrorBody)))]
#[allow(dead_code)]
fn vod_file_doc() {}

/// A clip's playlists and media, as for a VOD.
#[utoipa::path(get, path = "/clip/{clip_id}/{path}", tag = "clips",
    params(("clip_id" = Uuid, Path), ("path" = String, Path, description = "the file, e.g. master.m3u8")),
    responses((status = 200, description = "the file", content(("application/vnd.apple.mpegurl"), ("video/mp4"), ("image/jpeg"))),
              (status = 404, body = onair_web::ErrorBody), (status = 503, body = onair_web::ErrorBody)))]
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

async fn serve(state: &AppState, kind: Kind, id: &str, path: &str) -> Response {
    let not_found = || ApiError::NotFound(if kind == Kind::Vod { "vod file" } else { "clip file" }).into_response();
    let Some(recordings) = state.recordings() else { return not_found() };
    let Ok(id) = Uuid::parse_str(id) else { return not_found() };
    let rel = match Rel::parse(path) {
        Ok(rel @ (Rel::Master | Rel::Thumb | Rel::Playlist(_) | Rel::Init(..) | Rel::Segment(..))) => rel,
        _ => return not_found(),
    };
    let lookup = state.playback_lookups.try_get_with((kind, id), lookup(state, kind, id)).await;
    let root = match lookup {
        Ok(Some(root)) => root,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::warn!(id = %id, error = %e, "playback lookup failed");
            return unavailable();
        }
    };
    let key = onair_recording::store::path(&root, &rel);
    let got = match recordings.store.get(&key).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return not_found(),
        Err(e) => {
            tracing::warn!(id = %id, key = %key, error = %e, "reading a recorded file failed");
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
async fn lookup(state: &AppState, kind: Kind, id: Uuid) -> Result<Option<Root>, sqlx::Error> {
    Ok(match kind {
        Kind::Vod => sqlx::query_scalar!("SELECT stream_id FROM vods WHERE id = $1", id)
            .fetch_optional(&state.db)
            .await?
            .map(Root::Recording),
        Kind::Clip => sqlx::query_scalar!("SELECT id FROM clips WHERE id = $1", id)
            .fetch_optional(&state.db)
            .await?
            .map(Root::Clip),
    })
}

fn unavailable() -> Response {
    HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "the recordings store did not answer; retry")
        .with_retry_after(1)
        .into_response()
}
