//! Stream lifecycle: start, stop, read, edit, and a channel's past broadcasts.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::{HeaderValue, StatusCode};
use onair_domain::contracts::playback;
use onair_domain::{Category, Language, PlaybackAccess, StreamId, StreamStatus, StreamTitle, Tags, UserId};
use onair_web::{Json, Path, Query};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, foreign_key_violation, unique_violation};
use crate::lifecycle::{self, Cause};
use crate::orchestrator::StreamSpec;
use crate::pagination::{Cursor, Page, PageParams};
use crate::state::{AppState, CacheLabels};
use crate::stream_keys::create_key;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_stream))
        .routes(routes!(stop_stream))
        .routes(routes!(get_stream, update_stream))
        .routes(routes!(user_streams))
}

/// The streamer as shown beside a stream.
#[derive(Serialize, ToSchema, Clone)]
pub struct Streamer {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
}

/// A stream's public state.
#[derive(Serialize, ToSchema, Clone)]
pub struct StreamView {
    pub id: StreamId,
    pub streamer: Streamer,
    pub title: String,
    pub category: String,
    pub tags: Vec<String>,
    pub language: String,
    pub quality: String,
    pub status: StreamStatus,
    /// Concurrent viewers now (sessions seen in the last viewer window).
    pub viewers: i64,
    pub peak_viewers: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Who may play it: `public` streams play from `playback_url` as it is; `signed` and
    /// `followers` ones only from the signed URLs `POST /api/streams/{id}/playback` hands out.
    pub playback_access: PlaybackAccess,
    /// HLS master playlist, once a viewer's first request plays: from the publisher's first
    /// media until the stream ends (absent while it waits for its publisher or the encoder's
    /// first part, so a player is never handed a playlist that cannot play).
    pub playback_url: Option<String>,
    /// While a recorded stream plays: its rewind window (the last 30 min by default), an HLS
    /// master beside the live one. Players seek back in it and return to `playback_url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dvr_url: Option<String>,
    /// The media's state (Kubernetes: the LiveStream's phase), when the orchestrator knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<crate::orchestrator::MediaStatus>,
}

/// A stream and its streamer, as every stream read selects them (`streams s JOIN users u`).
/// The checked queries spell the columns out; `FromRow` serves discovery's built query.
#[derive(sqlx::FromRow)]
pub struct StreamRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub title: String,
    pub category: String,
    pub tags: Vec<String>,
    pub language: String,
    pub quality: String,
    pub status: String,
    pub current_viewers: i32,
    pub peak_viewers: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub playback_access: String,
}

impl StreamRow {
    pub fn status(&self) -> StreamStatus {
        StreamStatus::parse(&self.status).unwrap_or(StreamStatus::Failed)
    }

    pub fn into_view(self, state: &AppState) -> StreamView {
        let status = self.status();
        let playback_url = matches!(status, StreamStatus::Live | StreamStatus::Ending)
            .then(|| playback::master_url(&state.config.playback_base_url, self.id));
        StreamView {
            id: StreamId(self.id),
            streamer: Streamer {
                id: UserId(self.user_id),
                username: self.username,
                display_name: self.display_name,
                avatar_url: self.avatar_url,
            },
            title: self.title,
            category: self.category,
            tags: self.tags,
            language: self.language,
            quality: self.quality,
            status,
            viewers: i64::from(self.current_viewers),
            peak_viewers: self.peak_viewers,
            created_at: self.created_at,
            started_at: self.started_at,
            ended_at: self.ended_at,
            playback_access: crate::access::stored(&self.playback_access),
            playback_url,
            dvr_url: None,
            media: None,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"title": "Any% practice", "category": "games", "tags": ["speedrun"], "language": "en", "quality": "720p"}))]
pub struct StartRequest {
    /// One line of 1 to 140 characters.
    #[schema(
        min_length = 1,
        max_length = 140,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub title: String,
    // No `///` here: utoipa would put a field description beside the inlined enum as an
    // `allOf` member of type object, which no string satisfies. The enum's own says it.
    #[schema(inline, value_type = CategorySlug)]
    pub category: String,
    /// Up to 10 tags of 1 to 25 letters, digits, `-` or `_` (stored lowercased, deduplicated).
    #[serde(default)]
    #[schema(max_items = 10, value_type = Vec<TagSchema>)]
    pub tags: Vec<String>,
    /// A language code like `en` or `pt-br` (default `en`).
    #[schema(pattern = r"^[a-z]{2}(-[a-z]{2})?$")]
    pub language: Option<String>,
    /// Top rendition (default `source`).
    #[schema(inline, value_type = Option<Quality>)]
    pub quality: Option<String>,
}

/// The categories `GET /api/categories` lists (seeded by the migrations).
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only: categories travel as strings")]
enum CategorySlug {
    #[schema(rename = "just-chatting")]
    JustChatting,
    #[schema(rename = "games")]
    Games,
    #[schema(rename = "music")]
    Music,
    #[schema(rename = "art")]
    Art,
    #[schema(rename = "software")]
    Software,
    #[schema(rename = "science")]
    Science,
    #[schema(rename = "sports")]
    Sports,
    #[schema(rename = "education")]
    Education,
    #[schema(rename = "food")]
    Food,
    #[schema(rename = "travel")]
    Travel,
    #[schema(rename = "irl")]
    Irl,
    #[schema(rename = "other")]
    Other,
}

/// A stream tag.
#[derive(ToSchema)]
#[schema(value_type = String, pattern = r"^[A-Za-z0-9_-]{1,25}$")]
#[allow(dead_code, reason = "a schema only: tags travel as strings")]
struct TagSchema(String);

/// The top rendition of a stream's ladder.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only: qualities travel as strings")]
enum Quality {
    #[schema(rename = "source")]
    Source,
    #[schema(rename = "1080p")]
    P1080,
    #[schema(rename = "720p")]
    P720,
    #[schema(rename = "480p")]
    P480,
    #[schema(rename = "360p")]
    P360,
    #[schema(rename = "240p")]
    P240,
}

#[derive(Serialize, ToSchema)]
pub struct IngestInfo {
    /// OBS "Server".
    pub url: String,
    /// The stream key in clear, only when this request created it (first stream). Otherwise use
    /// the key you saved, or rotate it at `POST /api/users/me/stream-key`.
    pub stream_key: Option<String>,
    /// Which key to use, by its first characters.
    pub key_hint: String,
    /// Where viewers will watch (the stream's `playback_url` appears once it plays).
    pub playback_url: String,
}

#[derive(Serialize, ToSchema)]
pub struct StartResponse {
    pub stream: StreamView,
    pub ingest: IngestInfo,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateStreamRequest {
    /// One line of 1 to 140 characters.
    #[schema(
        min_length = 1,
        max_length = 140,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub title: Option<String>,
    #[schema(inline, value_type = Option<CategorySlug>)]
    pub category: Option<String>,
    /// Replaces the tags: up to 10 of 1 to 25 letters, digits, `-` or `_`.
    #[schema(max_items = 10, value_type = Option<Vec<TagSchema>>)]
    pub tags: Option<Vec<String>>,
    #[schema(pattern = r"^[a-z]{2}(-[a-z]{2})?$")]
    pub language: Option<String>,
}

/// How long a stream's state may take to load before the last good answer is served.
pub const STALE_IF_SLOWER: Duration = Duration::from_secs(1);
/// How old the last good answer served in its place may be.
pub const STALE_FOR: Duration = Duration::from_secs(60);

const QUALITIES: &[&str] = &["source", "1080p", "720p", "480p", "360p", "240p"];

fn map_category_error(e: sqlx::Error) -> ApiError {
    if foreign_key_violation(&e) == Some("streams_category_fkey") {
        return onair_domain::ValidationError::new("category", "unknown category; see GET /api/categories").into();
    }
    e.into()
}

impl AppState {
    /// Load one stream by id from the primary.
    pub(crate) async fn stream_row(&self, id: StreamId) -> ApiResult<Option<StreamRow>> {
        Ok(sqlx::query_as!(
            StreamRow,
            "SELECT s.id, s.user_id, u.username, u.display_name, u.avatar_url, s.title, s.category, s.tags,
                s.language, s.quality, s.status, s.current_viewers, s.peak_viewers, s.created_at, s.started_at, s.ended_at, s.playback_access
             FROM streams s JOIN users u ON u.id = s.user_id
             WHERE s.id = $1",
            id.0,
        )
        .fetch_optional(&self.db)
        .await?)
    }

    /// A stream's public JSON, from the in-memory cache (at most `stream_cache_ms` old).
    /// Concurrent misses for one stream share one load, so a popular stream costs Postgres one
    /// query per interval per replica however many people open its page. When the load fails, or
    /// takes longer than [`STALE_IF_SLOWER`], the last good answer (at most [`STALE_FOR`] old) is
    /// served instead: a database that does not answer must not take the stream pages, the
    /// heartbeats and the player's polling with it (the fault suite measured a 9 s API outage
    /// for a 10 s Postgres pause before this).
    pub(crate) async fn stream_json(&self, id: StreamId) -> ApiResult<Option<Bytes>> {
        let Some(stale) = self.stream_stale.get(&id).await else { return self.stream_json_fresh(id).await };
        // Its own task: a load that outlasts this request still finishes and refreshes both
        // caches, so a slow database does not leave every request serving the stale answer.
        let me = self.clone();
        let mut fresh = tokio::spawn(async move { me.stream_json_fresh(id).await });
        let stale_served = |why: &str| {
            tracing::debug!(stream_id = %id, why, "served the last good stream state");
            self.metrics.stream_cache.get_or_create(&CacheLabels { result: "stale" }).inc();
        };
        tokio::select! {
            r = &mut fresh => match r {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(ApiError::NotFound(what))) => Err(ApiError::NotFound(what)),
                Ok(Err(_)) | Err(_) => {
                    stale_served("failed");
                    Ok(stale)
                }
            },
            () = tokio::time::sleep(STALE_IF_SLOWER) => {
                stale_served("slow");
                Ok(stale)
            }
        }
    }

    async fn stream_json_fresh(&self, id: StreamId) -> ApiResult<Option<Bytes>> {
        let mut missed = false;
        let result = self
            .stream_cache
            .try_get_with(id, async {
                missed = true;
                let Some(row) = self.stream_row(id).await? else { return Ok::<_, ApiError>(None) };
                let mut view = row.into_view(self);
                if view.status.is_active() {
                    view.viewers = self.current_viewers(id).await.unwrap_or(view.viewers);
                    // Bounded: a slow Kubernetes API must not hold every viewer of this stream.
                    view.media = tokio::time::timeout(Duration::from_millis(500), self.orchestrator.media_status(id))
                        .await
                        .ok()
                        .flatten();
                    if let Some(media) = &view.media {
                        if media.playable == Some(false) {
                            view.playback_url = None;
                        } else if let (Some(url), Some(_)) = (&media.playback_url, &view.playback_url) {
                            view.playback_url = Some(url.clone());
                        }
                    }
                    // A recorded stream can be rewound (the media worker's recorded window).
                    if let Some(live) = &view.playback_url
                        && self.is_recorded(id).await?
                    {
                        view.dvr_url = Some(playback::dvr_url(live));
                    }
                }
                let json = serde_json::to_vec(&view).map_err(anyhow::Error::from)?;
                Ok(Some(Bytes::from(json)))
            })
            .await;
        let result = result.map_err(|e| match std::sync::Arc::try_unwrap(e) {
            Ok(e) => e,
            Err(e) => ApiError::Internal(anyhow::anyhow!("{e}")),
        });
        self.metrics.stream_cache.get_or_create(&CacheLabels { result: if missed { "miss" } else { "hit" } }).inc();
        if missed && let Ok(v) = &result {
            self.stream_stale.insert(id, v.clone()).await;
        }
        result
    }

    async fn is_recorded(&self, id: StreamId) -> ApiResult<bool> {
        let found =
            sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM recordings WHERE stream_id = $1) AS "found!""#, id.0)
                .fetch_one(&self.db)
                .await?;
        Ok(found)
    }

    pub(crate) async fn invalidate_stream(&self, id: StreamId) {
        self.stream_cache.invalidate(&id).await;
        self.stream_stale.invalidate(&id).await;
    }
}

/// Go live: create the broadcast and ask the orchestrator for media.
#[utoipa::path(post, path = "/api/streams/start", tag = "streams", security(("bearer" = [])), request_body = StartRequest,
    responses((status = 201, body = StartResponse), (status = 400, body = onair_web::ErrorBody),
              (status = 401, body = onair_web::ErrorBody), (status = 409, body = onair_web::ErrorBody),
              (status = 503, body = onair_web::ErrorBody)))]
async fn start_stream(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<StartRequest>,
) -> ApiResult<(StatusCode, Json<StartResponse>)> {
    let title = StreamTitle::parse(&req.title)?;
    let category = Category::parse(&req.category)?;
    let tags = Tags::parse(&req.tags)?;
    let language = req.language.as_deref().map(Language::parse).transpose()?;
    let quality = req.quality.as_deref().unwrap_or("source").trim().to_ascii_lowercase();
    if !QUALITIES.contains(&quality.as_str()) {
        return Err(
            onair_domain::ValidationError::new("quality", format!("must be one of {}", QUALITIES.join(", "))).into()
        );
    }

    let mut tx = state.db.begin().await?;
    let key = sqlx::query!("SELECT key_prefix, key_hash FROM stream_keys WHERE user_id = $1", user.id().0)
        .fetch_optional(&mut *tx)
        .await?;
    let (new_key, key_prefix, key_hash) = match key {
        Some(k) => (None, k.key_prefix, k.key_hash),
        None => {
            let (k, _) = create_key(&mut tx, user.id()).await?;
            let prefix = k[..9].to_owned();
            let hash = crate::sessions::hash_token(&k);
            (Some(k), prefix, hash)
        }
    };
    // The token names the user; usernames do not change.
    let channel = user.0.name.clone();
    let id = StreamId::new();
    let playback_access = sqlx::query_scalar!(
        "INSERT INTO streams (id, user_id, title, category, tags, language, quality, streamer_name, playback_access)
         SELECT $1, $2, $3, $4, $5, $6, $7, username, playback_access FROM users WHERE id = $2
         RETURNING playback_access",
        id.0,
        user.id().0,
        title.as_str(),
        category.as_str(),
        &tags.to_strings(),
        language.as_ref().map(|l| l.as_str()).unwrap_or("en"),
        quality,
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| match unique_violation(&e) {
        Some("streams_one_active_per_user") => {
            ApiError::conflict("stream_already_active", "you already have a stream on air; stop it first")
        }
        _ => map_category_error(e),
    })?
    // The account went meanwhile (its token still within its 15 minutes).
    .ok_or_else(|| ApiError::unauthorized("invalid_token", "this account no longer exists"))?;
    let playback_access = crate::access::stored(&playback_access);
    let recording = state.begin_recording(&mut tx, id.0, user.id().0).await?;
    tx.commit().await?;

    let key_hash = onair_domain::contracts::stream_key::to_hex(&key_hash);
    let spec = StreamSpec {
        stream_id: id,
        user_id: user.id(),
        tier: user.0.tier,
        quality,
        channel,
        key_hash,
        playback_access,
    };
    let endpoints = match state.orchestrator.start(&spec).await {
        Ok(e) => e,
        Err(e) => {
            // Free the user's live slot: a stream that never got media is a failed one.
            state.set_stream_status(id, StreamStatus::Failed, Cause::StartFailed).await?;
            return Err(e.into());
        }
    };
    state.publish_lifecycle("started", id, user.id()).await;
    tracing::info!(stream_id = %id, user_id = %user.id(), orchestrator = state.orchestrator.name(), recording, "stream started");

    let row = state.stream_row(id).await?.ok_or(ApiError::NotFound("stream"))?;
    let stream = row.into_view(&state);
    Ok((
        StatusCode::CREATED,
        Json(StartResponse {
            stream,
            ingest: IngestInfo {
                url: endpoints.ingest_url,
                stream_key: new_key,
                key_hint: format!("use the stream key starting with {key_prefix}"),
                playback_url: endpoints.playback_url,
            },
        }),
    ))
}

/// End a broadcast (its owner or an admin).
#[utoipa::path(post, path = "/api/streams/{stream_id}/stop", tag = "streams", security(("bearer" = [])),
    params(("stream_id" = Uuid, Path)),
    responses((status = 200, body = StreamView), (status = 401, body = onair_web::ErrorBody),
              (status = 403, body = onair_web::ErrorBody), (status = 404, body = onair_web::ErrorBody),
              (status = 409, body = onair_web::ErrorBody)))]
async fn stop_stream(
    State(state): State<AppState>,
    user: AuthUser,
    Path(stream_id): Path<Uuid>,
) -> ApiResult<Json<StreamView>> {
    let id = StreamId(stream_id);
    let row = state.stream_row(id).await?.ok_or(ApiError::NotFound("stream"))?;
    user.require_owner_or_admin(UserId(row.user_id), "stream")?;
    // Refuse before stopping the media; the write below checks again under a row lock.
    lifecycle::transition(row.status(), StreamStatus::Ended)?;
    state.orchestrator.stop(id).await?;
    state.set_stream_status(id, StreamStatus::Ended, Cause::Stopped).await?;
    tracing::info!(stream_id = %id, user_id = %user.id(), "stream stopped");
    let row = state.stream_row(id).await?.ok_or(ApiError::NotFound("stream"))?;
    Ok(Json(row.into_view(&state)))
}

/// A stream's public state: status, viewers, playback URL, times.
#[utoipa::path(get, path = "/api/streams/{stream_id}", tag = "streams", params(("stream_id" = Uuid, Path)),
    responses((status = 200, body = StreamView), (status = 404, body = onair_web::ErrorBody)))]
async fn get_stream(State(state): State<AppState>, Path(stream_id): Path<Uuid>) -> ApiResult<Response> {
    let json = state.stream_json(StreamId(stream_id)).await?.ok_or(ApiError::NotFound("stream"))?;
    let mut res = (StatusCode::OK, json).into_response();
    res.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Shared caches may hold it as long as we do.
    res.headers_mut().insert(http::header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=1"));
    Ok(res)
}

/// Edit title, category, tags or language (owner or admin).
#[utoipa::path(patch, path = "/api/streams/{stream_id}", tag = "streams", security(("bearer" = [])),
    params(("stream_id" = Uuid, Path)), request_body = UpdateStreamRequest,
    responses((status = 200, body = StreamView), (status = 400, body = onair_web::ErrorBody),
              (status = 401, body = onair_web::ErrorBody), (status = 403, body = onair_web::ErrorBody),
              (status = 404, body = onair_web::ErrorBody)))]
async fn update_stream(
    State(state): State<AppState>,
    user: AuthUser,
    Path(stream_id): Path<Uuid>,
    Json(req): Json<UpdateStreamRequest>,
) -> ApiResult<Json<StreamView>> {
    let title = req.title.as_deref().map(StreamTitle::parse).transpose()?;
    let category = req.category.as_deref().map(Category::parse).transpose()?;
    let tags = req.tags.as_deref().map(Tags::parse).transpose()?.map(|t| t.to_strings());
    let language = req.language.as_deref().map(Language::parse).transpose()?;
    let id = StreamId(stream_id);
    let row = state.stream_row(id).await?.ok_or(ApiError::NotFound("stream"))?;
    user.require_owner_or_admin(UserId(row.user_id), "stream")?;
    sqlx::query!(
        "UPDATE streams SET title = COALESCE($2, title), category = COALESCE($3, category),
            tags = COALESCE($4, tags), language = COALESCE($5, language) WHERE id = $1",
        id.0,
        title.as_ref().map(|t| t.as_str()),
        category.as_ref().map(|c| c.as_str()),
        tags.as_deref(),
        language.as_ref().map(|l| l.as_str()),
    )
    .execute(&state.db)
    .await
    .map_err(map_category_error)?;
    state.invalidate_stream(id).await;
    let row = state.stream_row(id).await?.ok_or(ApiError::NotFound("stream"))?;
    Ok(Json(row.into_view(&state)))
}

/// A channel's broadcasts, newest first.
#[utoipa::path(get, path = "/api/users/{user_id}/streams", tag = "streams", params(("user_id" = Uuid, Path), PageParams),
    responses((status = 200, body = Page<StreamView>), (status = 400, body = onair_web::ErrorBody)))]
async fn user_streams(
    State(state): State<AppState>,
    Path(user_id): Path<Uuid>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Page<StreamView>>> {
    let limit = page.limit()?;
    let after = page.time_cursor()?;
    let rows = sqlx::query_as!(
        StreamRow,
        "SELECT s.id, s.user_id, u.username, u.display_name, u.avatar_url, s.title, s.category, s.tags,
            s.language, s.quality, s.status, s.current_viewers, s.peak_viewers, s.created_at, s.started_at, s.ended_at, s.playback_access
         FROM streams s JOIN users u ON u.id = s.user_id
         WHERE s.user_id = $1 AND ($2::timestamptz IS NULL OR (s.created_at, s.id) < ($2, $3))
         ORDER BY s.created_at DESC, s.id DESC LIMIT $4",
        user_id,
        after.map(|a| a.0),
        after.map(|a| a.1),
        limit + 1,
    )
    .fetch_all(&state.read_db)
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |r| Cursor((r.created_at, r.id)), |r| r.into_view(&state))))
}
