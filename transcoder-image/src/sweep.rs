//! Stream folders no timer will remove. An ended stream's folder goes after the retention
//! period by a timer this process sets (`publisher::finish_playlists`); a worker that restarts
//! (a crash, a container restarted in its pod, keeping the pod's volume) has lost those timers,
//! and what the earlier run left would stay forever. So, every so often, the folders of streams
//! this process does not hold that nothing has written to for the retention period are removed.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use onair_domain::StreamId;

use crate::state::WorkerState;

/// How often the media folder is looked through: half the retention period, between a second
/// and a minute (a leftover goes at most that long after its retention is up).
fn every(retention: Duration) -> Duration {
    (retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// What a folder is renamed to on its way out (not a stream id: no route serves it, and the next
/// sweep removes whatever a failed removal left).
const SWEPT_PREFIX: &str = ".swept-";

pub async fn run(state: WorkerState) {
    let retention = Duration::from_secs(state.config.retention_secs);
    let period = every(retention);
    // The first look one period after start, not at once: the start-up is busy enough.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let dir = state.config.media_dir.clone();
        let stale = tokio::task::spawn_blocking(move || stale_folders(&dir, retention, SystemTime::now()))
            .await
            .unwrap_or_default();
        for (stream, path) in stale {
            if let Some(swept) = take_away(&state, stream, &path) {
                tracing::info!(stream_id = %stream, "a stream folder left by an earlier run removed");
                if let Err(e) = tokio::fs::remove_dir_all(&swept).await {
                    tracing::error!(stream_id = %stream, error = %e, "could not remove a leftover stream folder");
                }
            }
        }
        let dir = state.config.media_dir.clone();
        let _ = tokio::task::spawn_blocking(move || remove_swept(&dir)).await;
    }
}

/// Moves a stale stream folder out of the way, unless this process holds the stream, and forgets
/// its signed-only mark (nothing of it is left to serve). Under the slots lock, so a publisher
/// cannot take the stream up in between: it takes its slot before it marks its folder, so a
/// stream that is not held here has no mark of this run's making. A rename, not the removal
/// itself, happens under the lock: one quick system call.
fn take_away(state: &WorkerState, stream: StreamId, path: &Path) -> Option<PathBuf> {
    // A stream with LL-HLS media in memory is held (its folder may look untouched while it
    // plays: its media is not on disk). Checked before the slots lock, which it comes after.
    if state.ll.get(stream).is_some() {
        return None;
    }
    let slots = state.slots.lock();
    if slots.contains_key(&stream) {
        return None;
    }
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let swept = path.with_file_name(format!("{SWEPT_PREFIX}{stream}-{nanos}"));
    std::fs::rename(path, &swept).ok()?;
    state.set_signed_only(stream, false);
    drop(slots);
    Some(swept)
}

/// Removes what earlier sweeps renamed and could not remove.
fn remove_swept(media_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(media_dir) else { return };
    for e in entries.filter_map(Result::ok) {
        if e.file_name().to_str().is_some_and(|n| n.starts_with(SWEPT_PREFIX)) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The folders under `media_dir` named after a stream in which nothing (the folder, its files,
/// its renditions' folders and their files) was written to for `retention` before `now`.
fn stale_folders(media_dir: &Path, retention: Duration, now: SystemTime) -> Vec<(StreamId, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(media_dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<StreamId>().ok()?, e.path())))
        .filter(|(_, path)| path.is_dir())
        .filter(|(_, path)| {
            last_written(path).is_some_and(|at| now.duration_since(at).is_ok_and(|age| age >= retention))
        })
        .collect()
}

/// The newest modification time in `dir`, two levels down (a stream's folder holds a folder per
/// rendition). None when it cannot be read: such a folder is left alone.
fn last_written(dir: &Path) -> Option<SystemTime> {
    let mut newest = std::fs::metadata(dir).ok()?.modified().ok()?;
    for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let meta = entry.metadata().ok()?;
        newest = newest.max(meta.modified().ok()?);
        if meta.is_dir() {
            for inner in std::fs::read_dir(entry.path()).ok()?.filter_map(Result::ok) {
                newest = newest.max(inner.metadata().ok()?.modified().ok()?);
            }
        }
    }
    Some(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETENTION: Duration = Duration::from_secs(600);

    fn stream_folder(media: &Path) -> (StreamId, PathBuf) {
        let stream = StreamId(uuid::Uuid::new_v4());
        let dir = media.join(stream.to_string());
        std::fs::create_dir_all(dir.join("240p")).unwrap();
        std::fs::write(dir.join("240p/index.m3u8"), "#EXTM3U\n").unwrap();
        (stream, dir)
    }

    #[test]
    fn a_stream_folder_is_stale_once_nothing_in_it_was_written_for_the_retention_period() {
        let media = tempfile::tempdir().unwrap();
        let (stream, dir) = stream_folder(media.path());
        // Not a stream's: left alone however old (a local recordings store, say).
        std::fs::create_dir_all(media.path().join("recordings/x")).unwrap();
        std::fs::write(media.path().join("notes.txt"), "").unwrap();
        let now = SystemTime::now();
        assert!(stale_folders(media.path(), RETENTION, now).is_empty(), "written just now");
        assert!(stale_folders(media.path(), RETENTION, now + RETENTION / 2).is_empty());
        assert_eq!(
            stale_folders(media.path(), RETENTION, now + RETENTION + Duration::from_secs(1)),
            vec![(stream, dir)]
        );
    }

    #[test]
    fn a_file_written_deep_in_a_rendition_keeps_its_stream_folder() {
        let media = tempfile::tempdir().unwrap();
        let (_, dir) = stream_folder(media.path());
        let later = SystemTime::now() + RETENTION;
        // A segment written "later" (its mtime set ahead): the folder is as fresh as it is.
        let segment = std::fs::File::create(dir.join("240p/seg-9.m4s")).unwrap();
        segment.set_modified(later).unwrap();
        assert!(stale_folders(media.path(), RETENTION, later + RETENTION / 2).is_empty());
        assert_eq!(stale_folders(media.path(), RETENTION, later + RETENTION).len(), 1);
    }

    #[test]
    fn the_sweep_runs_often_enough_and_not_too_often() {
        assert_eq!(every(Duration::from_secs(600)), Duration::from_secs(60));
        assert_eq!(every(Duration::from_secs(60)), Duration::from_secs(30));
        assert_eq!(every(Duration::from_secs(1)), Duration::from_secs(1));
    }
}
