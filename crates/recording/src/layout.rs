//! Where every recorded object lives (design §2), and the one parser for those keys.
//!
//! ```text
//! rec/{stream_id}/ | clips/{clip_id}/            a Root
//!   master.m3u8, thumb.jpg, clip.mp4             Rel::{Master, Thumb, ClipMp4}
//!   thumbs/{unix_ms:013}.jpg                     Rel::Thumbnail
//!   {rendition}/index.m3u8                       Rel::Playlist
//!   {rendition}/init/{session}_{v}.mp4           Rel::Init
//!   {rendition}/seg/{pdt_ms:013}_{session}_{msn:012}_{dur_us}_{v}[_d].m4s   Rel::Segment
//! ```
//!
//! Every name is canonical: `parse(x.to_string()) == x` and `parse(s).to_string() == s`, so a
//! URL path maps to at most one key and `..`, stray slashes or leading zeros are refused.

use std::fmt;
use std::time::Duration;

use uuid::Uuid;

/// Why a key was refused. The key itself is kept so the caller can log it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a recording key: {0:?}")]
pub struct BadKey(pub String);

/// The prefix one object set lives under: a broadcast's recording or a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Root {
    /// `rec/{stream_id}`: one recording per broadcast.
    Recording(Uuid),
    /// `clips/{clip_id}`: a clip's own copies, independent of the recording.
    Clip(Uuid),
}

impl Root {
    /// The full object key of `rel` under this root.
    pub fn key(&self, rel: &Rel) -> String {
        format!("{self}/{rel}")
    }

    /// Splits a full key (as a listing returns it) into its root and relative part.
    pub fn parse_key(key: &str) -> Result<(Self, Rel), BadKey> {
        let bad = || BadKey(key.to_string());
        let (kind, rest) = key.split_once('/').ok_or_else(bad)?;
        let (id, rel) = rest.split_once('/').ok_or_else(bad)?;
        let id = canonical_uuid(id).ok_or_else(bad)?;
        let root = match kind {
            "rec" => Self::Recording(id),
            "clips" => Self::Clip(id),
            _ => return Err(bad()),
        };
        Ok((root, Rel::parse(rel).map_err(|_| bad())?))
    }
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Recording(id) => write!(f, "rec/{id}"),
            Self::Clip(id) => write!(f, "clips/{id}"),
        }
    }
}

/// Only the hyphenated lowercase form, so each id has one key.
fn canonical_uuid(s: &str) -> Option<Uuid> {
    Uuid::parse_str(s).ok().filter(|id| id.to_string() == s)
}

/// A rendition's folder name: `source`, `720p`, ... Lowercase ASCII letters, digits, `-`;
/// never a name the layout itself uses at that level.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rendition(String);

impl Rendition {
    const RESERVED: [&str; 1] = ["thumbs"];

    pub fn parse(s: &str) -> Result<Self, BadKey> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !Self::RESERVED.contains(&s);
        if ok { Ok(Self(s.to_string())) } else { Err(BadKey(s.to_string())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Rendition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One packager store's lifetime (`s{epoch_ms}`): one media-worker process and stream. A new
/// session means a replaced pod or a restarted worker, so always a discontinuity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Session(pub u64);

impl Session {
    pub fn parse(s: &str) -> Result<Self, BadKey> {
        s.strip_prefix('s').and_then(number).map(Self).ok_or_else(|| BadKey(s.to_string()))
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// An init segment (ftyp+moov): `{session}_{v}.mp4`, `v` being llhls's init version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InitName {
    pub session: Session,
    pub version: u32,
}

impl InitName {
    pub fn parse(s: &str) -> Result<Self, BadKey> {
        let bad = || BadKey(s.to_string());
        let (session, version) = s.strip_suffix(".mp4").and_then(|s| s.split_once('_')).ok_or_else(bad)?;
        Ok(Self { session: Session::parse(session).map_err(|_| bad())?, version: number(version).ok_or_else(bad)? })
    }
}

impl fmt::Display for InitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}.mp4", self.session, self.version)
    }
}

/// A segment's self-describing name. Listing a rendition's `seg/` is enough to rebuild its
/// playlist: lexicographic order is playback order because `pdt_ms` is zero-padded and the
/// recorder keeps it strictly increasing per rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    /// `PROGRAM-DATE-TIME` in Unix milliseconds (13 digits until the year 2286).
    pub pdt_ms: u64,
    pub session: Session,
    /// llhls media sequence number within the session.
    pub msn: u64,
    /// Exact duration in microseconds; never zero.
    pub duration_us: u64,
    /// The init version it decodes with: `init/{session}_{init_version}.mp4`.
    pub init_version: u32,
    /// The encoder restarted before it (llhls `Segment::discontinuity`).
    pub discontinuity: bool,
}

impl SegmentName {
    /// Whether playback jumps going from `prev` to this segment (an `#EXT-X-DISCONTINUITY`
    /// before it): an encoder restart, a new session (another pod or worker), a new init, or
    /// segments lost between them. The one rule for VODs, clips and the rewind window.
    pub fn jumps_from(&self, prev: &SegmentName) -> bool {
        self.discontinuity
            || self.session != prev.session
            || self.init_version != prev.init_version
            || Some(self.msn) != prev.msn.checked_add(1)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.duration_us)
    }

    /// The init segment this one needs.
    pub fn init(&self) -> InitName {
        InitName { session: self.session, version: self.init_version }
    }

    pub fn parse(s: &str) -> Result<Self, BadKey> {
        let bad = || BadKey(s.to_string());
        let stem = s.strip_suffix(".m4s").ok_or_else(bad)?;
        let (stem, discontinuity) = match stem.strip_suffix("_d") {
            Some(stem) => (stem, true),
            None => (stem, false),
        };
        let fields: Vec<&str> = stem.split('_').collect();
        let [pdt, session, msn, dur, v] = fields[..] else { return Err(bad()) };
        // Fixed widths keep the lexicographic order; the other numbers are canonical decimals.
        if pdt.len() != 13 || msn.len() != 12 || !all_digits(pdt) || !all_digits(msn) {
            return Err(bad());
        }
        Ok(Self {
            pdt_ms: pdt.parse().map_err(|_| bad())?,
            session: Session::parse(session).map_err(|_| bad())?,
            msn: msn.parse().map_err(|_| bad())?,
            duration_us: number(dur).filter(|d| *d > 0).ok_or_else(bad)?,
            init_version: number(v).ok_or_else(bad)?,
            discontinuity,
        })
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:013}_{}_{:012}_{}_{}{}.m4s",
            self.pdt_ms,
            self.session,
            self.msn,
            self.duration_us,
            self.init_version,
            if self.discontinuity { "_d" } else { "" }
        )
    }
}

/// A key relative to its [`Root`]. `parse` is the only way a URL path becomes a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rel {
    /// `master.m3u8`: the VOD or clip master playlist.
    Master,
    /// `thumb.jpg`: the poster.
    Thumb,
    /// `clip.mp4`: a clip's single-file download.
    ClipMp4,
    /// `thumbs/{unix_ms:013}.jpg`: a thumbnail every 30 s (clip posters).
    Thumbnail(u64),
    /// `{rendition}/index.m3u8`: a VOD media playlist.
    Playlist(Rendition),
    /// `{rendition}/init/{session}_{v}.mp4`
    Init(Rendition, InitName),
    /// `{rendition}/seg/{name}`
    Segment(Rendition, SegmentName),
}

impl Rel {
    pub fn parse(s: &str) -> Result<Self, BadKey> {
        let bad = || BadKey(s.to_string());
        let parts: Vec<&str> = s.split('/').collect();
        let rel = match parts[..] {
            ["master.m3u8"] => Self::Master,
            ["thumb.jpg"] => Self::Thumb,
            ["clip.mp4"] => Self::ClipMp4,
            ["thumbs", name] => {
                let ms = name.strip_suffix(".jpg").filter(|ms| ms.len() == 13 && all_digits(ms)).ok_or_else(bad)?;
                Self::Thumbnail(ms.parse().map_err(|_| bad())?)
            }
            [r, "index.m3u8"] => Self::Playlist(Rendition::parse(r).map_err(|_| bad())?),
            [r, "init", name] => {
                Self::Init(Rendition::parse(r).map_err(|_| bad())?, InitName::parse(name).map_err(|_| bad())?)
            }
            [r, "seg", name] => {
                Self::Segment(Rendition::parse(r).map_err(|_| bad())?, SegmentName::parse(name).map_err(|_| bad())?)
            }
            _ => return Err(bad()),
        };
        Ok(rel)
    }

    /// The rendition the object belongs to, if any.
    pub fn rendition(&self) -> Option<&Rendition> {
        match self {
            Self::Playlist(r) | Self::Init(r, _) | Self::Segment(r, _) => Some(r),
            Self::Master | Self::Thumb | Self::ClipMp4 | Self::Thumbnail(_) => None,
        }
    }

    /// What the playback routes answer with.
    pub fn content_type(&self) -> &'static str {
        match self {
            Self::Master | Self::Playlist(_) => "application/vnd.apple.mpegurl",
            Self::Thumb | Self::Thumbnail(_) => "image/jpeg",
            Self::ClipMp4 | Self::Init(..) | Self::Segment(..) => "video/mp4",
        }
    }
}

impl fmt::Display for Rel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Master => f.write_str("master.m3u8"),
            Self::Thumb => f.write_str("thumb.jpg"),
            Self::ClipMp4 => f.write_str("clip.mp4"),
            Self::Thumbnail(ms) => write!(f, "thumbs/{ms:013}.jpg"),
            Self::Playlist(r) => write!(f, "{r}/index.m3u8"),
            Self::Init(r, name) => write!(f, "{r}/init/{name}"),
            Self::Segment(r, name) => write!(f, "{r}/seg/{name}"),
        }
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A canonical decimal: digits, no sign, no leading zero (except `0` itself).
fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    let canonical = all_digits(s) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Rendition {
        Rendition::parse(s).expect("valid rendition in test")
    }

    fn seg(pdt_ms: u64, session: u64, msn: u64, duration_us: u64, v: u32, d: bool) -> SegmentName {
        SegmentName { pdt_ms, session: Session(session), msn, duration_us, init_version: v, discontinuity: d }
    }

    #[test]
    fn every_shape_round_trips() {
        let s = Session(1_764_000_000_000);
        let cases = [
            ("master.m3u8", Rel::Master),
            ("thumb.jpg", Rel::Thumb),
            ("clip.mp4", Rel::ClipMp4),
            ("thumbs/1764000030000.jpg", Rel::Thumbnail(1_764_000_030_000)),
            ("thumbs/0000000000042.jpg", Rel::Thumbnail(42)),
            ("720p/index.m3u8", Rel::Playlist(r("720p"))),
            ("source/init/s1764000000000_0.mp4", Rel::Init(r("source"), InitName { session: s, version: 0 })),
            ("360p/init/s1764000000000_12.mp4", Rel::Init(r("360p"), InitName { session: s, version: 12 })),
            (
                "360p/seg/1764000001000_s1764000000000_000000000007_1001000_0.m4s",
                Rel::Segment(r("360p"), seg(1_764_000_001_000, s.0, 7, 1_001_000, 0, false)),
            ),
            (
                "360p/seg/1764000001000_s1764000000000_000000000007_1001000_3_d.m4s",
                Rel::Segment(r("360p"), seg(1_764_000_001_000, s.0, 7, 1_001_000, 3, true)),
            ),
            ("a-b/seg/0000000000000_s0_000000000000_1_0.m4s", Rel::Segment(r("a-b"), seg(0, 0, 0, 1, 0, false))),
        ];
        for (text, rel) in cases {
            assert_eq!(Rel::parse(text), Ok(rel.clone()), "{text}");
            assert_eq!(rel.to_string(), text);
        }
    }

    #[test]
    fn malformed_keys_are_refused() {
        let good = "360p/seg/1764000001000_s1764000000000_000000000007_1001000_0.m4s";
        assert!(Rel::parse(good).is_ok());
        for bad in [
            "",
            "/master.m3u8",
            "master.m3u8/",
            "index.m3u8",
            "../master.m3u8",
            "../360p/index.m3u8",
            "360p/../master.m3u8",
            "360p//index.m3u8",
            "360p/seg/x.m4s",
            "360p/init.mp4",
            "360P/index.m3u8",
            "thumbs/index.m3u8",
            "thumbs/42.jpg",
            "thumbs/00000000000042.jpg",
            // Wrong widths, leading zeros, signs, zero duration, stray suffixes.
            "360p/seg/176400000100_s1764000000000_000000000007_1001000_0.m4s",
            "360p/seg/1764000001000_s1764000000000_00000000007_1001000_0.m4s",
            "360p/seg/1764000001000_s01764000000000_000000000007_1001000_0.m4s",
            "360p/seg/1764000001000_s1764000000000_000000000007_01001000_0.m4s",
            "360p/seg/1764000001000_s1764000000000_000000000007_1001000_00.m4s",
            "360p/seg/1764000001000_s1764000000000_000000000007_0_0.m4s",
            "360p/seg/1764000001000_s1764000000000_000000000007_+1_0.m4s",
            "360p/seg/1764000001000_1764000000000_000000000007_1001000_0.m4s",
            "360p/seg/1764000001000_s1764000000000_000000000007_1001000_0_x.m4s",
            "360p/seg/1764000001000_s1764000000000_000000000007_1001000_0_d_d.m4s",
            "360p/seg/1764000001000_s1764000000000_000000000007_1001000.m4s",
            "360p/seg/1764000001000_s1764000000000_000000000007_1001000_0.mp4",
            "360p/seg/1764000001000_s1764000000000_000000000007_1001000_0.m4s?x=1",
            "360p/init/s1764000000000.mp4",
            "360p/init/s1764000000000_v1.mp4",
            "360p/init/1764000000000_1.mp4",
            "360p/index.m3u8/extra",
        ] {
            assert!(Rel::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn full_keys_split_into_root_and_rel() {
        let id = Uuid::from_u128(0x0192_abcd_0000_7000_8000_0000_0000_00ef);
        let rec = Root::Recording(id);
        let clip = Root::Clip(id);
        let rel = Rel::Playlist(r("360p"));
        assert_eq!(rec.key(&rel), format!("rec/{id}/360p/index.m3u8"));
        assert_eq!(clip.key(&Rel::Master), format!("clips/{id}/master.m3u8"));
        for root in [rec, clip] {
            assert_eq!(Root::parse_key(&root.key(&rel)), Ok((root, rel.clone())));
        }
        for bad in [
            format!("rec/{id}"),
            format!("rec/{id}/"),
            format!("vods/{id}/master.m3u8"),
            format!("rec/{}/master.m3u8", id.simple()),
            format!("rec/{}/master.m3u8", id.to_string().to_uppercase()),
            format!("rec/{id}/../master.m3u8"),
        ] {
            assert!(Root::parse_key(&bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn key_order_is_playback_order() {
        // Sessions interleave in time (a replaced pod); the zero-padded time decides.
        let keys = [
            seg(1_000_000_009_000, 5, 999_999, 2_000_000, 0, false),
            seg(1_000_000_011_000, 77, 0, 1_000_000, 0, true),
            seg(999_999_999_999, 5, 1_000_000, 1_000_000, 0, false),
        ];
        let mut names: Vec<String> = keys.iter().map(ToString::to_string).collect();
        names.sort();
        let order: Vec<u64> = names.iter().map(|n| SegmentName::parse(n).map_or(0, |s| s.pdt_ms)).collect();
        assert_eq!(order, [999_999_999_999, 1_000_000_009_000, 1_000_000_011_000]);
    }
}
