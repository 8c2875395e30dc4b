//! Incremental fragmented-MP4 reader: bytes in (any chunking), init segment and fragments out.
//!
//! Only top-level boxes are buffered, one at a time, each refused past [`DEFAULT_MAX_BOX`] (or the
//! configured limit). `ftyp`+`moov` become one [`Event::Init`]; every `moof`+`mdat` pair becomes one
//! [`Event::Fragment`] with per-track timing read from `tfhd`/`tfdt`/`trun` (and `trex` defaults
//! from the init segment). `styp`, `sidx`, `free`, `skip`, `prft`, `emsg`, `mfra` and unknown
//! top-level boxes are skipped.

use bytes::{Bytes, BytesMut};

/// Default refusal size of a single top-level box.
pub const DEFAULT_MAX_BOX: usize = 16 * 1024 * 1024;

/// `sample_is_non_sync_sample` in ISO/IEC 14496-12 sample flags.
const NON_SYNC: u32 = 0x0001_0000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("box `{kind}` declares {size} bytes, over the {limit}-byte limit")]
    TooLarge { kind: String, size: u64, limit: usize },
    #[error("box `{kind}` has a malformed size {size}")]
    BadSize { kind: String, size: u64 },
    #[error("malformed `{kind}` box: {what}")]
    Malformed { kind: &'static str, what: &'static str },
    #[error("unexpected `{kind}` box: {what}")]
    Order { kind: String, what: &'static str },
    #[error("the reader failed earlier and takes no more input")]
    Failed,
}

/// What the init segment says about one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub id: u32,
    pub timescale: u32,
    pub kind: TrackKind,
    /// RFC 6381 codec string when known (`avc1.64001f`, `mp4a.40.2`).
    pub codec: Option<String>,
    /// Width and height of a video sample entry.
    pub resolution: Option<(u16, u16)>,
    pub(crate) defaults: TrackDefaults,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Video,
    Audio,
    Other,
}

/// `trex` defaults from `moov/mvex`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TrackDefaults {
    pub(crate) sample_duration: u32,
    pub(crate) sample_flags: u32,
}

/// Timing of one track inside one fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackFragment {
    pub track_id: u32,
    /// `tfdt` base media decode time, in the track's timescale.
    pub base_decode_time: u64,
    /// Sum of the sample durations, in the track's timescale.
    pub duration: u64,
    pub samples: u32,
    /// Whether the first sample is a sync sample.
    pub starts_with_sync: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `ftyp` + `moov`, exactly as received.
    Init { bytes: Bytes, tracks: Vec<Track> },
    /// `moof` + `mdat`, exactly as received.
    Fragment {
        bytes: Bytes,
        tracks: Vec<TrackFragment>,
        /// Whether the fragment's first video sample is a sync sample (true without video).
        keyframe: bool,
    },
}

/// Push parser; see the module docs.
#[derive(Debug)]
pub struct Reader {
    max_box: usize,
    buf: BytesMut,
    ftyp: Option<Bytes>,
    tracks: Option<Vec<Track>>,
    moof: Option<(Bytes, Vec<TrackFragment>)>,
    failed: bool,
}

impl Default for Reader {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BOX)
    }
}

impl Reader {
    pub fn new(max_box: usize) -> Self {
        Self { max_box, buf: BytesMut::new(), ftyp: None, tracks: None, moof: None, failed: false }
    }

    /// Tracks of the init segment, once it was read.
    pub fn tracks(&self) -> Option<&[Track]> {
        self.tracks.as_deref()
    }

    /// Feeds bytes; returns the events completed by them. After an error every call fails.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Event>, Error> {
        if self.failed {
            return Err(Error::Failed);
        }
        let result = self.push_inner(bytes);
        if result.is_err() {
            self.failed = true;
            self.buf = BytesMut::new();
            self.moof = None;
        }
        result
    }

    fn push_inner(&mut self, mut bytes: &[u8]) -> Result<Vec<Event>, Error> {
        let mut events = Vec::new();
        while !bytes.is_empty() {
            // Take only what the current box still needs, so the buffer never exceeds one box.
            let want = match self.header()? {
                Some((size, _)) => size - self.buf.len(),
                None if self.buf.len() < 8 => 8 - self.buf.len(),
                // A 64-bit size follows the type.
                None => 16 - self.buf.len(),
            };
            let take = want.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if let Some((size, kind)) = self.header()?
                && self.buf.len() == size
            {
                let whole = self.buf.split().freeze();
                if let Some(event) = self.top_level(kind, whole)? {
                    events.push(event);
                }
            }
        }
        Ok(events)
    }

    /// Size and type of the buffered box once its header is complete (and checked).
    fn header(&self) -> Result<Option<(usize, [u8; 4])>, Error> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let size32 = be_u32(&self.buf, 0).unwrap_or(0);
        let kind = fourcc(&self.buf, 4);
        let (size, header) = match size32 {
            1 => {
                if self.buf.len() < 16 {
                    return Ok(None);
                }
                (be_u64(&self.buf, 8).unwrap_or(0), 16)
            }
            // Size 0 ("to the end of the file") cannot be framed in a live stream.
            0 => return Err(Error::BadSize { kind: name(kind), size: 0 }),
            n => (u64::from(n), 8),
        };
        if size < header {
            return Err(Error::BadSize { kind: name(kind), size });
        }
        if size > self.max_box as u64 {
            return Err(Error::TooLarge { kind: name(kind), size, limit: self.max_box });
        }
        // Checked against max_box (a usize) just above.
        Ok(Some((size as usize, kind)))
    }

    fn top_level(&mut self, kind: [u8; 4], whole: Bytes) -> Result<Option<Event>, Error> {
        match &kind {
            b"ftyp" => {
                if self.tracks.is_some() {
                    return Err(order(kind, "a second init segment"));
                }
                self.ftyp = Some(whole);
                Ok(None)
            }
            b"moov" => {
                if self.tracks.is_some() {
                    return Err(order(kind, "a second init segment"));
                }
                let Some(ftyp) = self.ftyp.take() else {
                    return Err(order(kind, "moov before ftyp"));
                };
                let tracks = parse_moov(&whole[8..])?;
                if tracks.is_empty() {
                    return Err(Error::Malformed { kind: "moov", what: "no tracks" });
                }
                self.tracks = Some(tracks.clone());
                let mut bytes = BytesMut::with_capacity(ftyp.len() + whole.len());
                bytes.extend_from_slice(&ftyp);
                bytes.extend_from_slice(&whole);
                Ok(Some(Event::Init { bytes: bytes.freeze(), tracks }))
            }
            b"moof" => {
                let Some(tracks) = &self.tracks else {
                    return Err(order(kind, "fragment before the init segment"));
                };
                if self.moof.is_some() {
                    return Err(order(kind, "moof without mdat"));
                }
                let frags = parse_moof(&whole[8..], tracks)?;
                self.moof = Some((whole, frags));
                Ok(None)
            }
            b"mdat" => {
                let Some((moof, frags)) = self.moof.take() else {
                    return Err(order(kind, "mdat without moof"));
                };
                let tracks = self.tracks.as_deref().unwrap_or_default();
                let video = frags
                    .iter()
                    .find(|f| f.samples > 0 && tracks.iter().any(|t| t.id == f.track_id && t.kind == TrackKind::Video));
                let keyframe = match video {
                    Some(v) => v.starts_with_sync,
                    // Without a video track every (audio) fragment starts independently.
                    None => !tracks.iter().any(|t| t.kind == TrackKind::Video),
                };
                let mut bytes = BytesMut::with_capacity(moof.len() + whole.len());
                bytes.extend_from_slice(&moof);
                bytes.extend_from_slice(&whole);
                Ok(Some(Event::Fragment { bytes: bytes.freeze(), tracks: frags, keyframe }))
            }
            _ => {
                tracing::trace!(kind = %name(kind), size = whole.len(), "skipping top-level box");
                Ok(None)
            }
        }
    }
}

fn order(kind: [u8; 4], what: &'static str) -> Error {
    Error::Order { kind: name(kind), what }
}

fn name(kind: [u8; 4]) -> String {
    kind.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '?' }).collect()
}

fn fourcc(b: &[u8], at: usize) -> [u8; 4] {
    let mut out = [0; 4];
    if let Some(s) = b.get(at..at + 4) {
        out.copy_from_slice(s);
    }
    out
}

fn be_u8(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// Child boxes of a container body: `(type, body)` pairs; malformed sizes are an error.
/// A child box: type and body.
type Child<'a> = ([u8; 4], &'a [u8]);

fn children<'a>(body: &'a [u8], parent: &'static str) -> Result<Vec<Child<'a>>, Error> {
    let bad = Error::Malformed { kind: parent, what: "child box size" };
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        let size32 = be_u32(body, at).ok_or(bad.clone())?;
        let kind = fourcc(body, at + 4);
        let (size, header) = match size32 {
            1 => (be_u64(body, at + 8).ok_or(bad.clone())?, 16u64),
            0 => ((body.len() - at) as u64, 8),
            n => (u64::from(n), 8),
        };
        let end = (at as u64).checked_add(size).ok_or(bad.clone())?;
        if size < header || end > body.len() as u64 {
            return Err(bad);
        }
        // Both bounded by body.len() above.
        out.push((kind, &body[at + header as usize..end as usize]));
        at = end as usize;
    }
    Ok(out)
}

fn child<'a>(boxes: &[Child<'a>], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes.iter().find(|(k, _)| k == kind).map(|(_, b)| *b)
}

fn malformed(kind: &'static str, what: &'static str) -> Error {
    Error::Malformed { kind, what }
}

fn parse_moov(body: &[u8]) -> Result<Vec<Track>, Error> {
    let boxes = children(body, "moov")?;
    let mut defaults = Vec::new();
    if let Some(mvex) = child(&boxes, b"mvex") {
        for (kind, trex) in children(mvex, "mvex")? {
            if &kind == b"trex" {
                let e = || malformed("trex", "too short");
                let id = be_u32(trex, 4).ok_or_else(e)?;
                let sample_duration = be_u32(trex, 12).ok_or_else(e)?;
                let sample_flags = be_u32(trex, 20).ok_or_else(e)?;
                defaults.push((id, TrackDefaults { sample_duration, sample_flags }));
            }
        }
    }
    let mut tracks = Vec::new();
    for (kind, trak) in &boxes {
        if kind != b"trak" {
            continue;
        }
        let trak = children(trak, "trak")?;
        let tkhd = child(&trak, b"tkhd").ok_or(malformed("trak", "no tkhd"))?;
        let id = match be_u8(tkhd, 0) {
            Some(1) => be_u32(tkhd, 20),
            _ => be_u32(tkhd, 12),
        }
        .ok_or(malformed("tkhd", "too short"))?;
        let mdia = children(child(&trak, b"mdia").ok_or(malformed("trak", "no mdia"))?, "mdia")?;
        let mdhd = child(&mdia, b"mdhd").ok_or(malformed("mdia", "no mdhd"))?;
        let timescale = match be_u8(mdhd, 0) {
            Some(1) => be_u32(mdhd, 20),
            _ => be_u32(mdhd, 12),
        }
        .ok_or(malformed("mdhd", "too short"))?;
        if timescale == 0 {
            return Err(malformed("mdhd", "zero timescale"));
        }
        let hdlr = child(&mdia, b"hdlr").ok_or(malformed("mdia", "no hdlr"))?;
        let kind = match &fourcc(hdlr, 8) {
            b"vide" => TrackKind::Video,
            b"soun" => TrackKind::Audio,
            _ => TrackKind::Other,
        };
        let (codec, resolution) = sample_entry(&mdia).unwrap_or((None, None));
        let defaults = defaults.iter().find(|(t, _)| *t == id).map(|(_, d)| *d).unwrap_or_default();
        tracks.push(Track { id, timescale, kind, codec, resolution, defaults });
    }
    Ok(tracks)
}

/// Codec string and resolution from `minf/stbl/stsd`; `None` where it can't be read.
/// Codec string and video resolution of a sample entry.
type EntryInfo = (Option<String>, Option<(u16, u16)>);

fn sample_entry(mdia: &[Child<'_>]) -> Option<EntryInfo> {
    let minf = children(child(mdia, b"minf")?, "minf").ok()?;
    let stbl = children(child(&minf, b"stbl")?, "stbl").ok()?;
    let stsd = child(&stbl, b"stsd")?;
    let entries = children(stsd.get(8..)?, "stsd").ok()?;
    let (kind, entry) = entries.first()?;
    match kind {
        b"avc1" | b"avc3" => {
            // VisualSampleEntry: 8 bytes SampleEntry, 16 reserved, width, height, ... 78 in all.
            let resolution = Some((be_u16(entry, 24)?, be_u16(entry, 26)?));
            let inner = children(entry.get(78..)?, "avc1").ok()?;
            let codec = child(&inner, b"avcC").and_then(|c| {
                let (p, c2, l) = (be_u8(c, 1)?, be_u8(c, 2)?, be_u8(c, 3)?);
                Some(format!("{}.{p:02x}{c2:02x}{l:02x}", name(*kind)))
            });
            Some((codec, resolution))
        }
        b"mp4a" => {
            // AudioSampleEntry: 8 bytes SampleEntry, 20 more.
            let inner = children(entry.get(28..)?, "mp4a").ok()?;
            let codec = child(&inner, b"esds").and_then(|e| esds_codec(e.get(4..)?));
            Some((codec.or_else(|| Some("mp4a.40.2".to_owned())), None))
        }
        _ => Some((None, None)),
    }
}

/// `mp4a.<objectTypeIndication>.<audioObjectType>` from an ES_Descriptor.
fn esds_codec(b: &[u8]) -> Option<String> {
    // Descriptor: tag, length (1..4 bytes of 7 bits), body.
    fn descriptor(b: &[u8]) -> Option<(u8, &[u8])> {
        let tag = *b.first()?;
        let mut len = 0usize;
        let mut at = 1;
        loop {
            let byte = *b.get(at)?;
            len = (len << 7) | usize::from(byte & 0x7f);
            at += 1;
            if byte & 0x80 == 0 || at > 4 {
                break;
            }
        }
        Some((tag, b.get(at..at.checked_add(len)?)?))
    }
    let (tag, es) = descriptor(b)?;
    if tag != 3 {
        return None;
    }
    let flags = *es.get(2)?;
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2;
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*es.get(at)?);
    }
    if flags & 0x20 != 0 {
        at += 2;
    }
    let (tag, dcd) = descriptor(es.get(at..)?)?;
    if tag != 4 {
        return None;
    }
    let oti = *dcd.first()?;
    let aot = match descriptor(dcd.get(13..)?) {
        Some((5, dsi)) => match *dsi.first()? >> 3 {
            31 => 32 + (((u16::from(*dsi.first()?) << 8 | u16::from(*dsi.get(1)?)) >> 5) & 0x3f),
            n => u16::from(n),
        },
        _ => 2,
    };
    Some(format!("mp4a.{oti:x}.{aot}"))
}

fn parse_moof(body: &[u8], tracks: &[Track]) -> Result<Vec<TrackFragment>, Error> {
    let mut out = Vec::new();
    for (kind, traf) in children(body, "moof")? {
        if &kind != b"traf" {
            continue;
        }
        let traf = children(traf, "traf")?;
        let tfhd = child(&traf, b"tfhd").ok_or(malformed("traf", "no tfhd"))?;
        let e = || malformed("tfhd", "too short");
        let flags = be_u32(tfhd, 0).ok_or_else(e)? & 0x00ff_ffff;
        let track_id = be_u32(tfhd, 4).ok_or_else(e)?;
        let track =
            tracks.iter().find(|t| t.id == track_id).ok_or(malformed("tfhd", "track not in the init segment"))?;
        let mut at = 8;
        if flags & 0x01 != 0 {
            at += 8;
        }
        if flags & 0x02 != 0 {
            at += 4;
        }
        let mut default_duration = track.defaults.sample_duration;
        if flags & 0x08 != 0 {
            default_duration = be_u32(tfhd, at).ok_or_else(e)?;
            at += 4;
        }
        if flags & 0x10 != 0 {
            at += 4;
        }
        let mut default_flags = track.defaults.sample_flags;
        if flags & 0x20 != 0 {
            default_flags = be_u32(tfhd, at).ok_or_else(e)?;
        }
        let tfdt = child(&traf, b"tfdt").ok_or(malformed("traf", "no tfdt"))?;
        let base_decode_time = match be_u8(tfdt, 0) {
            Some(1) => be_u64(tfdt, 4),
            _ => be_u32(tfdt, 4).map(u64::from),
        }
        .ok_or(malformed("tfdt", "too short"))?;
        let mut frag = TrackFragment { track_id, base_decode_time, duration: 0, samples: 0, starts_with_sync: false };
        for (kind, trun) in &traf {
            if kind == b"trun" {
                read_trun(trun, default_duration, default_flags, &mut frag)?;
            }
        }
        out.push(frag);
    }
    Ok(out)
}

/// Samples one `trun` may declare when it stores nothing per sample: far more than a part holds
/// (a 0.2 s part at 48 kHz audio has ~10 AAC frames; 60 fps video 12 frames).
const MAX_DEFAULT_SAMPLES: u32 = 1 << 16;

fn read_trun(trun: &[u8], default_duration: u32, default_flags: u32, frag: &mut TrackFragment) -> Result<(), Error> {
    let e = || malformed("trun", "too short");
    let flags = be_u32(trun, 0).ok_or_else(e)? & 0x00ff_ffff;
    let count = be_u32(trun, 4).ok_or_else(e)?;
    let mut at = 8usize;
    if flags & 0x01 != 0 {
        at += 4;
    }
    let mut first_flags = None;
    if flags & 0x04 != 0 {
        first_flags = Some(be_u32(trun, at).ok_or_else(e)?);
        at += 4;
    }
    let per_sample = [0x100, 0x200, 0x400, 0x800].iter().filter(|&&f| flags & f != 0).count() * 4;
    // The declared count must fit in the box (and so is bounded by the box limit).
    let needed = (count as usize).checked_mul(per_sample).and_then(|n| n.checked_add(at));
    if needed.is_none_or(|n| n > trun.len()) {
        return Err(malformed("trun", "sample count past the box"));
    }
    if per_sample == 0 {
        // Every sample takes the defaults: nothing in the box bounds the count (4 billion
        // iterations of the loop below were one upload's worth of CPU, found by fuzz/), and
        // nothing per sample needs reading.
        if count > MAX_DEFAULT_SAMPLES {
            return Err(malformed("trun", "too many samples"));
        }
        if frag.samples == 0 && count > 0 {
            frag.starts_with_sync = first_flags.unwrap_or(default_flags) & NON_SYNC == 0;
        }
        frag.duration = frag
            .duration
            .checked_add(u64::from(count) * u64::from(default_duration))
            .ok_or_else(|| malformed("trun", "durations past any clock"))?;
        frag.samples = frag.samples.saturating_add(count);
        return Ok(());
    }
    for i in 0..count as usize {
        let mut s = at + i * per_sample;
        let duration = if flags & 0x100 != 0 {
            let d = be_u32(trun, s).ok_or_else(e)?;
            s += 4;
            d
        } else {
            default_duration
        };
        if flags & 0x200 != 0 {
            s += 4;
        }
        let sample_flags = if flags & 0x400 != 0 { be_u32(trun, s).ok_or_else(e)? } else { default_flags };
        if frag.samples == 0 && i == 0 {
            let f = first_flags.unwrap_or(sample_flags);
            frag.starts_with_sync = f & NON_SYNC == 0;
        }
        frag.duration = frag
            .duration
            .checked_add(u64::from(duration))
            .ok_or_else(|| malformed("trun", "durations past any clock"))?;
    }
    frag.samples = frag.samples.saturating_add(count);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthRun, SynthTrack, bx, fragment, init};

    fn stream() -> Vec<u8> {
        let mut out = init(&[
            SynthTrack { id: 1, timescale: 15360, video: true },
            SynthTrack { id: 2, timescale: 44100, video: false },
        ]);
        for i in 0..4u32 {
            let v = SynthRun { track: 1, decode_time: u64::from(i) * 3072, durations: vec![512; 6], sync: i % 2 == 0 };
            let a = SynthRun { track: 2, decode_time: u64::from(i) * 9216, durations: vec![1024; 9], sync: true };
            out.extend(fragment(i + 1, &[v, a]));
        }
        out
    }

    #[test]
    fn reads_init_and_fragments() -> Result<(), Error> {
        let events = Reader::default().push(&stream())?;
        assert_eq!(events.len(), 5);
        let Event::Init { tracks, bytes } = &events[0] else { panic!("init first") };
        assert_eq!(&bytes[4..8], b"ftyp");
        assert_eq!(tracks.len(), 2);
        assert_eq!((tracks[0].id, tracks[0].timescale, tracks[0].kind), (1, 15360, TrackKind::Video));
        assert_eq!(tracks[0].codec.as_deref(), Some("avc1.64001f"));
        assert_eq!(tracks[0].resolution, Some((640, 360)));
        assert_eq!((tracks[1].kind, tracks[1].codec.as_deref()), (TrackKind::Audio, Some("mp4a.40.2")));
        for (i, e) in events[1..].iter().enumerate() {
            let Event::Fragment { bytes, tracks, keyframe } = e else { panic!("fragment") };
            assert_eq!(&bytes[4..8], b"moof", "styp is not part of the fragment");
            assert_eq!(*keyframe, i % 2 == 0);
            assert_eq!(
                tracks[0],
                TrackFragment {
                    track_id: 1,
                    base_decode_time: i as u64 * 3072,
                    duration: 3072,
                    samples: 6,
                    starts_with_sync: i % 2 == 0
                }
            );
            assert_eq!((tracks[1].duration, tracks[1].samples), (9216, 9));
        }
        Ok(())
    }

    #[test]
    fn any_chunking_gives_the_same_events() -> Result<(), Error> {
        let data = stream();
        let whole = Reader::default().push(&data)?;
        let mut bytewise = Vec::new();
        let mut r = Reader::default();
        for b in &data {
            bytewise.extend(r.push(std::slice::from_ref(b))?);
        }
        assert_eq!(whole, bytewise);
        for chunk in [3, 7, 8, 9, 15, 16, 17, 100, 4096] {
            let mut r = Reader::default();
            let mut got = Vec::new();
            for c in data.chunks(chunk) {
                got.extend(r.push(c)?);
            }
            assert_eq!(whole, got, "chunk {chunk}");
        }
        Ok(())
    }

    #[test]
    fn defaults_come_from_tfhd_then_trex() -> Result<(), Error> {
        let mut data = init(&[SynthTrack { id: 1, timescale: 90000, video: true }]);
        // tfhd with default duration 3000 and default flags sync; trun with only a count.
        let mfhd = bx(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 1]);
        let tfhd = bx(b"tfhd", &[0, 0x02, 0, 0x28, 0, 0, 0, 1, 0, 0, 0x0b, 0xb8, 0, 0, 0, 0]);
        let tfdt = bx(b"tfdt", &[0, 0, 0, 0, 0, 0, 0, 9]);
        let trun = bx(b"trun", &[0, 0, 0, 0, 0, 0, 0, 4]);
        let traf = bx(b"traf", &[tfhd, tfdt, trun].concat());
        data.extend(bx(b"moof", &[mfhd.clone(), traf].concat()));
        data.extend(bx(b"mdat", b""));
        // No defaults in tfhd: trex says duration 0 and non-sync.
        let tfhd = bx(b"tfhd", &[0, 0x02, 0, 0, 0, 0, 0, 1]);
        let traf = bx(b"traf", &[tfhd, bx(b"tfdt", &[0; 8]), bx(b"trun", &[0, 0, 0, 0, 0, 0, 0, 2])].concat());
        data.extend(bx(b"moof", &[mfhd, traf].concat()));
        data.extend(bx(b"mdat", b"xx"));
        let events = Reader::default().push(&data)?;
        let Event::Fragment { tracks, keyframe, .. } = &events[1] else { panic!("fragment") };
        assert_eq!((tracks[0].base_decode_time, tracks[0].duration, *keyframe), (9, 12000, true));
        let Event::Fragment { tracks, keyframe, .. } = &events[2] else { panic!("fragment") };
        assert_eq!((tracks[0].duration, tracks[0].samples, *keyframe), (0, 2, false));
        Ok(())
    }

    /// A `trun` storing nothing per sample declares its count freely: a huge one is refused at
    /// once (it used to cost a loop of that many iterations), a real one adds up its defaults.
    #[test]
    fn a_trun_of_default_samples_is_bounded_without_a_loop() -> Result<(), Error> {
        let fragment_with = |count: u32| {
            let mut data = init(&[SynthTrack { id: 1, timescale: 90000, video: true }]);
            let mfhd = bx(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 1]);
            let tfhd = bx(b"tfhd", &[0, 0x02, 0, 0x28, 0, 0, 0, 1, 0, 0, 0x0b, 0xb8, 0, 0, 0, 0]);
            let mut trun = vec![0, 0, 0, 0];
            trun.extend(count.to_be_bytes());
            let traf = bx(b"traf", &[tfhd, bx(b"tfdt", &[0; 8]), bx(b"trun", &trun)].concat());
            data.extend(bx(b"moof", &[mfhd, traf].concat()));
            data.extend(bx(b"mdat", b""));
            data
        };
        let started = std::time::Instant::now();
        let err = Reader::default().push(&fragment_with(u32::MAX)).err();
        assert!(matches!(err, Some(Error::Malformed { .. })), "{err:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "refused without counting");
        let events = Reader::default().push(&fragment_with(MAX_DEFAULT_SAMPLES))?;
        let Event::Fragment { tracks, .. } = &events[1] else { panic!("fragment") };
        assert_eq!(
            (tracks[0].samples, tracks[0].duration),
            (MAX_DEFAULT_SAMPLES, u64::from(MAX_DEFAULT_SAMPLES) * 3000)
        );
        Ok(())
    }

    #[test]
    fn bad_input_is_an_error() {
        let data = stream();
        let mut small = Reader::new(100);
        let err = small.push(&data).err();
        assert!(matches!(err, Some(Error::TooLarge { .. })), "{err:?}");
        assert_eq!(small.push(b"x"), Err(Error::Failed));
        for bad in [
            &[0u8, 0, 0, 4, b'f', b'r', b'e', b'e'][..],
            &[0, 0, 0, 0, b'm', b'o', b'o', b'f'],
            &[0, 0, 0, 1, b'm', b'd', b'a', b't', 0, 0, 0, 0, 0, 0, 0, 3],
        ] {
            assert!(matches!(Reader::default().push(bad), Err(Error::BadSize { .. })), "{bad:?}");
        }
        assert!(matches!(Reader::default().push(&bx(b"mdat", b"x")), Err(Error::Order { .. })));
        assert!(matches!(Reader::default().push(&bx(b"moof", b"")), Err(Error::Order { .. })));
        // A fragment whose trun claims more samples than it holds.
        let mut data = init(&[SynthTrack { id: 1, timescale: 90000, video: true }]);
        let traf = bx(
            b"traf",
            &[
                bx(b"tfhd", &[0, 2, 0, 0, 0, 0, 0, 1]),
                bx(b"tfdt", &[0; 8]),
                bx(b"trun", &[0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff]),
            ]
            .concat(),
        );
        data.extend(bx(b"moof", &traf));
        assert!(matches!(Reader::default().push(&data), Err(Error::Malformed { .. })));
        // Truncated input is not an error, just no event yet; the buffer holds one box at most.
        let mut r = Reader::default();
        let data = stream();
        assert_eq!(r.push(&data[..data.len() - 1]).map(|e| e.len()), Ok(4));
        assert!(r.buf.len() < 200);
    }

    /// xorshift, so the fuzz loop needs no dependency and is reproducible.
    fn rng(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let data = stream();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..3000 {
            let mut input = if round % 3 == 0 {
                (0..(rng(&mut seed) % 600)).map(|_| rng(&mut seed) as u8).collect()
            } else {
                data.clone()
            };
            for _ in 0..(1 + rng(&mut seed) % 8) {
                if input.is_empty() {
                    break;
                }
                let at = (rng(&mut seed) as usize) % input.len();
                match rng(&mut seed) % 4 {
                    0 => input[at] = rng(&mut seed) as u8,
                    1 => input[at] ^= 0xff,
                    2 => input.truncate(at),
                    _ => input.insert(at, rng(&mut seed) as u8),
                }
            }
            let mut r = Reader::new(64 * 1024);
            let chunk = 1 + (rng(&mut seed) as usize % 97);
            for c in input.chunks(chunk) {
                if r.push(c).is_err() {
                    break;
                }
                assert!(r.buf.len() <= 64 * 1024);
            }
        }
    }
}
