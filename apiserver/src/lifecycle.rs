//! A stream's lifecycle: the one place that changes `streams.status`.
//!
//! Every writer reports here: the media worker and the operator through
//! `POST /internal/streams/{id}/status`, the streamer's stop, and a start whose media could not
//! be had. A stream is created `starting` (the column's default) and then moves only along
//! [`transition`]'s table; `ended` and `failed` are final.

use onair_domain::{StreamId, StreamStatus, UserId};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Why a status change was asked for (logs only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The media worker (or the operator on its behalf) reported what the media does.
    Media,
    /// The streamer or an admin pressed stop.
    Stopped,
    /// The orchestrator could not start the media.
    StartFailed,
}

/// What a permitted report does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The stream is already in that state (a repeated report): nothing to write.
    Unchanged,
    /// Write the new state.
    Change,
}

/// A report the lifecycle refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The stream is over (`ended` or `failed`); nothing brings it back.
    Over { from: StreamStatus },
    /// The stream is finishing (`ending`); it can only end or fail now.
    Backwards { from: StreamStatus, to: StreamStatus },
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Over { .. } => ApiError::conflict("stream_not_active", "this stream has already ended"),
            Refused::Backwards { from, to } => {
                ApiError::conflict("invalid_transition", format!("a stream that is {from} cannot become {to}"))
            }
        }
    }
}

/// The state machine. Allowed:
/// - `starting` → `live` (the publisher's media flows), `ending`, `ended`, `failed`;
/// - `live` → `starting` (publisher gone, within the reconnect grace), `ending`, `ended`, `failed`;
/// - `ending` → `ended`, `failed`;
/// - any active state to itself (a repeated report: [`Step::Unchanged`]).
///
/// Refused: anything out of `ended` or `failed`, and `ending` back to `starting` or `live`.
pub fn transition(from: StreamStatus, to: StreamStatus) -> Result<Step, Refused> {
    use StreamStatus::{Ended, Ending, Failed, Live, Starting};
    match (from, to) {
        (Ended | Failed, _) => Err(Refused::Over { from }),
        (Ending, Starting | Live) => Err(Refused::Backwards { from, to }),
        _ if from == to => Ok(Step::Unchanged),
        (Starting | Live | Ending, _) => Ok(Step::Change),
    }
}

/// A status change that was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub stream_id: StreamId,
    pub user_id: UserId,
    pub from: StreamStatus,
    pub to: StreamStatus,
}

/// The lifecycle event name for a stream entering `to` (see `events::LifecycleEvent`).
fn event_name(to: StreamStatus) -> &'static str {
    to.as_str()
}

impl AppState {
    /// Move stream `id` to `to` if the lifecycle allows it from where it is now: the row is
    /// locked while deciding, so a stop and a late media report cannot both win. On a change the
    /// cached view is dropped and a lifecycle event published. 404 for an unknown stream, 409
    /// for a refused transition.
    pub(crate) async fn set_stream_status(
        &self,
        id: StreamId,
        to: StreamStatus,
        cause: Cause,
    ) -> ApiResult<Option<Change>> {
        let mut tx = self.db.begin().await?;
        let row = sqlx::query!("SELECT status, user_id FROM streams WHERE id = $1 FOR UPDATE", id.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(ApiError::NotFound("stream"))?;
        // An unknown value cannot be written (the column has a CHECK); read it as the final state.
        let from = StreamStatus::parse(&row.status).unwrap_or(StreamStatus::Failed);
        if transition(from, to)? == Step::Unchanged {
            return Ok(None);
        }
        let over = !to.is_active();
        sqlx::query!(
            "UPDATE streams SET status = $2,
                started_at = CASE WHEN $2 = 'live' THEN coalesce(started_at, now()) ELSE started_at END,
                ended_at = CASE WHEN $3 THEN now() ELSE ended_at END,
                current_viewers = CASE WHEN $3 THEN 0 ELSE current_viewers END
             WHERE id = $1",
            id.0,
            to.as_str(),
            over,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let change = Change { stream_id: id, user_id: UserId(row.user_id), from, to };
        self.invalidate_stream(id).await;
        self.publish_lifecycle(event_name(to), id, change.user_id).await;
        tracing::info!(stream_id = %id, from = %from, to = %to, cause = ?cause, "stream status changed");
        Ok(Some(change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StreamStatus::{Ended, Ending, Failed, Live, Starting};

    #[test]
    fn allowed_transitions() {
        for (from, to) in [
            (Starting, Live),
            (Starting, Ending),
            (Starting, Ended),
            (Starting, Failed),
            (Live, Starting),
            (Live, Ending),
            (Live, Ended),
            (Live, Failed),
            (Ending, Ended),
            (Ending, Failed),
        ] {
            assert_eq!(transition(from, to), Ok(Step::Change), "{from} -> {to}");
        }
    }

    #[test]
    fn repeated_reports_change_nothing() {
        for s in [Starting, Live, Ending] {
            assert_eq!(transition(s, s), Ok(Step::Unchanged), "{s}");
        }
    }

    #[test]
    fn a_stream_that_is_over_stays_over() {
        for from in [Ended, Failed] {
            for to in StreamStatus::ALL {
                assert_eq!(transition(from, *to), Err(Refused::Over { from }), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn a_finishing_stream_does_not_come_back() {
        for to in [Starting, Live] {
            assert_eq!(transition(Ending, to), Err(Refused::Backwards { from: Ending, to }));
        }
    }

    #[test]
    fn refusals_are_conflicts() {
        let e: ApiError = Refused::Over { from: Ended }.into();
        assert!(matches!(e, ApiError::Conflict { .. }), "{e:?}");
    }
}
