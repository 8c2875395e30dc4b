//! Who may play a channel's broadcasts (issue 17): the rule its `playback_access` states,
//! applied alike to live playback, VODs, clips and cutting clips.

use onair_domain::{PlaybackAccess, UserId};

use crate::auth::{AuthUser, OptionalUser};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

impl AppState {
    /// Whether `user` (`None`: nobody signed in) may play what `channel` broadcast under
    /// `access`: anyone for `public` and `signed` (signed links are handed to anyone), the
    /// channel's followers, the streamer and admins for `followers`.
    pub(crate) async fn may_play(
        &self,
        access: PlaybackAccess,
        channel: UserId,
        user: Option<&AuthUser>,
    ) -> ApiResult<bool> {
        Ok(match (access, user) {
            (PlaybackAccess::Public | PlaybackAccess::Signed, _) => true,
            (PlaybackAccess::Followers, None) => false,
            (PlaybackAccess::Followers, Some(u)) => {
                u.0.is_owner_or_admin(channel) || self.follows(u.id(), channel).await?
            }
        })
    }

    /// As [`Self::may_play`], for a request that must be refused when not: 401 (with why there
    /// is no caller) when nobody is signed in, 403 for others.
    pub(crate) async fn require_play(
        &self,
        access: PlaybackAccess,
        channel: UserId,
        user: OptionalUser,
    ) -> ApiResult<()> {
        if access != PlaybackAccess::Followers {
            return Ok(());
        }
        let user = user.require()?;
        self.require_play_as(access, channel, &user).await
    }

    /// As [`Self::require_play`], for a signed-in caller: 403 when they may not.
    pub(crate) async fn require_play_as(
        &self,
        access: PlaybackAccess,
        channel: UserId,
        user: &AuthUser,
    ) -> ApiResult<()> {
        if self.may_play(access, channel, Some(user)).await? {
            Ok(())
        } else {
            Err(ApiError::forbidden("this channel's broadcasts are for its followers only"))
        }
    }
}

/// A stored `playback_access`; an unknown value (the database's check forbids one) is the
/// strictest, never the most open.
pub(crate) fn stored(access: &str) -> PlaybackAccess {
    PlaybackAccess::parse(access).unwrap_or(PlaybackAccess::Followers)
}

/// Who asks for a channel's recorded media: what a signed link is made out to (the signed-in
/// user, or a fresh id for someone who is not), and whether they may play the channel's
/// followers-only broadcasts (asked once, and only when there is one).
pub(crate) struct Viewer {
    pub id: String,
    followers: bool,
}

impl Viewer {
    pub async fn of(
        state: &AppState,
        user: Option<&AuthUser>,
        channel: UserId,
        accesses: impl IntoIterator<Item = PlaybackAccess>,
    ) -> ApiResult<Self> {
        let followers = if accesses.into_iter().any(|a| a == PlaybackAccess::Followers) {
            state.may_play(PlaybackAccess::Followers, channel, user).await?
        } else {
            false
        };
        let id = user.map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), |u| u.id().to_string());
        Ok(Self { id, followers })
    }

    /// Whether they may play what was broadcast under `access`.
    pub fn may(&self, access: PlaybackAccess) -> bool {
        access != PlaybackAccess::Followers || self.followers
    }
}

/// An answer holding links made out to its caller: no shared cache may keep it.
pub(crate) type PerCaller<T> = ([(http::HeaderName, &'static str); 1], onair_web::Json<T>);

pub(crate) fn per_caller<T>(body: T) -> PerCaller<T> {
    ([(http::header::CACHE_CONTROL, "private, no-store")], onair_web::Json(body))
}
