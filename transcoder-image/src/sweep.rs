//! Stream folders no timer will remove. An ended stream's folder goes after the retention
//! period by a timer this process sets (`publisher::finish_playlists`); a worker that restarts
//! (a crash, a new pod on the same volume) has lost those timers, and what the earlier run left
//! would stay forever. So, every so often, the folders of streams this process does not hold
//! that nothing has written to for the retention period are removed.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use onair_domain::StreamId;

use crate::state::WorkerState;

/// How often the media folder is looked through: half the retention period, between a second
/// and a minute (a leftover goes at most that long after its retention is up).
fn every(retention: Duration) -> Duration {
    (retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

pub async fn run(state: WorkerState) {
    let retention = Duration::from_secs(state.config.retention_secs);
    let period = every(retention);
    // Not at once: a folder this process is about to take up again (a publisher reconnecting
    // after the restart) gets a period's grace on top of its retention.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let dir = state.config.media_dir.clone();
        let stale = tokio::task::spawn_blocking(move || stale_folders(&dir, retention, SystemTime::now()))
            .await
            .unwrap_or_default();
        for (stream, path) in stale {
            // A stream this process holds is its own timer's to remove (its LL-HLS media lives in
            // memory: the folder may look untouched while it plays).
            if state.slots.lock().contains_key(&stream) || state.ll.get(stream).is_some() {
                continue;
            }
            match tokio::fs::remove_dir_all(&path).await {
                Ok(()) => tracing::info!(stream_id = %stream, "a stream folder left by an earlier run removed"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(stream_id = %stream, error = %e, "could not remove a leftover stream folder");
                    continue;
                }
            }
            // Nothing of it is left to serve: its plain paths need no refusing any more.
            state.set_signed_only(stream, false);
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
