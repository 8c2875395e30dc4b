//! An ingest pod's record of its stream's transcode pods (split roles): what each reported and
//! when, what the operator assigned each, which renditions were taken away, and the gate that
//! orders playlist uploads against ending them. Also the names a part and a rendition may have.
//! Plain data; `origin.rs` serves the HTTP side.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use onair_domain::StreamId;
use onair_domain::contracts::media::{Parts, TranscoderReport, TranscoderState};

/// Which transcode pod an upload comes from (ffmpeg sends it with the internal token).
pub const TRANSCODER_PART_HEADER: &str = "x-onair-transcoder-part";

/// A transcoder that has not reported for this long is gone (crashed, or removed by the
/// operator): its renditions leave the merged master playlist.
pub const REPORT_TTL: Duration = Duration::from_secs(15);

/// An ingest pod's transcoders by stream: what each reported (and when), what the operator
/// assigned each, and the renditions it took away (ended: their uploads are refused, so a
/// transcoder still finishing cannot reopen a playlist players were told is over).
#[derive(Default)]
pub struct Transcoders(std::sync::Mutex<HashMap<StreamId, StreamTranscoders>>);

#[derive(Default)]
struct StreamTranscoders {
    reports: HashMap<String, (Instant, TranscoderReport)>,
    assignment: Option<Parts>,
    ended: HashSet<String>,
    /// Held while a playlist is uploaded and while renditions are ended, so an upload that
    /// passed the checks cannot land after the end marker.
    gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Transcoders {
    /// For writes: the stream's entry, made if absent.
    fn with<T>(&self, stream: StreamId, f: impl FnOnce(&mut StreamTranscoders) -> T) -> T {
        f(self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(stream).or_default())
    }

    /// For reads: nothing is made for a stream nobody wrote about.
    fn read<T>(&self, stream: StreamId, f: impl FnOnce(&mut StreamTranscoders) -> T) -> Option<T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&stream).map(f)
    }

    /// Record a report; the part's assignment, when the operator gave one.
    pub fn record(&self, stream: StreamId, part: String, report: TranscoderReport) -> Option<Vec<String>> {
        self.with(stream, |s| {
            let assigned = s.assignment.as_ref().map(|a| a.get(&part).cloned().unwrap_or_default());
            s.reports.insert(part, (Instant::now(), report));
            assigned
        })
    }

    /// The operator's assignment; what it no longer has, it returns (to be ended).
    pub fn replace_assignment(&self, stream: StreamId, parts: Parts) -> Vec<String> {
        self.with(stream, |s| {
            let now: HashSet<&String> = parts.values().flatten().collect();
            let gone: Vec<String> = match &s.assignment {
                Some(old) => old.values().flatten().filter(|r| !now.contains(r)).cloned().collect(),
                None => Vec::new(),
            };
            s.ended.retain(|r| !now.contains(r));
            s.ended.extend(gone.iter().cloned());
            s.assignment = Some(parts);
            gone
        })
    }

    /// The stream's gate (see `StreamTranscoders::gate`).
    pub fn gate(&self, stream: StreamId) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        self.with(stream, |s| s.gate.clone())
    }

    /// The stream is over: every rendition is ended, so a transcoder still flushing cannot
    /// reopen a playlist players were told is finished.
    pub fn end_all(&self, stream: StreamId, variants: impl IntoIterator<Item = String>) {
        self.with(stream, |s| s.ended.extend(variants));
    }

    pub fn is_ended(&self, stream: StreamId, variant: &str) -> bool {
        self.read(stream, |s| s.ended.contains(variant)).unwrap_or(false)
    }

    /// Whether `part` may write `file` (a path below the stream): its own master part, or a
    /// rendition the assignment gives it (any, before there is an assignment).
    pub fn may_write(&self, stream: StreamId, part: &str, file: &str) -> bool {
        let variant = file.split('/').next().unwrap_or_default();
        if !is_rendition_name(variant) {
            return file == format!("master-{part}.m3u8");
        }
        self.read(stream, |s| match &s.assignment {
            None => true,
            Some(a) => a.get(part).is_some_and(|r| r.iter().any(|r| r == variant)),
        })
        .unwrap_or(true)
    }

    /// The renditions the stream's transcode pods make: what the operator assigned them and
    /// what they report (an assignment precedes a pod's first upload; a report may not).
    pub fn renditions(&self, stream: StreamId) -> Vec<String> {
        self.read(stream, |s| {
            let assigned = s.assignment.iter().flat_map(|a| a.values().flatten());
            let reported = s.reports.values().flat_map(|(_, r)| r.renditions.iter());
            let mut all: Vec<String> = assigned.chain(reported).filter(|r| !s.ended.contains(*r)).cloned().collect();
            all.sort();
            all.dedup();
            all
        })
        .unwrap_or_default()
    }

    /// The live transcoders of a stream, by part name.
    pub fn live(&self, stream: StreamId) -> Vec<TranscoderState> {
        self.read(stream, |s| {
            s.reports.retain(|_, (at, _)| at.elapsed() < REPORT_TTL);
            let mut out: Vec<TranscoderState> = s
                .reports
                .iter()
                .map(|(part, (_, r))| TranscoderState {
                    part: part.clone(),
                    renditions: r.renditions.clone(),
                    encode_speed: r.encode_speed,
                })
                .collect();
            out.sort_by(|a, b| a.part.cmp(&b.part));
            out
        })
        .unwrap_or_default()
    }

    pub fn forget(&self, stream: StreamId) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&stream);
    }
}

pub fn is_part_name(s: &str) -> bool {
    (1..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A rendition a transcoder may write: `720p`, never `source` (the ingest pod's own).
pub fn is_rendition_name(s: &str) -> bool {
    s.len() >= 4 && s.len() <= 5 && s.ends_with('p') && s[..s.len() - 1].bytes().all(|b| b.is_ascii_digit())
}
