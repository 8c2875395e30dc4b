//! FLV framing: RTMP audio/video messages written as an FLV stream (what ffmpeg reads on stdin,
//! what an ingest pod relays to its transcode pods) and read back into tags. The reader takes
//! bytes from the network, so it is one of the fuzzed parsers (`fuzz/`).

use bytes::Bytes;

/// One FLV tag: its type (`AUDIO`, `VIDEO`, or another the reader passes through), its
/// timestamp in milliseconds, and its payload.
#[derive(Clone, Debug)]
pub struct Tag {
    pub kind: u8,
    pub ts: u32,
    pub data: Bytes,
}

/// The FLV file header for a stream with video and/or audio, plus the first PreviousTagSize.
pub fn header(has_audio: bool, has_video: bool) -> Vec<u8> {
    let flags = (u8::from(has_audio) << 2) | u8::from(has_video);
    let mut h = b"FLV".to_vec();
    h.extend([1, flags, 0, 0, 0, 9]);
    h.extend([0, 0, 0, 0]);
    h
}

pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;

/// An FLV video payload carrying the AVC decoder configuration (codec 7, packet type 0).
pub fn is_avc_config(data: &[u8]) -> bool {
    data.len() > 1 && data[0] & 0x0f == 7 && data[1] == 0
}

/// An FLV audio payload carrying the AAC AudioSpecificConfig (format 10, packet type 0).
pub fn is_aac_config(data: &[u8]) -> bool {
    data.len() > 1 && data[0] >> 4 == 10 && data[1] == 0
}

/// An FLV video payload in H.264 (AVC, codec id 7).
pub fn is_avc(data: &[u8]) -> bool {
    data.first().is_some_and(|b| b & 0x0f == 7)
}

/// An FLV audio payload in AAC (sound format 10).
pub fn is_aac(data: &[u8]) -> bool {
    data.first().is_some_and(|b| b >> 4 == 10)
}

/// An FLV video payload that is a keyframe (frame type 1).
pub fn is_keyframe(data: &[u8]) -> bool {
    !data.is_empty() && data[0] >> 4 == 1
}

/// One FLV tag: type, 24-bit size, 32-bit timestamp (24 + extended 8), stream id 0, data,
/// then the PreviousTagSize that follows every tag.
pub fn tag(kind: u8, timestamp_ms: u32, data: &[u8]) -> Vec<u8> {
    let len = data.len() as u32;
    let mut t = Vec::with_capacity(data.len() + 15);
    t.push(kind);
    t.extend(&len.to_be_bytes()[1..]);
    t.extend(&timestamp_ms.to_be_bytes()[1..]);
    t.push((timestamp_ms >> 24) as u8);
    t.extend([0, 0, 0]);
    t.extend(data);
    t.extend((len + 11).to_be_bytes());
    t
}

/// Incremental FLV parser: bytes in, tags out. Holds at most one tag (< 16 MiB) beyond what it
/// has handed out.
#[derive(Default)]
pub struct FlvReader {
    buf: Vec<u8>,
    header_done: bool,
}

impl FlvReader {
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete tag, `Ok(None)` when more bytes are needed, `Err` on a stream that is
    /// not FLV.
    pub fn next_tag(&mut self) -> Result<Option<Tag>, &'static str> {
        if !self.header_done {
            if self.buf.len() < 13 {
                return Ok(None);
            }
            if &self.buf[..3] != b"FLV" {
                return Err("not an FLV stream");
            }
            let header_len = u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]) as usize;
            if !(9..=64).contains(&header_len) {
                return Err("bad FLV header");
            }
            if self.buf.len() < header_len + 4 {
                return Ok(None);
            }
            self.buf.drain(..header_len + 4);
            self.header_done = true;
        }
        if self.buf.len() < 11 {
            return Ok(None);
        }
        let kind = self.buf[0];
        let size = u32::from_be_bytes([0, self.buf[1], self.buf[2], self.buf[3]]) as usize;
        let ts = u32::from_be_bytes([self.buf[7], self.buf[4], self.buf[5], self.buf[6]]);
        if self.buf.len() < 11 + size + 4 {
            return Ok(None);
        }
        let data = Bytes::copy_from_slice(&self.buf[11..11 + size]);
        self.buf.drain(..11 + size + 4);
        Ok(Some(Tag { kind, ts, data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(feed_bytes: &[u8]) -> Vec<Tag> {
        let mut r = FlvReader::default();
        let mut out = Vec::new();
        // Byte by byte: a tag split across reads must come out whole.
        for b in feed_bytes {
            r.extend(&[*b]);
            while let Some(t) = r.next_tag().unwrap() {
                out.push(t);
            }
        }
        out
    }

    #[test]
    fn tags_survive_the_round_trip_through_flv() {
        let mut bytes = header(true, true);
        bytes.extend(tag(VIDEO, 0x0102_0304, &[0x17, 0, 1, 2]));
        bytes.extend(tag(AUDIO, 7, &[0xaf, 1, 9]));
        let tags = drain(&bytes);
        assert_eq!(tags.len(), 2);
        assert_eq!((tags[0].kind, tags[0].ts, &tags[0].data[..]), (VIDEO, 0x0102_0304, &[0x17, 0, 1, 2][..]));
        assert_eq!((tags[1].kind, tags[1].ts, &tags[1].data[..]), (AUDIO, 7, &[0xaf, 1, 9][..]));
        let mut bad = FlvReader::default();
        bad.extend(b"GET / HTTP/1.1\r\n\r\n");
        assert!(bad.next_tag().is_err());
    }

    #[test]
    fn tags_are_framed_as_flv_says() {
        assert_eq!(header(true, true), vec![b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0]);
        let t = tag(VIDEO, 0x0102_0304, &[0xaa, 0xbb]);
        assert_eq!(t, vec![9, 0, 0, 2, 0x02, 0x03, 0x04, 0x01, 0, 0, 0, 0xaa, 0xbb, 0, 0, 0, 13]);
        assert!(
            is_avc_config(&[0x17, 0])
                && !is_avc_config(&[0x17, 1])
                && is_keyframe(&[0x17, 1])
                && !is_keyframe(&[0x27, 1])
        );
        assert!(is_aac_config(&[0xaf, 0]) && !is_aac_config(&[0xaf, 1]));
        assert!(is_avc(&[0x27]) && !is_avc(&[0x22]) && !is_avc(&[]) && is_aac(&[0xaf]) && !is_aac(&[0x2f]));
    }
}
