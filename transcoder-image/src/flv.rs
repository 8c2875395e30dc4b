//! Writing RTMP audio/video messages as an FLV stream (what ffmpeg reads on stdin).

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

#[cfg(test)]
mod tests {
    use super::*;

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
