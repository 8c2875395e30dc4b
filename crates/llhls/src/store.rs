//! The per-stream store a server reads: renditions by name, each a [`Packager`] behind a lock and
//! a [`Live`] handle. Layout (relative to the stream): `index.m3u8` (master, see
//! [`Store::master`]), `{rendition}/index.m3u8`, `{rendition}/init.mp4`,
//! `{rendition}/seg{msn}.m4s`, `{rendition}/seg{msn}.{part}.m4s`.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::blocking::{self, Live, LiveSender, Pending, Position, Request, WaitError};
use crate::fmp4;
use crate::packager::{Config, Packager, Segment, Stats};
use crate::playlist::{self, Form, RenditionReport, Variant};

/// A segment as it completed, for whoever keeps them (the recorder): its rendition, the segment
/// (its parts are shared `Bytes`) and the init segment it needs.
#[derive(Debug, Clone)]
pub struct CompletedSegment {
    pub rendition: Arc<str>,
    pub segment: Segment,
    pub init: Bytes,
}

/// Told of every segment a store's renditions complete, in order per rendition. Called under the
/// rendition's write lock, on the writer's task: it must not block (queue and return) and must
/// not call back into the store.
pub trait SegmentSink: Send + Sync + std::fmt::Debug {
    fn completed(&self, segment: CompletedSegment);
}

/// A rendition-relative URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Playlist,
    /// An init segment by version (`init.mp4` is 0, `init-{n}.mp4` after a change).
    Init(u32),
    Segment(u64),
    Part(u64, u64),
}

impl Resource {
    pub fn parse(uri: &str) -> Option<Self> {
        let uri = uri.split('?').next().unwrap_or_default();
        match uri {
            "index.m3u8" => return Some(Self::Playlist),
            playlist::INIT_URI => return Some(Self::Init(0)),
            _ => {}
        }
        fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
        }
        if let Some(version) = uri.strip_prefix("init-").and_then(|r| r.strip_suffix(".mp4")) {
            return number::<u32>(version).filter(|v| *v > 0).map(Self::Init);
        }
        let stem = uri.strip_prefix("seg")?.strip_suffix(".m4s")?;
        match stem.split_once('.') {
            None => Some(Self::Segment(number(stem)?)),
            Some((msn, part)) => Some(Self::Part(number(msn)?, number(part)?)),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Playlist => "application/vnd.apple.mpegurl",
            Self::Init(_) | Self::Segment(_) | Self::Part(..) => "video/mp4",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("not found")]
    NotFound,
    #[error("timed out waiting for it")]
    Timeout,
}

impl FetchError {
    pub fn status(self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::Timeout => 503,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlaylistError {
    #[error("no such rendition")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("timed out waiting for the requested part")]
    Timeout,
}

impl PlaylistError {
    pub fn status(self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::BadRequest(_) => 400,
            Self::Timeout => 503,
        }
    }
}

#[derive(Debug)]
struct Rendition {
    name: Arc<str>,
    sink: Option<Arc<dyn SegmentSink>>,
    packager: RwLock<Packager>,
    tx: LiveSender,
    live: Live,
    /// Bumped by each new writer: only the newest may write (an old encoder's last bytes, or a
    /// second pod, must not interleave with it).
    generation: std::sync::atomic::AtomicU64,
}

impl Rendition {
    fn read<T>(&self, f: impl FnOnce(&Packager) -> T) -> T {
        f(&self.packager.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write(&self, f: impl FnOnce(&mut Packager)) {
        let position = {
            let mut p = self.packager.write().unwrap_or_else(PoisonError::into_inner);
            f(&mut p);
            // Under the lock: two writers racing (an old encoder's last bytes, the stream's end)
            // must hand segments over in the order they completed. Sinks only queue.
            if let Some(sink) = &self.sink {
                for (segment, init) in p.take_completed() {
                    sink.completed(CompletedSegment { rendition: self.name.clone(), segment, init });
                }
            }
            p.position()
        };
        self.tx.publish(position);
    }

    /// 3 × target duration (the spec's limit on how long a blocking request is held).
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.read(Packager::target_duration).saturating_mul(3))
    }

    fn lookup(&self, resource: Resource) -> Option<Bytes> {
        self.read(|p| match resource {
            Resource::Playlist => None,
            Resource::Init(version) => p.init_version(version).cloned(),
            Resource::Segment(msn) => p.segment(msn).filter(|s| s.complete).map(|s| s.bytes()),
            Resource::Part(msn, part) => p.part(msn, part).map(|p| p.bytes.clone()),
        })
    }
}

/// Cheap to clone; share one per stream between the writer tasks and the HTTP handlers.
#[derive(Debug, Clone, Default)]
pub struct Store {
    config: Config,
    renditions: Arc<RwLock<BTreeMap<String, Arc<Rendition>>>>,
    sink: Option<Arc<dyn SegmentSink>>,
}

impl Store {
    pub fn new(config: Config) -> Self {
        Self { config, renditions: Arc::default(), sink: None }
    }

    /// A store that tells `sink` of every segment its renditions complete.
    pub fn with_sink(config: Config, sink: Arc<dyn SegmentSink>) -> Self {
        Self { config, renditions: Arc::default(), sink: Some(sink) }
    }

    /// A writer for `rendition`: a new playlist, or (an encoder restarted) the same playlist
    /// continued after a discontinuity, so players keep their place and media sequence numbers
    /// never go backwards.
    pub fn writer(&self, rendition: &str) -> Writer {
        let existing = self.rendition(rendition);
        let r = match existing {
            Some(r) => {
                r.write(Packager::restart);
                r
            }
            None => {
                let (tx, live) = Live::channel();
                let mut packager = Packager::new(self.config.clone());
                if self.sink.is_some() {
                    packager.collect_completed();
                }
                let r = Arc::new(Rendition {
                    name: rendition.into(),
                    sink: self.sink.clone(),
                    packager: RwLock::new(packager),
                    tx,
                    live,
                    generation: Default::default(),
                });
                self.map_mut().entry(rendition.to_owned()).or_insert(r).clone()
            }
        };
        let generation = r.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1;
        Writer { reader: fmp4::Reader::new(self.config.max_box), rendition: r, generation }
    }

    pub fn remove(&self, rendition: &str) {
        self.map_mut().remove(rendition);
    }

    /// Ends one rendition (`#EXT-X-ENDLIST`; waiting requests answer): it was taken away, or
    /// its stream ended. A later writer continues it after a discontinuity.
    pub fn end(&self, rendition: &str) {
        if let Some(r) = self.rendition(rendition) {
            r.write(Packager::end);
        }
    }

    /// Ends every rendition: the stream is over.
    pub fn end_all(&self) {
        for r in self.map().values() {
            r.write(Packager::end);
        }
    }

    pub fn renditions(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Rendition>>> {
        self.renditions.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn map_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Rendition>>> {
        self.renditions.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn rendition(&self, name: &str) -> Option<Arc<Rendition>> {
        self.map().get(name).cloned()
    }

    pub fn live(&self, rendition: &str) -> Option<Live> {
        self.rendition(rendition).map(|r| r.live.clone())
    }

    pub fn stats(&self, rendition: &str) -> Option<Stats> {
        self.rendition(rendition).map(|r| r.read(Packager::stats))
    }

    /// Init, complete segment or part bytes as they are now (no waiting).
    pub fn get(&self, rendition: &str, uri: &str) -> Option<Bytes> {
        self.rendition(rendition)?.lookup(Resource::parse(uri)?)
    }

    /// Like [`Store::get`], but a part or segment that is the next to come (the preload hint)
    /// is waited for, up to 3 target durations; one further ahead or gone is `NotFound`.
    pub async fn fetch(&self, rendition: &str, uri: &str) -> Result<Bytes, FetchError> {
        let r = self.rendition(rendition).ok_or(FetchError::NotFound)?;
        let resource = Resource::parse(uri).ok_or(FetchError::NotFound)?;
        let want = match resource {
            Resource::Playlist => return Err(FetchError::NotFound),
            Resource::Init(_) => None,
            Resource::Segment(msn) => Some((msn, None)),
            Resource::Part(msn, part) => Some((msn, Some(part))),
        };
        let first_msn = self.config.first_msn;
        let found = r
            .live
            .wait_until(r.timeout(), |pos| {
                if let Some(bytes) = r.lookup(resource) {
                    return Some(Ok(Some(bytes)));
                }
                match want {
                    // The init segment comes before the first part.
                    None => pos.is_some().then_some(Ok(None)),
                    Some((msn, part)) => match blocking::pending(pos, first_msn, msn, part) {
                        Pending::Wait => None,
                        Pending::NotFound => Some(Ok(None)),
                    },
                }
            })
            .await;
        match found {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) | Err(WaitError::Gone | WaitError::BadRequest(_)) => Err(FetchError::NotFound),
            Err(WaitError::Timeout) => Err(FetchError::Timeout),
        }
    }

    /// A rendition's media playlist for a request's query string (`_HLS_msn`, `_HLS_part`,
    /// `_HLS_skip`), blocking as the spec says in the LL form. Before the first part it waits.
    pub async fn playlist(&self, rendition: &str, query: Option<&str>, form: Form) -> Result<String, PlaylistError> {
        let r = self.rendition(rendition).ok_or(PlaylistError::NotFound)?;
        let mut req = Request::parse(query).map_err(PlaylistError::BadRequest)?;
        if form == Form::Standard {
            req = Request::default();
        }
        let limit = blocking::advance_part_limit(self.config.part_target);
        let waited = r
            .live
            .wait_until(r.timeout(), |pos| match (pos, blocking::decide(pos, req, limit)) {
                (_, blocking::Decision::BadRequest(why)) => Some(Err(WaitError::BadRequest(why))),
                (Some(_), blocking::Decision::Now) => Some(Ok(())),
                _ => None,
            })
            .await;
        match waited {
            Ok(()) => {}
            Err(WaitError::BadRequest(why)) => return Err(PlaylistError::BadRequest(why)),
            Err(WaitError::Timeout | WaitError::Gone) => return Err(PlaylistError::Timeout),
        }
        let reports = if form == Form::LowLatency { self.reports(rendition) } else { Vec::new() };
        Ok(r.read(|p| playlist::media_playlist(p, form, req.skip, &reports)))
    }

    /// `#EXT-X-RENDITION-REPORT`s for the renditions other than `rendition`.
    pub fn reports(&self, rendition: &str) -> Vec<RenditionReport> {
        self.map()
            .iter()
            .filter(|(name, _)| name.as_str() != rendition)
            .filter_map(|(name, r)| {
                let Position { msn, part, .. } = r.live.position()?;
                Some(RenditionReport { uri: format!("../{name}/index.m3u8"), last_msn: msn, last_part: part })
            })
            .collect()
    }

    /// The variant of one rendition for the master playlist: codecs and resolution from its init
    /// segment (`None` before it arrived).
    pub fn variant(&self, rendition: &str, bandwidth: u64, frame_rate: Option<f64>) -> Option<Variant> {
        self.rendition(rendition)?.read(|p| {
            p.init()?;
            let resolution = p.tracks().iter().find_map(|t| t.resolution);
            Some(Variant {
                uri: format!("{rendition}/index.m3u8"),
                bandwidth,
                resolution,
                codecs: playlist::codecs(p.tracks()),
                frame_rate,
            })
        })
    }

    /// The master playlist over `(rendition, bandwidth, frame rate)`; renditions without an init
    /// segment yet are left out.
    pub fn master(&self, renditions: &[(&str, u64, Option<f64>)]) -> String {
        // Renditions taken away (ended while others go on) leave the master; a stream that
        // ended as a whole keeps them all.
        // Only renditions that exist count: a ladder entry never made (above the source, or the
        // source at a full ladder) is not "running".
        let ended = |name: &str| self.rendition(name).is_some_and(|r| r.read(Packager::ended));
        let running = renditions.iter().any(|(name, ..)| self.rendition(name).is_some() && !ended(name));
        let variants: Vec<Variant> = renditions
            .iter()
            .filter(|(name, ..)| !running || !ended(name))
            .filter_map(|(name, bw, fps)| self.variant(name, *bw, *fps))
            .collect();
        playlist::master_playlist(&variants)
    }
}

/// The ingest side of one rendition: feed it the encoder's fMP4 bytes.
#[derive(Debug)]
pub struct Writer {
    reader: fmp4::Reader,
    rendition: Arc<Rendition>,
    generation: u64,
}

/// Why a writer's bytes were not taken.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Media(#[from] fmp4::Error),
    #[error("a newer writer took this rendition over")]
    Superseded,
}

impl Writer {
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        self.push_at(bytes, Utc::now())
    }

    /// Like [`Writer::push`] with the wall clock given (program date time of new segments).
    pub fn push_at(&mut self, bytes: &[u8], now: DateTime<Utc>) -> Result<(), WriteError> {
        if self.rendition.generation.load(std::sync::atomic::Ordering::Acquire) != self.generation {
            return Err(WriteError::Superseded);
        }
        let events = self.reader.push(bytes)?;
        if !events.is_empty() {
            self.rendition.write(|p| {
                for e in events {
                    p.push_event(e, now);
                }
            });
        }
        Ok(())
    }

    /// The encoder finished: the playlist gets `#EXT-X-ENDLIST` and waiting requests answer.
    pub fn end(&self) {
        self.rendition.write(Packager::end);
    }

    pub fn stats(&self) -> Stats {
        self.rendition.read(Packager::stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthRun, SynthTrack, fragment, init};

    fn frag(i: u32) -> Vec<u8> {
        fragment(
            i + 1,
            &[SynthRun {
                track: 1,
                decode_time: u64::from(i) * 6000,
                durations: vec![1000; 6],
                sync: i.is_multiple_of(5),
            }],
        )
    }

    /// Keeps what a store hands it.
    #[derive(Debug, Default)]
    struct Kept(std::sync::Mutex<Vec<CompletedSegment>>);

    impl SegmentSink for Kept {
        fn completed(&self, segment: CompletedSegment) {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).push(segment);
        }
    }

    #[test]
    fn a_sink_gets_every_completed_segment_once_in_order_with_its_init() -> Result<(), Box<dyn std::error::Error>> {
        let kept = Arc::new(Kept::default());
        // A window of 2: the sink sees segments the window has long dropped.
        let store = Store::with_sink(Config { window: 2, ..Config::default() }, kept.clone());
        let video = init(&[SynthTrack { id: 1, timescale: 30000, video: true }]);
        let mut w = store.writer("720p");
        w.push(&video)?;
        for i in 0..27 {
            w.push(&frag(i))?;
        }
        let names = |k: &Kept| {
            k.0.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|c| (c.rendition.to_string(), c.segment.msn))
                .collect::<Vec<_>>()
        };
        // 27 fragments, a keyframe every 5th: segments 0-4 complete, 5 open.
        assert_eq!(names(&kept), (0..5).map(|m| ("720p".to_owned(), m)).collect::<Vec<_>>());
        // An encoder restart completes the open one; the next ones follow a discontinuity.
        let mut w = store.writer("720p");
        assert_eq!(names(&kept).len(), 6);
        w.push(&video)?;
        for i in 0..6 {
            w.push(&frag(i))?;
        }
        store.end_all();
        let all = kept.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
        assert_eq!(all.iter().map(|c| c.segment.msn).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
        assert!(all.iter().all(|c| c.segment.complete && c.init == video));
        assert_eq!(all.iter().filter(|c| c.segment.discontinuity).map(|c| c.segment.msn).collect::<Vec<_>>(), vec![6]);
        assert!(all[..5].iter().all(|c| c.segment.parts.len() == 5 && !c.segment.bytes().is_empty()));
        // A store without a sink keeps nothing beyond its window.
        let plain = Store::default();
        let mut w = plain.writer("720p");
        w.push(&video)?;
        for i in 0..27 {
            w.push(&frag(i))?;
        }
        let taken = plain
            .rendition("720p")
            .map(|r| r.packager.write().unwrap_or_else(PoisonError::into_inner).take_completed());
        assert_eq!(taken.map(|t| t.len()), Some(0));
        Ok(())
    }

    #[test]
    fn parses_uris() {
        assert_eq!(Resource::parse("index.m3u8?_HLS_msn=3"), Some(Resource::Playlist));
        assert_eq!(Resource::parse("init.mp4"), Some(Resource::Init(0)));
        assert_eq!(Resource::parse("init-2.mp4"), Some(Resource::Init(2)));
        assert_eq!(Resource::parse("init-0.mp4"), None, "version 0 is init.mp4");
        assert_eq!(Resource::parse("init-x.mp4"), None);
        assert_eq!(Resource::parse("seg12.m4s"), Some(Resource::Segment(12)));
        assert_eq!(Resource::parse("seg12.3.m4s"), Some(Resource::Part(12, 3)));
        for bad in ["seg.m4s", "seg1..m4s", "seg+1.m4s", "seg1.2.3.m4s", "seg1.m4", "../init.mp4"] {
            assert_eq!(Resource::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn blocking_part_and_playlist_requests() -> Result<(), Box<dyn std::error::Error>> {
        let store = Store::default();
        let mut w = store.writer("720p");
        let other = store.writer("360p");
        drop(other);
        w.push(&init(&[SynthTrack { id: 1, timescale: 30000, video: true }]))?;
        for i in 0..7 {
            w.push(&frag(i))?;
        }
        // Segment 0 complete (5 parts), segment 1 has parts 0 and 1.
        assert!(store.get("720p", "seg0.m4s").is_some());
        assert!(store.get("720p", "seg1.m4s").is_none());
        assert!(store.get("720p", "seg1.1.m4s").is_some());
        assert_eq!(store.fetch("720p", "seg1.4.m4s").await, Err(FetchError::NotFound));
        assert_eq!(store.fetch("720p", "seg3.m4s").await, Err(FetchError::NotFound));
        assert_eq!(store.fetch("nope", "init.mp4").await, Err(FetchError::NotFound));

        let hint = tokio::spawn({
            let store = store.clone();
            async move { store.fetch("720p", "seg1.2.m4s").await }
        });
        let reload = tokio::spawn({
            let store = store.clone();
            async move { store.playlist("720p", Some("_HLS_msn=1&_HLS_part=2"), Form::LowLatency).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!hint.is_finished() && !reload.is_finished());
        w.push(&frag(7))?;
        let part = hint.await??;
        assert_eq!(Some(part), store.get("720p", "seg1.2.m4s"));
        let text = reload.await??;
        assert!(text.contains("seg1.2.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg1.3.m4s\"\n"), "{text}");

        let started = tokio::time::Instant::now();
        let far = store.playlist("720p", Some("_HLS_msn=3"), Form::LowLatency).await;
        assert_eq!(far.map_err(PlaylistError::status), Err(400));
        let missing = store.playlist("720p", Some("_HLS_part=1"), Form::LowLatency).await;
        assert_eq!(missing.map_err(PlaylistError::status), Err(400));
        assert_eq!(started.elapsed(), Duration::ZERO);
        let timeout = store.playlist("720p", Some("_HLS_msn=2"), Form::LowLatency).await;
        assert_eq!(timeout.map_err(PlaylistError::status), Err(503));
        assert_eq!(started.elapsed(), Duration::from_secs(3), "3 × target duration");
        // A standard client ignores the directives.
        assert!(store.playlist("720p", Some("_HLS_msn=2"), Form::Standard).await.is_ok());

        // A segment request waits for the open segment to complete; the end answers the rest.
        let seg = tokio::spawn({
            let store = store.clone();
            async move { store.fetch("720p", "seg1.m4s").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        w.end();
        assert_eq!(seg.await?.map(|b| b.len()), Ok(store.get("720p", "seg1.m4s").map_or(0, |b| b.len())));
        let text = store.playlist("720p", Some("_HLS_msn=1&_HLS_part=9"), Form::LowLatency).await?;
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
        assert_eq!(store.stats("720p").map(|s| (s.parts, s.segments)), Some((8, 2)));
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn reports_and_master() -> Result<(), Box<dyn std::error::Error>> {
        let store = Store::default();
        let mut a = store.writer("a");
        let mut b = store.writer("b");
        let tracks =
            [SynthTrack { id: 1, timescale: 30000, video: true }, SynthTrack { id: 2, timescale: 48000, video: false }];
        a.push(&init(&tracks))?;
        b.push(&init(&tracks))?;
        for i in 0..3 {
            a.push(&frag(i))?;
        }
        b.push(&frag(0))?;
        assert_eq!(
            store.reports("a"),
            vec![RenditionReport { uri: "../b/index.m3u8".into(), last_msn: 0, last_part: 0 }]
        );
        let text = store.playlist("b", None, Form::LowLatency).await?;
        assert!(text.ends_with("#EXT-X-RENDITION-REPORT:URI=\"../a/index.m3u8\",LAST-MSN=0,LAST-PART=2\n"), "{text}");
        assert_eq!(
            store.master(&[("a", 2_000_000, Some(30.0)), ("missing", 1, None)]),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=2000000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000\na/index.m3u8\n"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_second_writer_continues_the_rendition() {
        let store = Store::new(Config::default());
        let mut w = store.writer("360p");
        w.push(&init(&[SynthTrack { id: 1, timescale: 30_000, video: true }])).unwrap();
        for i in 0..7 {
            w.push(&frag(i)).unwrap();
        }
        drop(w);
        // The encoder restarted: the same rendition goes on, with numbers that never go back.
        let mut w = store.writer("360p");
        w.push(&init(&[SynthTrack { id: 1, timescale: 30_000, video: true }])).unwrap();
        for i in 0..6 {
            w.push(&frag(i)).unwrap();
        }
        let text = store.playlist("360p", None, Form::LowLatency).await.unwrap();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{text}");
        assert!(text.contains("seg1.m4s\n#EXT-X-DISCONTINUITY\n"), "{text}");
        assert!(store.get("360p", "seg2.0.m4s").is_some());
        assert!(store.get("360p", "init.mp4").is_some());
    }

    #[tokio::test]
    async fn an_ended_stream_keeps_its_master_even_when_the_list_names_renditions_never_made() {
        let store = Store::new(Config::default());
        let mut w = store.writer("360p");
        w.push(&init(&[SynthTrack { id: 1, timescale: 30_000, video: true }])).unwrap();
        for i in 0..6 {
            w.push(&frag(i)).unwrap();
        }
        let list = [("720p", 3_000_000, None), ("360p", 900_000, None), ("source", 6_000_000, None)];
        assert!(store.master(&list).contains("360p/index.m3u8"));
        store.end_all();
        assert!(store.master(&list).contains("360p/index.m3u8"), "still playable to its end");
    }

    #[test]
    fn only_the_newest_writer_of_a_rendition_may_write() {
        let store = Store::new(Config::default());
        let mut old = store.writer("360p");
        old.push(&init(&[SynthTrack { id: 1, timescale: 30_000, video: true }])).unwrap();
        let mut new = store.writer("360p");
        assert!(matches!(old.push(&frag(0)), Err(WriteError::Superseded)), "the old encoder's last bytes are refused");
        new.push(&init(&[SynthTrack { id: 1, timescale: 30_000, video: true }])).unwrap();
        new.push(&frag(0)).unwrap();
        assert!(store.get("360p", "seg0.0.m4s").is_some());
    }
}
