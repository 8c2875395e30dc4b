//! Accounts: register, login, refresh, logout, profiles.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use onair_auth::AccessClaims;
use onair_domain::contracts::http::REFRESH_COOKIE;
use onair_domain::{
    AvatarUrl, Bio, DisplayName, Email, Password, PlaybackAccess, RecordRenditions, Role, StreamId, Tier, UserId,
    Username,
};
use onair_web::{Json, Path, RawBody};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{AuthUser, ClientIp};
use crate::error::{ApiError, ApiResult, unique_violation};
use crate::sessions::{self, Rotation};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me, update_me, delete_me))
        .routes(routes!(profile))
}

/// A user row as the API needs it.
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub display_name: String,
    pub bio: String,
    pub avatar_url: Option<String>,
    pub role: String,
    pub tier: String,
    pub record_broadcasts: bool,
    pub record_renditions: String,
    pub playback_access: String,
    pub created_at: DateTime<Utc>,
}

impl UserRow {
    fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Viewer)
    }
    fn tier(&self) -> Tier {
        Tier::parse(&self.tier).unwrap_or(Tier::Free)
    }
    fn record_renditions(&self) -> RecordRenditions {
        RecordRenditions::parse(&self.record_renditions).unwrap_or(RecordRenditions::All)
    }
    fn playback_access(&self) -> PlaybackAccess {
        crate::access::stored(&self.playback_access)
    }
}

/// What the account holder sees of themselves.
#[derive(Serialize, ToSchema)]
pub struct PrivateUser {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub display_name: String,
    pub bio: String,
    pub avatar_url: Option<String>,
    pub role: Role,
    pub tier: Tier,
    /// Broadcasts are recorded and kept as VODs (from the next one started).
    pub record_broadcasts: bool,
    /// Which renditions a recording keeps: the whole ladder, or its top and lowest.
    pub record_renditions: RecordRenditions,
    /// Who may play this channel's broadcasts (from the next one started).
    pub playback_access: PlaybackAccess,
    pub created_at: DateTime<Utc>,
}

impl From<&UserRow> for PrivateUser {
    fn from(u: &UserRow) -> Self {
        Self {
            id: UserId(u.id),
            username: u.username.clone(),
            email: u.email.clone(),
            display_name: u.display_name.clone(),
            bio: u.bio.clone(),
            avatar_url: u.avatar_url.clone(),
            role: u.role(),
            tier: u.tier(),
            record_broadcasts: u.record_broadcasts,
            record_renditions: u.record_renditions(),
            playback_access: u.playback_access(),
            created_at: u.created_at,
        }
    }
}

/// What anyone sees of a user.
#[derive(Serialize, ToSchema)]
pub struct PublicProfile {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub bio: String,
    pub avatar_url: Option<String>,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub followers: i64,
    pub following: i64,
    /// The broadcast this user has on air now, if any.
    pub live_stream_id: Option<Uuid>,
}

/// Tokens handed out at login, register and refresh.
#[derive(Serialize, ToSchema)]
pub struct Session {
    pub user: PrivateUser,
    /// Short-lived JWT for `Authorization: Bearer`.
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque, single-use: exchange it at `/api/users/refresh` for a new pair. Also set as an
    /// httpOnly cookie for browsers.
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"username": "ada_l", "email": "ada@example.com", "password": "correct horse battery", "display_name": "Ada"}))]
pub struct RegisterRequest {
    /// 3 to 25 letters, digits or underscores, starting with a letter or digit; unique
    /// regardless of case.
    #[schema(min_length = 3, max_length = 25, pattern = r"^[A-Za-z0-9][A-Za-z0-9_]*$")]
    pub username: String,
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// 8 to 128 characters, not only whitespace.
    #[schema(min_length = 8, max_length = 128, pattern = r"\S")]
    pub password: String,
    /// One line of 1 to 40 characters (defaults to the username).
    #[schema(
        min_length = 1,
        max_length = 40,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub display_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Your username or email: up to 254 characters, not only whitespace.
    #[schema(min_length = 1, max_length = 254, pattern = r"\S", example = "ada")]
    pub login: String,
    /// Up to 512 characters.
    #[schema(min_length = 1, max_length = 512)]
    pub password: String,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct RefreshRequest {
    /// Optional when the refresh cookie is sent.
    pub refresh_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"display_name": "Ada L.", "bio": "Speedruns and synths."}))]
pub struct UpdateMeRequest {
    /// One line of 1 to 40 characters.
    #[schema(
        min_length = 1,
        max_length = 40,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub display_name: Option<String>,
    /// Up to 500 characters; newlines allowed, other control characters not.
    #[schema(max_length = 500, pattern = r"^[^\x00-\x09\x0B-\x1F\x7F-\x9F]*$")]
    pub bio: Option<String>,
    /// An http(s) URL of up to 2048 bytes; an empty string removes the avatar.
    #[schema(
        max_length = 2048,
        pattern = r"^$|^https?://[A-Za-z0-9]([A-Za-z0-9-]*\.)*[A-Za-z][A-Za-z0-9-]*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?$"
    )]
    pub avatar_url: Option<String>,
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    /// Needed with `new_password` and `email`.
    pub current_password: Option<String>,
    /// 8 to 128 characters, not only whitespace.
    #[schema(min_length = 8, max_length = 128, pattern = r"\S")]
    pub new_password: Option<String>,
    /// Record broadcasts and keep them as VODs; applies from the next broadcast started.
    pub record_broadcasts: Option<bool>,
    /// `all` renditions of the ladder, or `top_and_lowest`; applies from the next broadcast.
    pub record_renditions: Option<RecordRenditions>,
    /// `public` (plain URLs), `signed` (expiring per-viewer URLs for anyone) or `followers`
    /// (signed URLs for signed-in followers only); applies from the next broadcast.
    pub playback_access: Option<PlaybackAccess>,
}

/// `UpdateMeRequest` as the document states it: the fields, plus the rule no field attribute
/// can say: a `new_password` or an `email` (a string; `null` changes nothing) needs a non-empty
/// `current_password`. The server asks for it only when the email really changes, so the
/// document is the stricter of the two by exactly "the email you already have".
pub struct UpdateMeBody;

impl utoipa::PartialSchema for UpdateMeBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::Schema;
        let mut schema = <UpdateMeRequest as utoipa::PartialSchema>::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            let given =
                |field: &str| serde_json::json!({"required": [field], "properties": {field: {"type": "string"}}});
            let rule = object.extensions.get_or_insert_with(Default::default);
            // JSON Schema's `if`/`then` (OpenAPI 3.1), not `x-` extensions: validators honour them.
            rule.insert("if".to_owned(), serde_json::json!({"anyOf": [given("new_password"), given("email")]}));
            rule.insert(
                "then".to_owned(),
                serde_json::json!({"required": ["current_password"],
                    "properties": {"current_password": {"type": "string", "minLength": 1}}}),
            );
        }
        schema
    }
}

impl ToSchema for UpdateMeBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "UpdateMeRequest".into()
    }
}

impl AppState {
    pub(crate) async fn user_by_id(&self, id: UserId) -> ApiResult<Option<UserRow>> {
        Ok(user_row(&self.db, id).await?)
    }

    /// Sign an access token for `user` in login session `family`, and build the session body.
    fn session_for(&self, user: &UserRow, new: sessions::NewSession) -> ApiResult<(Session, HeaderValue)> {
        let claims = AccessClaims::new(
            UserId(user.id),
            user.username.clone(),
            user.role(),
            user.tier(),
            new.family,
            self.access_ttl(),
        );
        let access_token = self.keys.sign(&claims).map_err(anyhow::Error::from)?;
        let cookie = self.refresh_cookie(&new.refresh_token, self.refresh_ttl().num_seconds());
        Ok((
            Session {
                user: user.into(),
                access_token,
                token_type: "Bearer",
                expires_in: self.access_ttl().num_seconds(),
                refresh_token: new.refresh_token,
                refresh_expires_at: new.expires_at,
            },
            cookie,
        ))
    }

    fn refresh_cookie(&self, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.config.cookie_secure { "; Secure" } else { "" };
        let c =
            format!("{REFRESH_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/api/users; Max-Age={max_age}{secure}");
        // The value is base64url and the rest is ASCII we wrote, so this is always a valid header.
        HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// One user by id, from the pool or inside a transaction.
async fn user_row<'e>(db: impl sqlx::PgExecutor<'e>, id: UserId) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as!(
        UserRow,
        "SELECT id, username, email, password_hash, display_name, bio, avatar_url, role, tier, record_broadcasts, record_renditions, playback_access, created_at
         FROM users WHERE id = $1",
        id.0,
    )
    .fetch_optional(db)
    .await
}

fn with_cookie(status: StatusCode, body: impl Serialize, cookie: HeaderValue) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut().append(http::header::SET_COOKIE, cookie);
    res
}

/// The refresh/logout body is optional (browsers send only the cookie).
fn optional_body(body: &[u8]) -> ApiResult<RefreshRequest> {
    // No body, or a JSON `null`, means "use the cookie".
    if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        return Ok(RefreshRequest::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}")))
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers.get_all(http::header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(
        |kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == REFRESH_COOKIE && !v.is_empty()).then(|| v.to_owned())
        },
    )
}

/// Create an account and log it in.
#[utoipa::path(post, path = "/api/users/register", tag = "users", request_body = RegisterRequest,
    responses((status = 201, body = Session), (status = 400, body = onair_web::ErrorBody),
              (status = 409, body = onair_web::ErrorBody), (status = 429, body = onair_web::ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    Json(req): Json<RegisterRequest>,
) -> ApiResult<Response> {
    let username = Username::parse(&req.username)?;
    let email = Email::parse(&req.email)?;
    let password = Password::parse("password", &req.password)?;
    let display_name = match &req.display_name {
        Some(d) => DisplayName::parse(d)?,
        // Usernames are 3-25 chars of letters/digits, so they are always valid display names.
        None => DisplayName::parse(username.as_str())?,
    };
    state.rate_limit(state.register_ip_limit(), &ip.0.to_string()).await?;

    let hash = state.passwords.hash(&password).await?;
    let mut tx = state.db.begin().await?;
    let user = sqlx::query_as!(
        UserRow,
        "INSERT INTO users (id, username, username_key, email, password_hash, display_name)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, username, email, password_hash, display_name, bio, avatar_url, role, tier, record_broadcasts, record_renditions, playback_access, created_at",
        UserId::new().0,
        username.as_str(),
        username.key(),
        email.as_str(),
        hash,
        display_name.as_str(),
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match unique_violation(&e) {
        Some("users_username_key") => ApiError::conflict("username_taken", "that username is taken"),
        Some("users_email_key") => ApiError::conflict("email_taken", "an account with that email exists"),
        _ => e.into(),
    })?;
    let new = sessions::issue(&mut tx, UserId(user.id), None, state.refresh_ttl()).await?;
    tx.commit().await?;
    state.metrics.auth("register", "ok");
    tracing::info!(user_id = %user.id, "user registered");
    let (session, cookie) = state.session_for(&user, new)?;
    Ok(with_cookie(StatusCode::CREATED, session, cookie))
}

/// Log in by username or email.
#[utoipa::path(post, path = "/api/users/login", tag = "users", request_body = LoginRequest,
    responses((status = 200, body = Session), (status = 401, body = onair_web::ErrorBody), (status = 429, body = onair_web::ErrorBody)))]
async fn login(State(state): State<AppState>, ip: ClientIp, Json(req): Json<LoginRequest>) -> ApiResult<Response> {
    // Characters, as the document's `maxLength` counts them; either bound keeps the lookup and
    // the hash cheap.
    if req.login.trim().is_empty() || req.login.chars().count() > 254 {
        return Err(onair_domain::ValidationError::new("login", "must be your username or email").into());
    }
    if req.password.is_empty() || req.password.chars().count() > 512 {
        return Err(onair_domain::ValidationError::new("password", "must be your password").into());
    }
    state.rate_limit(state.login_ip_limit(), &ip.0.to_string()).await?;

    let by_email = req.login.contains('@');
    let login = if by_email { req.login.trim().to_lowercase() } else { Username::key_of(&req.login) };
    let user = if by_email {
        sqlx::query_as!(
            UserRow,
            "SELECT id, username, email, password_hash, display_name, bio, avatar_url, role, tier, record_broadcasts, record_renditions, playback_access, created_at
             FROM users WHERE email = $1",
            login,
        )
        .fetch_optional(&state.db)
        .await?
    } else {
        sqlx::query_as!(
            UserRow,
            "SELECT id, username, email, password_hash, display_name, bio, avatar_url, role, tier, record_broadcasts, record_renditions, playback_access, created_at
             FROM users WHERE username_key = $1",
            login,
        )
        .fetch_optional(&state.db)
        .await?
    };

    // Count the attempt against the account (or, for no account, the name tried, so a 429
    // reveals nothing) before the slow check: counting after would let parallel guesses all pass.
    // Keyed by the account id, trying the username and then the email shares one budget.
    let account_limit = state.login_account_limit();
    let subject = user.as_ref().map(|u| u.id.to_string()).unwrap_or_else(|| login.clone());
    state.rate_limit(account_limit, &subject).await?;
    let ok = state.passwords.verify(&req.password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    let Some(user) = user.filter(|_| ok) else {
        state.metrics.auth("login", "bad_credentials");
        return Err(ApiError::unauthorized("invalid_credentials", "wrong username/email or password"));
    };
    state.rate_clear(account_limit, &subject).await;

    let mut conn = state.db.acquire().await?;
    let new = sessions::issue(&mut conn, UserId(user.id), None, state.refresh_ttl()).await?;
    state.metrics.auth("login", "ok");
    tracing::info!(user_id = %user.id, "user logged in");
    let (session, cookie) = state.session_for(&user, new)?;
    Ok(with_cookie(StatusCode::OK, session, cookie))
}

/// Exchange a refresh token (body or cookie) for a new access token and refresh token.
#[utoipa::path(post, path = "/api/users/refresh", tag = "users",
    request_body(content = Option<RefreshRequest>, description = "Optional: without a body (or without `refresh_token`) the refresh cookie is used"),
    responses((status = 200, body = Session), (status = 401, body = onair_web::ErrorBody)))]
async fn refresh(State(state): State<AppState>, headers: HeaderMap, RawBody(body): RawBody) -> ApiResult<Response> {
    let token = optional_body(&body)?.refresh_token.or_else(|| cookie_token(&headers)).ok_or_else(|| {
        ApiError::unauthorized("missing_refresh_token", "send refresh_token in the body or the refresh cookie")
    })?;
    let mut tx = state.db.begin().await?;
    match sessions::rotate(&mut tx, &token, state.refresh_ttl()).await? {
        Rotation::Reused => {
            tx.commit().await?;
            state.metrics.auth("refresh", "reuse_detected");
            Err(ApiError::unauthorized(
                "refresh_token_reused",
                "this refresh token was already used; the session has been ended",
            ))
        }
        Rotation::Rotated { user, session } => {
            // The token's row holds its user by foreign key, so the user is there.
            let row = user_row(&mut *tx, user).await?.ok_or(sqlx::Error::RowNotFound)?;
            tx.commit().await?;
            state.metrics.auth("refresh", "ok");
            let (session, cookie) = state.session_for(&row, session)?;
            Ok(with_cookie(StatusCode::OK, session, cookie))
        }
    }
}

/// End the login session the refresh token belongs to.
#[utoipa::path(post, path = "/api/users/logout", tag = "users",
    request_body(content = Option<RefreshRequest>, description = "Optional: without a body (or without `refresh_token`) the refresh cookie is used; with neither, only the cookie is cleared"),
    responses((status = 204, description = "session ended (or already gone)")))]
async fn logout(State(state): State<AppState>, headers: HeaderMap, RawBody(body): RawBody) -> ApiResult<Response> {
    if let Some(token) = optional_body(&body)?.refresh_token.or_else(|| cookie_token(&headers)) {
        let mut conn = state.db.acquire().await?;
        sessions::revoke_by_token(&mut conn, &token).await?;
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().append(http::header::SET_COOKIE, state.refresh_cookie("", 0));
    Ok(res)
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = PrivateUser), (status = 401, body = onair_web::ErrorBody)))]
async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<PrivateUser>> {
    let row = state.user_by_id(user.id()).await?.ok_or(ApiError::NotFound("user"))?;
    Ok(Json((&row).into()))
}

/// Edit the caller's profile; changing email or password needs the current password.
#[utoipa::path(patch, path = "/api/users/me", tag = "users", security(("bearer" = [])), request_body = UpdateMeBody,
    responses((status = 200, body = PrivateUser), (status = 400, body = onair_web::ErrorBody),
              (status = 401, body = onair_web::ErrorBody), (status = 403, body = onair_web::ErrorBody),
              (status = 409, body = onair_web::ErrorBody)))]
async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<UpdateMeRequest>,
) -> ApiResult<Json<PrivateUser>> {
    let display_name = req.display_name.as_deref().map(DisplayName::parse).transpose()?;
    let bio = req.bio.as_deref().map(Bio::parse).transpose()?;
    let avatar = match req.avatar_url.as_deref() {
        None => None,
        Some(s) if s.trim().is_empty() => Some(None),
        Some(s) => Some(Some(AvatarUrl::parse(s)?)),
    };
    let email = req.email.as_deref().map(Email::parse).transpose()?;
    let new_password = req.new_password.as_deref().map(|p| Password::parse("new_password", p)).transpose()?;

    let current = state.user_by_id(user.id()).await?.ok_or(ApiError::NotFound("user"))?;
    let sensitive = new_password.is_some() || email.as_ref().is_some_and(|e| e.as_str() != current.email);
    if sensitive {
        let given = req.current_password.as_deref().filter(|p| !p.is_empty()).ok_or_else(|| {
            onair_domain::ValidationError::new("current_password", "needed to change email or password")
        })?;
        if !state.passwords.verify(given, Some(current.password_hash.clone())).await? {
            return Err(ApiError::forbidden("the current password is wrong"));
        }
    }
    let new_hash = match &new_password {
        Some(p) => Some(state.passwords.hash(p).await?),
        None => None,
    };

    let mut tx = state.db.begin().await?;
    let row = sqlx::query_as!(
        UserRow,
        "UPDATE users SET
            display_name = COALESCE($2, display_name),
            bio = COALESCE($3, bio),
            avatar_url = CASE WHEN $4 THEN $5 ELSE avatar_url END,
            email = COALESCE($6, email),
            password_hash = COALESCE($7, password_hash),
            record_broadcasts = COALESCE($8, record_broadcasts),
            record_renditions = COALESCE($9, record_renditions),
            playback_access = COALESCE($10, playback_access),
            updated_at = now()
         WHERE id = $1
         RETURNING id, username, email, password_hash, display_name, bio, avatar_url, role, tier, record_broadcasts, record_renditions, playback_access, created_at",
        user.id().0,
        display_name.as_ref().map(|d| d.as_str()),
        bio.as_ref().map(|b| b.as_str()),
        avatar.is_some(),
        avatar.flatten().map(|a| a.into_inner()),
        email.as_ref().map(|e| e.as_str()),
        new_hash.as_deref(),
        req.record_broadcasts,
        req.record_renditions.map(RecordRenditions::as_str),
        req.playback_access.map(PlaybackAccess::as_str),
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match unique_violation(&e) {
        Some("users_email_key") => ApiError::conflict("email_taken", "an account with that email exists"),
        _ => e.into(),
    })?;
    if new_password.is_some() {
        // Every other login session ends; this one (the caller's) stays.
        sessions::revoke_all_except(&mut tx, user.id(), Some(user.0.sid)).await?;
    }
    tx.commit().await?;
    tracing::info!(user_id = %user.id(), password_changed = new_password.is_some(), "profile updated");
    Ok(Json((&row).into()))
}

#[derive(Deserialize, ToSchema)]
pub struct DeleteMeRequest {
    /// The account's password: an access token alone cannot delete an account.
    pub password: String,
}

/// Delete the caller's account and everything it owns: its broadcast on air ends, its
/// recordings, VODs and clips are deleted (rows now, objects in the background), its login
/// sessions end. Clips it made of other channels stay, without a maker.
#[utoipa::path(delete, path = "/api/users/me", tag = "users", security(("bearer" = [])), request_body = DeleteMeRequest,
    responses((status = 204, description = "deleted; the refresh cookie is cleared"), (status = 400, body = onair_web::ErrorBody),
              (status = 401, body = onair_web::ErrorBody), (status = 403, body = onair_web::ErrorBody),
              (status = 429, body = onair_web::ErrorBody), (status = 503, body = onair_web::ErrorBody)))]
async fn delete_me(
    State(state): State<AppState>,
    user: AuthUser,
    Json(req): Json<DeleteMeRequest>,
) -> ApiResult<Response> {
    let current = state
        .user_by_id(user.id())
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid_token", "this account no longer exists"))?;
    // Password guesses here count with the account's failed logins (keyed as login keys them).
    state.rate_limit(state.login_account_limit(), &user.id().to_string()).await?;
    if !state.passwords.verify(&req.password, Some(current.password_hash.clone())).await? {
        return Err(ApiError::forbidden("the password is wrong"));
    }
    let live = sqlx::query_scalar!(
        "SELECT id FROM streams WHERE user_id = $1 AND status IN ('starting', 'live', 'ending')",
        user.id().0,
    )
    .fetch_optional(&state.db)
    .await?;
    if let Some(stream) = live.map(StreamId) {
        // Its media stops first: a worker still recording after the rows are gone would store
        // objects nobody deletes. If it cannot be stopped the account stays (503, try again).
        state.orchestrator.stop(stream).await?;
        state.invalidate_stream(stream).await;
    }
    // Cascades take the streams, recordings, VODs and clips; their triggers queue the objects.
    sqlx::query!("DELETE FROM users WHERE id = $1", user.id().0).execute(&state.db).await?;
    tracing::info!(user_id = %user.id(), "account deleted");
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().append(http::header::SET_COOKIE, state.refresh_cookie("", 0));
    Ok(res)
}

/// A user's public profile.
#[utoipa::path(get, path = "/api/users/{user_id}", tag = "users", params(("user_id" = Uuid, Path)),
    responses((status = 200, body = PublicProfile), (status = 404, body = onair_web::ErrorBody)))]
async fn profile(State(state): State<AppState>, Path(user_id): Path<Uuid>) -> ApiResult<Json<PublicProfile>> {
    // `!`: a count is never NULL, but Postgres reports any subquery's column as nullable.
    let p = sqlx::query_as!(
        PublicProfile,
        r#"SELECT u.id, u.username, u.display_name, u.bio, u.avatar_url, u.role, u.created_at,
                (SELECT count(*) FROM followers f WHERE f.user_id = u.id) AS "followers!",
                (SELECT count(*) FROM followers f WHERE f.follower_id = u.id) AS "following!",
                (SELECT s.id FROM streams s WHERE s.user_id = u.id AND s.status IN ('starting', 'live', 'ending')) AS live_stream_id
         FROM users u WHERE u.id = $1"#,
        user_id,
    )
    .fetch_optional(&state.read_db)
    .await?;
    p.map(Json).ok_or(ApiError::NotFound("user"))
}
