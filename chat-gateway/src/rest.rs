//! REST routes, one module per resource, each with its own `router()`: messages (send,
//! history), moderation actions, moderators, word filters, reports, bans and the audit log.
//! This module holds what they share: the caller's identity, the staff check, and publishing
//! moderation events.

mod audit;
mod bans;
mod filters;
mod messages;
mod moderation;
mod moderators;
mod reports;

use axum::Router;
use axum::extract::FromRequestParts;
use http::request::Parts;
use onair_auth::AccessClaims;
use onair_domain::contracts::subjects;
use onair_domain::{StreamId, UserId};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::error::{ChatError, ChatResult};
use crate::protocol::ModEvent;
use crate::state::ChatState;
use crate::ws::verify_token;

/// Tag of the message routes (send, history).
pub const TAG_CHAT: &str = "chat";
/// Tag of the moderation routes.
pub const TAG_MODERATION: &str = "chat moderation";

#[derive(OpenApi)]
#[openapi(
    info(title = "onair chat API", description = "Chat messages and moderation over REST (the WebSocket is described in the chat gateway's README)."),
    modifiers(&BearerScheme),
    components(schemas(onair_web::ErrorBody, onair_web::ErrorDetail)),
    tags(
        (name = TAG_CHAT, description = "Chat messages: send and history"),
        (name = TAG_MODERATION, description = "Moderation actions, moderators, word filters, reports, bans, the audit log"),
    )
)]
struct ChatDoc;

/// The `bearer` scheme the operations name (the apiserver's document declares the same one).
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.components.get_or_insert_with(Default::default).add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// Every REST route with its documentation.
fn routes() -> OpenApiRouter<ChatState> {
    OpenApiRouter::with_openapi(ChatDoc::openapi())
        .merge(messages::router())
        .merge(moderation::router())
        .merge(reports::router())
        .merge(moderators::router())
        .merge(filters::router())
        .merge(bans::router())
        .merge(audit::router())
}

/// Every REST route of the gateway.
pub fn router() -> Router<ChatState> {
    routes().split_for_parts().0
}

/// The OpenAPI document of the REST routes, built from the same registrations as the router
/// (so a route cannot be added without its documentation). The apiserver merges it into the
/// document it serves, since one address answers both on Kubernetes (the Ingress) and on one
/// machine.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().split_for_parts().1;
    deny_unknown_action_fields(&mut doc);
    doc
}

/// `ModAction` refuses unknown fields (`deny_unknown_fields`), which utoipa does not carry over
/// to an internally tagged enum's variants: say so in each variant's schema.
fn deny_unknown_action_fields(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{AdditionalProperties, Schema};
    use utoipa::openapi::{RefOr, schema::OneOf};
    let Some(components) = doc.components.as_mut() else { return };
    let Some(RefOr::T(Schema::OneOf(OneOf { items, .. }))) = components.schemas.get_mut("ModAction") else { return };
    for item in items {
        if let RefOr::T(Schema::Object(o)) = item {
            o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        }
    }
}

/// A caller with a valid access token.
pub struct AuthUser(pub AccessClaims);

impl FromRequestParts<ChatState> for AuthUser {
    type Rejection = ChatError;

    async fn from_request_parts(parts: &mut Parts, state: &ChatState) -> Result<Self, Self::Rejection> {
        // Parsed as the apiserver parses it (scheme case-insensitive), so one token works on both.
        let token = onair_web::bearer_token(&parts.headers)
            .map_err(|e| ChatError::unauthorized("invalid_token", e.to_string()))?
            .ok_or_else(|| ChatError::unauthorized("missing_token", "this route needs an access token"))?;
        verify_token(state, token).await.map(AuthUser)
    }
}

/// 404 `stream_not_found` unless the stream exists (ended ones included: their history and
/// reports stay readable).
async fn require_stream(state: &ChatState, stream_id: Uuid) -> ChatResult<()> {
    let exists = sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM streams WHERE id = $1) AS "exists!""#, stream_id)
        .fetch_one(&state.db)
        .await?;
    if exists { Ok(()) } else { Err(ChatError::not_found("stream_not_found", "no such stream")) }
}

/// Whether `user` is one of `channel`'s appointed moderators (read from the database, not a
/// room's cached list, which may trail a removal).
async fn is_moderator(state: &ChatState, channel: Uuid, user: Uuid) -> ChatResult<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM chat_moderators WHERE channel_id = $1 AND user_id = $2) AS "exists!""#,
        channel,
        user,
    )
    .fetch_one(&state.db)
    .await?)
}

/// 403 unless the caller is staff of the channel (its owner, one of its moderators, or an admin).
async fn require_staff(state: &ChatState, channel: Uuid, claims: &AccessClaims, message: &str) -> ChatResult<()> {
    // The database is asked only when the token alone does not settle it.
    let owner_or_admin = claims.is_owner_or_admin(UserId(channel));
    let moderator = !owner_or_admin && is_moderator(state, channel, claims.sub.0).await?;
    if claims.is_staff(UserId(channel), moderator) { Ok(()) } else { Err(ChatError::forbidden(message)) }
}

/// Broadcast a moderation event to every replica's copy of the room.
async fn publish_mod(state: &ChatState, stream: StreamId, ev: &ModEvent) -> ChatResult<()> {
    let subject = subjects::chat_moderation(&state.config.nats.nats_prefix, stream);
    state
        .nats
        .publish(subject, serde_json::to_vec(ev).map_err(anyhow::Error::from)?.into())
        .await
        .map_err(anyhow::Error::from)?;
    // Flush so the event is on the wire before we answer: "in effect" means in effect.
    state.nats.flush().await.map_err(anyhow::Error::from)?;
    Ok(())
}

/// Moderator lists and filters change rarely: tell the channel's active rooms to reload their
/// rules.
async fn refresh_channel_rooms(state: &ChatState, channel: UserId) -> ChatResult<()> {
    let streams = sqlx::query_scalar!(
        "SELECT id FROM streams WHERE user_id = $1 AND status IN ('starting', 'live', 'ending')",
        channel.0,
    )
    .fetch_all(&state.db)
    .await?;
    for s in streams {
        publish_mod(state, StreamId(s), &ModEvent::FiltersChanged).await?;
    }
    Ok(())
}
