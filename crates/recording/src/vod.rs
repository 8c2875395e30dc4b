//! Writing a finished recording's VOD (design §4.4, step 3): list `rec/{stream}/`, plan it
//! (`plan::vod`), write each kept rendition's `index.m3u8` and the `master.m3u8`. Idempotent: a
//! second run over the same objects writes the same playlists. The caller decides when (the
//! recording is flushed, or its worker is gone) and keeps the row.

use futures::TryStreamExt as _;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};

use crate::layout::{Rel, Root};
use crate::plan::{self, Object, RenditionPlan, VodPlan};
use crate::playlist;
use crate::store::{self, StoreError};

/// Writes the VOD of `root` and answers its plan. A plan with no renditions means nothing was
/// recorded: nothing is written.
pub async fn write(store: &dyn ObjectStore, root: &Root) -> Result<VodPlan, StoreError> {
    let plan = plan(store, root).await?;
    write_playlists(store, root, &plan.renditions).await?;
    Ok(plan)
}

/// Lists `root` and plans its VOD, writing nothing (a clip is cut from this).
pub async fn plan(store: &dyn ObjectStore, root: &Root) -> Result<VodPlan, StoreError> {
    let prefix = store::root_path(root);
    let fail = |source| StoreError::Io { key: prefix.to_string(), source: Box::new(source) };
    let strip = format!("{prefix}/");
    let objects: Vec<Object> = store
        .list(Some(&prefix))
        .map_ok(|m| Object { key: m.location.as_ref().trim_start_matches(&strip).to_owned(), size: m.size })
        .try_collect()
        .await
        .map_err(fail)?;
    Ok(plan::vod(&objects))
}

/// Writes each rendition's VOD playlist and the master over them under `root`, whose inits
/// are already stored (a recording's, or a clip's copies). Nothing when `renditions` is empty.
pub async fn write_playlists(
    store: &dyn ObjectStore,
    root: &Root,
    renditions: &[RenditionPlan],
) -> Result<(), StoreError> {
    if renditions.is_empty() {
        return Ok(());
    }
    let mut variants = Vec::with_capacity(renditions.len());
    for r in renditions {
        let media = playlist::vod_media(&r.entries);
        put(store, root, &Rel::Playlist(r.rendition.clone()), media).await?;
        // The first init describes the rendition (a later one after an encoder restart keeps
        // the rendition's size and codecs).
        let described = match r.entries.first() {
            Some(first) => describe(store, root, &Rel::Init(r.rendition.clone(), first.name.init())).await?,
            None => (None, None),
        };
        variants.push(r.variant(described.0, described.1));
    }
    put(store, root, &Rel::Master, playlist::vod_master(&variants)).await
}

async fn put(store: &dyn ObjectStore, root: &Root, rel: &Rel, text: String) -> Result<(), StoreError> {
    let key = store::path(root, rel);
    store
        .put(&key, PutPayload::from(text.into_bytes()))
        .await
        .map(|_| ())
        .map_err(|source| StoreError::Io { key: key.to_string(), source: Box::new(source) })
}

/// Codecs and resolution from an init segment (`ftyp`+`moov`), as the live master gives them.
async fn describe(
    store: &dyn ObjectStore,
    root: &Root,
    init: &Rel,
) -> Result<(Option<String>, Option<(u32, u32)>), StoreError> {
    let key = store::path(root, init);
    let io = |source| StoreError::Io { key: key.to_string(), source: Box::new(source) };
    let bytes = match store.get(&key).await {
        Ok(got) => got.bytes().await.map_err(io)?,
        // Lost with its worker's queue: the playlist plays without CODECS and RESOLUTION.
        Err(object_store::Error::NotFound { .. }) => return Ok((None, None)),
        Err(e) => return Err(io(e)),
    };
    let events = onair_llhls::fmp4::Reader::new(onair_llhls::fmp4::DEFAULT_MAX_BOX).push(&bytes).unwrap_or_default();
    Ok(events
        .into_iter()
        .find_map(|e| match e {
            onair_llhls::fmp4::Event::Init { tracks, .. } => {
                let codecs = Some(onair_llhls::playlist::codecs(&tracks)).filter(|c| !c.is_empty());
                let resolution = tracks.iter().find_map(|t| t.resolution).map(|(w, h)| (u32::from(w), u32::from(h)));
                Some((codecs, resolution))
            }
            onair_llhls::fmp4::Event::Fragment { .. } => None,
        })
        .unwrap_or((None, None)))
}
