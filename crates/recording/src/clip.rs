//! Cutting a clip (design §5): the segments a [`ClipPlan`] picked, and their inits, copied
//! server-side (S3 CopyObject; a local copy on disk) from the recording to `clips/{id}/` under
//! the same names, then VOD playlists over the copies. Nothing is re-encoded, and the clip
//! references nothing of the recording, so it outlives the VOD.

use std::collections::BTreeSet;

use futures::{StreamExt as _, TryStreamExt as _};
use object_store::{ObjectStore, ObjectStoreExt as _};

use crate::layout::{Rel, Root};
use crate::plan::ClipPlan;
use crate::store::{self, StoreError};
use crate::vod;

/// Copies in flight at once: CopyObject is one short request each.
const PARALLEL_COPIES: usize = 16;

/// Copies what `plan` picked from `source` to `clip` and writes the clip's playlists.
/// Returns the objects copied. A failure leaves a partial copy: the caller deletes `clip`.
pub async fn cut(store: &dyn ObjectStore, source: &Root, clip: &Root, plan: &ClipPlan) -> Result<usize, StoreError> {
    let mut copies: BTreeSet<Rel> = BTreeSet::new();
    for r in &plan.renditions {
        for e in &r.entries {
            copies.insert(Rel::Init(r.rendition.clone(), e.name.init()));
            copies.insert(Rel::Segment(r.rendition.clone(), e.name));
        }
    }
    let count = copies.len();
    futures::stream::iter(copies)
        .map(|rel| async move {
            let (from, to) = (store::path(source, &rel), store::path(clip, &rel));
            match store.copy(&from, &to).await {
                Ok(()) => Ok(()),
                // An init lost with its worker's queue: the rendition plays without it as the
                // VOD does (a segment the plan listed is there).
                Err(object_store::Error::NotFound { .. }) if matches!(rel, Rel::Init(..)) => Ok(()),
                Err(source) => Err(StoreError::Io { key: from.to_string(), source: Box::new(source) }),
            }
        })
        .buffer_unordered(PARALLEL_COPIES)
        .try_collect::<Vec<()>>()
        .await?;
    vod::write_playlists(store, clip, &plan.renditions).await?;
    Ok(count)
}
