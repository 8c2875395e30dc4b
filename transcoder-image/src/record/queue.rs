//! The recorder's upload queue (design §4.3): completed segments become objects to store, in
//! the order they completed, bounded by bytes. Pure bookkeeping, no I/O: the recorder pops items,
//! stores them and says `done`.
//!
//! - Each segment's key describes it (`onair_recording::layout`): wall-clock time, session,
//!   sequence number, duration, init version, discontinuity. Its init is queued the first time a
//!   (session, rendition, version) is seen, ahead of it.
//! - `PROGRAM-DATE-TIME` is kept strictly increasing per rendition (a clock step back must not
//!   reorder keys: key order is playback order).
//! - When the queue is full a stream stops being accepted, every rendition of it, until the
//!   queue is back under 3/4: losses stay aligned in time across renditions, and the sequence
//!   number jump marks them as a discontinuity in the VOD. Inits are queued again on resuming.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use onair_domain::StreamId;
use onair_domain::contracts::media::{RecordingState, UploadState};
use onair_llhls::CompletedSegment;
use onair_recording::layout::{InitName, Rel, Rendition, Root, SegmentName, Session};

/// One object to store.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: u64,
    pub stream: StreamId,
    pub key: String,
    pub bytes: Bytes,
    /// A media segment (an init otherwise): what the counters and `dropped` count.
    pub segment: bool,
}

/// What became of a completed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued under this name (its date clamped to follow the previous segment's end).
    Queued(SegmentName),
    /// The queue was full (or the stream is paused until it drains).
    Dropped,
    /// The rendition's name is not a recordable one, or the stream is not recorded.
    Ignored,
}

/// A stream's books: what is pending (queued or being stored) and what happened so far.
#[derive(Debug)]
struct Book {
    session: Session,
    /// By item id: when the item's segment completed.
    pending: BTreeMap<u64, Instant>,
    pending_bytes: u64,
    accepting: bool,
    inits_queued: HashSet<(String, u32)>,
    next_pdt_ms: HashMap<String, u64>,
    uploaded_segments: u64,
    uploaded_bytes: u64,
    dropped_segments: u64,
    last_drop: Option<Instant>,
    ended: bool,
}

/// How long a drop keeps a stream `failing`.
const FAILING_FOR: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Queue {
    cap_bytes: u64,
    behind: Duration,
    items: VecDeque<(Item, Instant)>,
    /// Queued and in flight: the memory the recorder holds.
    bytes: u64,
    next_id: u64,
    books: HashMap<StreamId, Book>,
}

impl Queue {
    /// A queue holding at most `cap_bytes`; a stream whose oldest pending segment is `behind`
    /// old is reported behind.
    pub fn new(cap_bytes: u64, behind: Duration) -> Self {
        Self { cap_bytes, behind, items: VecDeque::new(), bytes: 0, next_id: 0, books: HashMap::new() }
    }

    /// Start recording `stream` in `session`: its packager store was made (a new one after the
    /// old was dropped starts a new session, whose inits are stored anew).
    pub fn begin(&mut self, stream: StreamId, session: Session) {
        let book = self.books.entry(stream).or_insert_with(|| Book {
            session,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            accepting: true,
            inits_queued: HashSet::new(),
            next_pdt_ms: HashMap::new(),
            uploaded_segments: 0,
            uploaded_bytes: 0,
            dropped_segments: 0,
            last_drop: None,
            ended: false,
        });
        if book.session != session {
            book.session = session;
            book.inits_queued.clear();
        }
        book.ended = false;
    }

    /// A segment `stream` completed at `now`: queue it (and its init, the first time).
    pub fn push(&mut self, stream: StreamId, c: &CompletedSegment, now: Instant) -> Pushed {
        let (cap, total) = (self.cap_bytes, self.bytes);
        let Some(book) = self.books.get_mut(&stream) else { return Pushed::Ignored };
        let Ok(rendition) = Rendition::parse(&c.rendition) else { return Pushed::Ignored };
        let init_key = (c.rendition.to_string(), c.segment.init);
        let init_len = if book.inits_queued.contains(&init_key) { 0 } else { c.init.len() as u64 };
        let seg = c.segment.bytes();
        let need = seg.len() as u64 + init_len;
        if !book.accepting && total <= cap / 4 * 3 {
            // Inits queued before the pause are still stored: an init is never dropped alone.
            book.accepting = true;
        }
        if !book.accepting || total + need > cap {
            book.accepting = false;
            book.dropped_segments += 1;
            book.last_drop = Some(now);
            return Pushed::Dropped;
        }
        let root = Root::Recording(stream.0);
        let session = book.session;
        // Dates never go back, nor overlap the previous segment (a clock stepped back): key
        // order is playback order, and seeking by date finds the right segment.
        let pdt = u64::try_from(c.segment.program_date_time.timestamp_millis()).unwrap_or(0);
        let duration_us = u64::try_from(c.segment.duration.as_micros()).unwrap_or(u64::MAX);
        let next = book.next_pdt_ms.entry(c.rendition.to_string()).or_insert(0);
        let pdt_ms = pdt.max(*next);
        *next = pdt_ms + (duration_us / 1000).max(1);
        let name = SegmentName {
            pdt_ms,
            session,
            msn: c.segment.msn,
            duration_us,
            init_version: c.segment.init,
            discontinuity: c.segment.discontinuity,
        };
        if init_len > 0 {
            book.inits_queued.insert(init_key);
            let rel = Rel::Init(rendition.clone(), InitName { session, version: c.segment.init });
            self.enqueue(stream, root.key(&rel), c.init.clone(), false, now);
        }
        self.enqueue(stream, root.key(&Rel::Segment(rendition, name)), seg, true, now);
        Pushed::Queued(name)
    }

    fn enqueue(&mut self, stream: StreamId, key: String, bytes: Bytes, segment: bool, now: Instant) {
        let id = self.next_id;
        self.next_id += 1;
        let len = bytes.len() as u64;
        if let Some(book) = self.books.get_mut(&stream) {
            book.pending.insert(id, now);
            book.pending_bytes += len;
        }
        self.bytes += len;
        self.items.push_back((Item { id, stream, key, bytes, segment }, now));
    }

    /// The oldest item, to store now. It stays pending until [`Queue::done`].
    pub fn pop(&mut self) -> Option<Item> {
        self.items.pop_front().map(|(item, _)| item)
    }

    /// `item` is stored.
    pub fn done(&mut self, item: &Item) {
        let len = item.bytes.len() as u64;
        self.bytes = self.bytes.saturating_sub(len);
        // In flight counts in `bytes` until here, even for a stream forgotten meanwhile
        // (`forget` frees only what is still queued).
        if let Some(book) = self.books.get_mut(&item.stream)
            && book.pending.remove(&item.id).is_some()
        {
            book.pending_bytes = book.pending_bytes.saturating_sub(len);
            if item.segment {
                book.uploaded_segments += 1;
            }
            book.uploaded_bytes += len;
        }
    }

    /// `stream` ended: nothing more comes; it is flushed once its pending items are stored.
    pub fn end(&mut self, stream: StreamId) {
        if let Some(book) = self.books.get_mut(&stream) {
            book.ended = true;
        }
    }

    /// Forget `stream`: its recording is over, stored or given up. What it still has queued is
    /// given up too (an upload in flight finds itself no longer pending and stops retrying).
    pub fn forget(&mut self, stream: StreamId) {
        if self.books.remove(&stream).is_none() {
            return;
        }
        let before = self.items.len();
        let mut freed = 0;
        self.items.retain(|(item, _)| {
            let keep = item.stream != stream;
            if !keep {
                freed += item.bytes.len() as u64;
            }
            keep
        });
        self.bytes = self.bytes.saturating_sub(freed);
        if self.items.len() < before {
            tracing::warn!(stream_id = %stream, objects = before - self.items.len(), "recorded objects given up");
        }
    }

    /// Whether `item` is still to be stored (its stream was not forgotten).
    pub fn is_pending(&self, item: &Item) -> bool {
        self.books.get(&item.stream).is_some_and(|b| b.pending.contains_key(&item.id))
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every stream being recorded (or recorded and not yet forgotten).
    pub fn streams(&self) -> Vec<StreamId> {
        self.books.keys().copied().collect()
    }

    /// Pending items of every stream (queued or being stored).
    pub fn pending(&self) -> usize {
        self.books.values().map(|b| b.pending.len()).sum()
    }

    pub fn state(&self, stream: StreamId, now: Instant) -> Option<RecordingState> {
        let book = self.books.get(&stream)?;
        let lag = book.pending.values().next().map_or(Duration::ZERO, |at| now.saturating_duration_since(*at));
        let failing = book.last_drop.is_some_and(|at| now.saturating_duration_since(at) < FAILING_FOR);
        let state = if failing {
            UploadState::Failing
        } else if lag >= self.behind {
            UploadState::Behind
        } else {
            UploadState::Ok
        };
        Some(RecordingState {
            state,
            lag_ms: u64::try_from(lag.as_millis()).unwrap_or(u64::MAX),
            queued_bytes: book.pending_bytes,
            uploaded_segments: book.uploaded_segments,
            uploaded_bytes: book.uploaded_bytes,
            dropped_segments: book.dropped_segments,
            flushed: book.ended && book.pending.is_empty(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use onair_llhls::{Part, Segment};
    use onair_recording::layout::Root;

    use super::*;

    fn seg(rendition: &str, msn: u64, pdt_s: i64, init: u32, len: usize) -> CompletedSegment {
        let part = Part { bytes: Bytes::from(vec![7; len]), duration: Duration::from_secs(1), independent: true };
        CompletedSegment {
            rendition: Arc::from(rendition),
            segment: Segment {
                msn,
                parts: vec![part],
                duration: Duration::from_secs(1),
                program_date_time: DateTime::<Utc>::from_timestamp(1_800_000_000 + pdt_s, 0).unwrap_or_default(),
                complete: true,
                discontinuity: false,
                init,
            },
            init: Bytes::from(vec![1; 10]),
        }
    }

    fn drain(q: &mut Queue) -> Vec<String> {
        let mut keys = vec![];
        while let Some(item) = q.pop() {
            q.done(&item);
            keys.push(item.key);
        }
        keys
    }

    fn rel(key: &str) -> Rel {
        Root::parse_key(key).map(|(_, rel)| rel).unwrap_or(Rel::Master)
    }

    #[test]
    fn segments_become_self_describing_keys_with_their_init_first() {
        let stream = StreamId::new();
        let mut q = Queue::new(1 << 20, Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(q.push(stream, &seg("720p", 5, 0, 0, 100), t), Pushed::Ignored, "not begun");
        q.begin(stream, Session(1_800_000_000_000));
        assert!(matches!(q.push(stream, &seg("720p", 5, 0, 0, 100), t), Pushed::Queued(_)));
        assert!(matches!(q.push(stream, &seg("720p", 6, 1, 0, 100), t), Pushed::Queued(_)));
        assert_eq!(q.push(stream, &seg("Bad/Name", 6, 1, 0, 100), t), Pushed::Ignored);
        // A new init version (an encoder restart with other parameters): queued once, first.
        assert!(matches!(q.push(stream, &seg("720p", 7, 2, 1, 100), t), Pushed::Queued(_)));
        let keys = drain(&mut q);
        let root = format!("rec/{stream}/720p/");
        assert_eq!(
            keys.iter().map(|k| k.strip_prefix(&root).unwrap_or(k).to_owned()).collect::<Vec<_>>(),
            vec![
                "init/s1800000000000_0.mp4",
                "seg/1800000000000_s1800000000000_000000000005_1000000_0.m4s",
                "seg/1800000001000_s1800000000000_000000000006_1000000_0.m4s",
                "init/s1800000000000_1.mp4",
                "seg/1800000002000_s1800000000000_000000000007_1000000_1.m4s",
            ]
        );
        assert!(keys.iter().all(|k| rel(k) != Rel::Master), "every key parses back: {keys:?}");
        let state = q.state(stream, t).unwrap_or_default();
        assert_eq!((state.uploaded_segments, state.uploaded_bytes, state.queued_bytes), (3, 320, 0));
    }

    #[test]
    fn dates_stay_strictly_increasing_per_rendition() {
        let stream = StreamId::new();
        let mut q = Queue::new(1 << 20, Duration::from_secs(10));
        q.begin(stream, Session(1));
        let t = Instant::now();
        // The clock stepped back: 10 s, then 9 s and 9 s.
        for (msn, pdt) in [(1, 10), (2, 9), (3, 9)] {
            q.push(stream, &seg("360p", msn, pdt, 0, 1), t);
        }
        q.push(stream, &seg("720p", 1, 9, 0, 1), t);
        let pdts: Vec<_> = drain(&mut q)
            .iter()
            .filter_map(|k| match rel(k) {
                Rel::Segment(rendition, name) => Some((rendition.as_str().to_owned(), name.pdt_ms % 100_000)),
                _ => None,
            })
            .collect();
        // Each starts where the previous one ended at the earliest.
        assert_eq!(
            pdts,
            vec![("360p".into(), 10_000), ("360p".into(), 11_000), ("360p".into(), 12_000), ("720p".into(), 9_000)]
        );
    }

    #[test]
    fn a_full_queue_pauses_the_whole_stream_until_three_quarters() {
        let stream = StreamId::new();
        // Room for 10 segments of 100 bytes (inits are 10).
        let mut q = Queue::new(1_010, Duration::from_secs(10));
        q.begin(stream, Session(1));
        let t = Instant::now();
        let pushed: Vec<_> = (0..12).map(|i| q.push(stream, &seg("720p", i, i as i64, 0, 100), t)).collect();
        assert_eq!(pushed.iter().filter(|p| matches!(p, Pushed::Queued(_))).count(), 10);
        // Another rendition is paused too, though it would fit.
        assert_eq!(q.push(stream, &seg("360p", 0, 0, 0, 1), t), Pushed::Dropped);
        let state = q.state(stream, t).unwrap_or_default();
        assert_eq!((state.state, state.dropped_segments, state.queued_bytes), (UploadState::Failing, 3, 1_010));
        // Two stored: still above 3/4 (757 bytes), so still paused.
        for _ in 0..2 {
            let item = q.pop().expect("queued");
            q.done(&item);
        }
        assert_eq!(q.push(stream, &seg("720p", 12, 12, 0, 100), t), Pushed::Dropped);
        for _ in 0..2 {
            let item = q.pop().expect("queued");
            q.done(&item);
        }
        assert!(matches!(q.push(stream, &seg("720p", 13, 13, 0, 100), t), Pushed::Queued(_)));
        // The init stored before the pause still serves; the 360p one was never queued, so it
        // goes ahead of that rendition's first segment.
        assert!(matches!(q.push(stream, &seg("360p", 1, 13, 0, 1), t), Pushed::Queued(_)));
        let keys = drain(&mut q);
        let inits: Vec<_> = keys.iter().filter(|k| k.contains("/init/")).collect();
        assert_eq!(inits.len(), 1, "720p's init is not queued again: {keys:?}");
        assert!(keys[keys.len() - 2].contains("360p/init/"), "{keys:?}");
        // Failing for a minute after the last drop, then ok.
        let later = t + FAILING_FOR + Duration::from_secs(1);
        assert_eq!(q.state(stream, later).map(|s| s.state), Some(UploadState::Ok));
    }

    #[test]
    fn forgetting_a_stream_gives_up_its_queue_but_not_other_streams() {
        let (a, b) = (StreamId::new(), StreamId::new());
        let mut q = Queue::new(1 << 20, Duration::from_secs(10));
        let t = Instant::now();
        q.begin(a, Session(1));
        q.begin(b, Session(1));
        q.push(a, &seg("720p", 1, 1, 0, 100), t);
        q.push(b, &seg("720p", 1, 1, 0, 100), t);
        let in_flight = q.pop().expect("a's init");
        q.forget(a);
        assert!(!q.is_pending(&in_flight), "an upload in flight stops retrying");
        q.done(&in_flight);
        let left = drain(&mut q);
        assert!(left.iter().all(|k| k.contains(&b.to_string())) && left.len() == 2, "{left:?}");
        assert_eq!((q.bytes(), q.pending()), (0, 0));
        assert_eq!(q.state(a, t), None);
    }

    #[test]
    fn a_new_session_stores_its_inits_again() {
        let stream = StreamId::new();
        let mut q = Queue::new(1 << 20, Duration::from_secs(10));
        let t = Instant::now();
        q.begin(stream, Session(1));
        q.push(stream, &seg("720p", 1, 1, 0, 10), t);
        q.begin(stream, Session(2));
        q.push(stream, &seg("720p", 1, 5, 0, 10), t);
        let keys = drain(&mut q);
        assert!(keys[2].contains("/init/s2_0.mp4") && keys[3].contains("_s2_"), "{keys:?}");
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_pending_segment_and_flushed_needs_the_end() {
        let stream = StreamId::new();
        let mut q = Queue::new(1 << 20, Duration::from_secs(10));
        q.begin(stream, Session(1));
        let t = Instant::now();
        q.push(stream, &seg("720p", 1, 1, 0, 5), t);
        q.push(stream, &seg("720p", 2, 2, 0, 5), t + Duration::from_secs(5));
        let at = |s| t + Duration::from_secs(s);
        let state = q.state(stream, at(12)).unwrap_or_default();
        assert_eq!((state.state, state.lag_ms), (UploadState::Behind, 12_000));
        // In flight still counts; stored does not.
        let init = q.pop().expect("init");
        let first = q.pop().expect("segment");
        assert_eq!(q.state(stream, at(12)).map(|s| s.lag_ms), Some(12_000));
        q.done(&init);
        q.done(&first);
        assert_eq!(q.state(stream, at(12)).map(|s| (s.state, s.lag_ms)), Some((UploadState::Ok, 7_000)));
        assert_eq!(q.state(stream, at(12)).map(|s| s.flushed), Some(false));
        q.end(stream);
        assert_eq!(q.state(stream, at(12)).map(|s| s.flushed), Some(false), "one still pending");
        drain(&mut q);
        assert_eq!(q.state(stream, at(12)).map(|s| (s.flushed, s.lag_ms)), Some((true, 0)));
        assert_eq!((q.bytes(), q.pending()), (0, 0));
    }
}
