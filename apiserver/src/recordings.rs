//! Recordings on the apiserver's side (issue 15, design §4.4 and §6): the media worker's reports,
//! making a broadcast that ended a VOD, and deleting what retention or a streamer removes.
//!
//! The steps are idempotent and leased in Postgres, so every replica can run the loops and a
//! crash anywhere only repeats a step: `finalize_step` writes the same playlists again,
//! `sweep_step` deletes objects that may already be gone.

use std::time::Duration;

use axum::extract::State;
use chrono::{DateTime, Utc};
use onair_domain::contracts::media::{RecordingState, UploadState};
use onair_recording::object_store::ObjectStoreExt as _;
use onair_recording::object_store::path::Path as StorePath;
use onair_recording::{Rel, Root};
use onair_web::{Json, Path};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Internal;
use crate::error::{ApiError, ApiResult};
use crate::recorded::{ReasonLabels, Recordings, ResultLabels};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(report_recording))
}

/// How long one replica holds a recording it is finalizing, or a prefix it is deleting, before
/// another may take it over (the first one died).
const FINALIZE_LEASE_SECS: f64 = 300.0;
const SWEEP_LEASE_SECS: f64 = 600.0;
/// Rows each step takes at a time: a step stays short, the loop comes back.
const FINALIZE_BATCH: i64 = 10;
const EXPIRE_BATCH: i64 = 200;
const SWEEP_BATCH: i64 = 10;

/// The media worker's view of a stream's recording, every few seconds while it records and
/// once more when everything is stored (`flushed`). A stream with no recording row (its channel
/// does not record, or this server has no store) answers 404; the worker then stops asking.
#[utoipa::path(post, path = "/internal/streams/{stream_id}/recording", tag = "internal", request_body = RecordingState,
    params(("stream_id" = Uuid, Path)), security(("internal" = [])),
    responses((status = 204), (status = 400, body = onair_web::ErrorBody), (status = 401, body = onair_web::ErrorBody),
              (status = 404, body = onair_web::ErrorBody)))]
async fn report_recording(
    State(state): State<AppState>,
    _: Internal,
    Path(stream_id): Path<Uuid>,
    Json(report): Json<RecordingState>,
) -> ApiResult<http::StatusCode> {
    let count = |field: &'static str, v: u64| {
        i64::try_from(v).map_err(|_| onair_domain::ValidationError::new(field, "out of range"))
    };
    let upload_state = match report.state {
        UploadState::Ok => "ok",
        UploadState::Behind => "behind",
        UploadState::Failing => "failing",
    };
    let updated = sqlx::query!(
        "UPDATE recordings SET upload_state = $2, lag_ms = $3, uploaded_segments = $4, dropped_segments = $5,
            uploaded_bytes = $6, reported_at = now(),
            flushed_at = CASE WHEN $7 THEN coalesce(flushed_at, now()) ELSE flushed_at END
         WHERE stream_id = $1",
        stream_id,
        upload_state,
        count("lagMs", report.lag_ms)?,
        count("uploadedSegments", report.uploaded_segments)?,
        count("droppedSegments", report.dropped_segments)?,
        count("uploadedBytes", report.uploaded_bytes)?,
        report.flushed,
    )
    .execute(&state.db)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(ApiError::NotFound("recording"));
    }
    if report.flushed {
        tracing::info!(stream_id = %stream_id, segments = report.uploaded_segments, bytes = report.uploaded_bytes,
            dropped = report.dropped_segments, "recording stored by its worker");
    }
    Ok(http::StatusCode::NO_CONTENT)
}

/// What finalizing one recording came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finalized {
    /// A VOD was written and its row made.
    Ready(Uuid),
    /// Nothing was recorded: the row is gone and its prefix queued for deletion.
    Empty,
}

impl AppState {
    /// The recordings store, when this server has one.
    pub fn recordings(&self) -> Option<&Recordings> {
        self.0.recordings.as_deref()
    }

    /// Make a recording row for a stream that starts, when its channel records and this server
    /// has a store. Part of the start's transaction.
    pub(crate) async fn begin_recording(
        &self,
        tx: &mut sqlx::PgConnection,
        stream: Uuid,
        user: Uuid,
    ) -> ApiResult<bool> {
        if self.recordings().is_none() {
            return Ok(false);
        }
        let made = sqlx::query!(
            "INSERT INTO recordings (stream_id, user_id, prefix, renditions)
             SELECT $1, id, $3, record_renditions FROM users WHERE id = $2 AND record_broadcasts",
            stream,
            user,
            Root::Recording(stream).to_string(),
        )
        .execute(tx)
        .await?;
        Ok(made.rows_affected() == 1)
    }

    /// Make VODs of the recordings whose broadcast is over and whose worker stored everything
    /// (or went quiet for longer than the flush grace: what it stored is all there will be).
    /// Returns what each one it took came to.
    pub async fn finalize_step(&self) -> ApiResult<Vec<(Uuid, Finalized)>> {
        let Some(recordings) = self.recordings() else { return Ok(Vec::new()) };
        let grace = self.config.recording_flush_grace_secs as f64;
        let picked = sqlx::query!(
            r#"UPDATE recordings r SET state = 'finalizing', lease_until = now() + make_interval(secs => $2)
               FROM streams s JOIN users u ON u.id = s.user_id
               WHERE s.id = r.stream_id AND r.stream_id IN (
                   SELECT r2.stream_id FROM recordings r2 JOIN streams s2 ON s2.id = r2.stream_id
                   WHERE r2.state <> 'ready' AND r2.lease_until < now() AND s2.status IN ('ended', 'failed')
                     AND (r2.flushed_at IS NOT NULL
                          OR coalesce(s2.ended_at, s2.created_at) + make_interval(secs => $1) < now())
                   ORDER BY s2.ended_at LIMIT $3 FOR UPDATE OF r2 SKIP LOCKED)
               RETURNING r.stream_id, r.user_id, u.tier, coalesce(s.ended_at, now()) AS "ended_at!""#,
            grace,
            FINALIZE_LEASE_SECS,
            FINALIZE_BATCH,
        )
        .fetch_all(&self.db)
        .await?;
        let mut done = Vec::with_capacity(picked.len());
        for row in picked {
            let partner = row.tier == onair_domain::Tier::Partner.as_str();
            let days = if partner { self.config.vod_retention_days_partner } else { self.config.vod_retention_days };
            let expires_at = row.ended_at + chrono::Duration::days(i64::from(days));
            match self.finalize(recordings, row.stream_id, row.user_id, expires_at).await {
                Ok(f) => {
                    let result = if matches!(f, Finalized::Empty) { "empty" } else { "ready" };
                    recordings.metrics.finalized.get_or_create(&ResultLabels { result }).inc();
                    done.push((row.stream_id, f));
                }
                Err(e) => {
                    // The lease runs out and a later step tries again.
                    recordings.metrics.finalized.get_or_create(&ResultLabels { result: "failed" }).inc();
                    tracing::warn!(stream_id = %row.stream_id, error = %e, "making the VOD failed; retried after the lease");
                }
            }
        }
        Ok(done)
    }

    async fn finalize(
        &self,
        recordings: &Recordings,
        stream: Uuid,
        user: Uuid,
        expires_at: DateTime<Utc>,
    ) -> ApiResult<Finalized> {
        let root = Root::Recording(stream);
        let store = recordings.store.as_ref();
        let plan = onair_recording::vod::write(store, &root).await.map_err(|e| ApiError::Internal(e.into()))?;
        if plan.renditions.is_empty() {
            // The trigger queues the prefix: whatever stray object is there goes too.
            sqlx::query!("DELETE FROM recordings WHERE stream_id = $1", stream).execute(&self.db).await?;
            tracing::info!(stream_id = %stream, "nothing was recorded: no VOD");
            return Ok(Finalized::Empty);
        }
        if !plan.unknown.is_empty() {
            tracing::info!(stream_id = %stream, unknown = ?plan.unknown, "objects in the recording that are not media");
        }
        let has_thumbnail = store.head(&onair_recording::store::path(&root, &Rel::Thumb)).await.is_ok();
        let recorded_at = plan
            .recorded_at_ms
            .and_then(|ms| DateTime::from_timestamp_millis(i64::try_from(ms).ok()?))
            .unwrap_or_else(Utc::now);
        let renditions: Vec<String> = plan.renditions.iter().map(|r| r.rendition.to_string()).collect();
        let duration_ms = i64::try_from(plan.duration.as_millis()).unwrap_or(i64::MAX);
        let bytes = i64::try_from(plan.bytes).unwrap_or(i64::MAX);
        let discontinuities = i32::try_from(plan.discontinuities).unwrap_or(i32::MAX);
        let mut tx = self.db.begin().await?;
        // Renditions shed for most of the broadcast are not in the VOD: their objects go.
        for r in &plan.excluded {
            sqlx::query!(
                "INSERT INTO storage_deletions (prefix, reason) VALUES ($1, 'rendition_not_kept')
                 ON CONFLICT (prefix) DO NOTHING",
                format!("{root}/{r}"),
            )
            .execute(&mut *tx)
            .await?;
        }
        let id = sqlx::query_scalar!(
            "INSERT INTO vods (id, stream_id, user_id, duration_ms, renditions, discontinuities, bytes, has_thumbnail,
                recorded_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (stream_id) DO UPDATE SET duration_ms = EXCLUDED.duration_ms,
                renditions = EXCLUDED.renditions, discontinuities = EXCLUDED.discontinuities,
                bytes = EXCLUDED.bytes, has_thumbnail = EXCLUDED.has_thumbnail, recorded_at = EXCLUDED.recorded_at
             RETURNING id",
            Uuid::now_v7(),
            stream,
            user,
            duration_ms,
            &renditions,
            discontinuities,
            bytes,
            has_thumbnail,
            recorded_at,
            expires_at,
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!("UPDATE recordings SET state = 'ready', lease_until = '-infinity' WHERE stream_id = $1", stream)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(stream_id = %stream, vod_id = %id, duration_ms, ?renditions, discontinuities, bytes, "VOD ready");
        Ok(Finalized::Ready(id))
    }

    /// Delete the VODs and clips past their retention (rows now; their objects through the queue).
    pub async fn expire_step(&self) -> ApiResult<u64> {
        if self.recordings().is_none() {
            return Ok(0);
        }
        let mut tx = self.db.begin().await?;
        let vods = sqlx::query!(
            "SELECT id, stream_id FROM vods WHERE expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED",
            EXPIRE_BATCH,
        )
        .fetch_all(&mut *tx)
        .await?;
        let streams: Vec<Uuid> = vods.iter().map(|v| v.stream_id).collect();
        // The recording rows; their VODs go with them and the trigger queues the objects.
        sqlx::query!("DELETE FROM recordings WHERE stream_id = ANY($1)", &streams).execute(&mut *tx).await?;
        let clips = sqlx::query_scalar!(
            "DELETE FROM clips WHERE id IN (
                SELECT id FROM clips WHERE expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id",
            EXPIRE_BATCH,
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        // Stop playing here at once (other replicas within the lookup's TTL).
        for v in &vods {
            self.playback_lookups.invalidate(&(crate::recorded::Kind::Vod, v.id)).await;
        }
        for c in &clips {
            self.playback_lookups.invalidate(&(crate::recorded::Kind::Clip, *c)).await;
        }
        let (expired, clips) = (vods.len() as u64, clips.len() as u64);
        if expired + clips > 0 {
            tracing::info!(vods = expired, clips, "expired recordings deleted");
        }
        Ok(expired + clips)
    }

    /// Delete the objects of queued prefixes. Each prefix is swept twice: now, and once more
    /// after the flush grace, for a segment a worker still storing put there after the first.
    /// Returns the objects this call deleted.
    pub async fn sweep_step(&self) -> ApiResult<u64> {
        let Some(recordings) = self.recordings() else { return Ok(0) };
        let due = sqlx::query!(
            "UPDATE storage_deletions SET lease_until = now() + make_interval(secs => $1)
             WHERE prefix IN (SELECT prefix FROM storage_deletions WHERE not_before <= now() AND lease_until < now()
                              ORDER BY not_before LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING prefix, reason",
            SWEEP_LEASE_SECS,
            SWEEP_BATCH,
        )
        .fetch_all(&self.db)
        .await?;
        let grace = self.config.recording_flush_grace_secs as f64;
        let mut total = 0;
        for row in due {
            let prefix = StorePath::from(row.prefix.as_str());
            let deleted = match onair_recording::delete_prefix(recordings.store.as_ref(), &prefix).await {
                Ok(n) => n,
                Err(e) => {
                    // The lease runs out and a later sweep tries again.
                    tracing::warn!(prefix = %row.prefix, error = %e, "deleting recorded objects failed; retried later");
                    continue;
                }
            };
            total += deleted;
            recordings
                .metrics
                .objects_deleted
                .get_or_create(&ReasonLabels { reason: row.reason.clone() })
                .inc_by(deleted);
            // The last sweep removes the row; an earlier one dates the next.
            let last = sqlx::query!("DELETE FROM storage_deletions WHERE prefix = $1 AND sweeps_left <= 1", row.prefix)
                .execute(&self.db)
                .await?
                .rows_affected();
            if last == 0 {
                sqlx::query!(
                    "UPDATE storage_deletions SET sweeps_left = sweeps_left - 1, deleted_objects = deleted_objects + $2,
                        not_before = now() + make_interval(secs => $3), lease_until = '-infinity'
                     WHERE prefix = $1",
                    row.prefix,
                    i64::try_from(deleted).unwrap_or(i64::MAX),
                    grace,
                )
                .execute(&self.db)
                .await?;
            }
            tracing::info!(prefix = %row.prefix, reason = %row.reason, deleted, "recorded objects deleted");
        }
        Ok(total)
    }

    /// Refresh `recordings_bytes_stored` from the rows.
    pub async fn measure_recordings(&self) -> ApiResult<()> {
        let Some(recordings) = self.recordings() else { return Ok(()) };
        let bytes = sqlx::query_scalar!(
            r#"SELECT (coalesce((SELECT sum(bytes) FROM vods), 0) + coalesce((SELECT sum(bytes) FROM clips), 0)
                + coalesce((SELECT sum(uploaded_bytes) FROM recordings WHERE state <> 'ready'), 0))::bigint AS "bytes!""#
        )
        .fetch_one(&self.db)
        .await?;
        recordings.metrics.bytes_stored.set(bytes);
        Ok(())
    }
}

/// Finalizing and retention, every interval, until `stop`.
pub async fn recordings_loop(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    if state.recordings().is_none() {
        return;
    }
    let mut finalize = tokio::time::interval(Duration::from_secs(state.config.finalize_interval_secs.max(1)));
    let mut retention = tokio::time::interval(Duration::from_secs(state.config.retention_interval_secs.max(1)));
    finalize.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = finalize.tick() => {
                if let Err(e) = state.finalize_step().await {
                    tracing::warn!(error = %e, "finalizing recordings failed");
                }
            }
            _ = retention.tick() => {
                let run = async {
                    state.expire_step().await?;
                    state.sweep_step().await?;
                    state.measure_recordings().await
                };
                if let Err(e) = run.await {
                    tracing::warn!(error = %e, "recordings retention failed");
                }
            }
            _ = stop.changed() => return,
        }
    }
}
