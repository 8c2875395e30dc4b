//! Hand-built fMP4 for unit tests (the integration tests use real ffmpeg output).

pub(crate) fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&u32::try_from(body.len() + 8).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

fn full(version: u8, flags: u32, rest: &[u8]) -> Vec<u8> {
    let mut out = (flags & 0x00ff_ffff | u32::from(version) << 24).to_be_bytes().to_vec();
    out.extend_from_slice(rest);
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub(crate) struct SynthTrack {
    pub(crate) id: u32,
    pub(crate) timescale: u32,
    pub(crate) video: bool,
}

/// ftyp + moov with one trak per track (avc1 640x360 High@3.1 / mp4a AAC-LC) and trex defaults.
pub(crate) fn init(tracks: &[SynthTrack]) -> Vec<u8> {
    let ftyp = bx(b"ftyp", b"iso6\0\0\0\0iso6cmfc");
    let mut moov = Vec::new();
    for t in tracks {
        let mut tkhd = vec![0u8; 8];
        tkhd.extend_from_slice(&t.id.to_be_bytes());
        tkhd.extend_from_slice(&[0u8; 68]);
        let tkhd = bx(b"tkhd", &full(0, 3, &tkhd));
        let mut mdhd = vec![0u8; 8];
        mdhd.extend_from_slice(&t.timescale.to_be_bytes());
        mdhd.extend_from_slice(&[0u8; 8]);
        let mdhd = bx(b"mdhd", &full(0, 0, &mdhd));
        let handler: &[u8; 4] = if t.video { b"vide" } else { b"soun" };
        let hdlr = bx(b"hdlr", &full(0, 0, &cat(&[&[0; 4], handler, &[0; 13]])));
        let entry = if t.video {
            let mut v = vec![0u8; 78];
            v[7] = 1;
            v[24..26].copy_from_slice(&640u16.to_be_bytes());
            v[26..28].copy_from_slice(&360u16.to_be_bytes());
            bx(b"avc1", &cat(&[&v, &bx(b"avcC", &[1, 0x64, 0x00, 0x1f, 0xff, 0xe0, 0x00])]))
        } else {
            let mut a = vec![0u8; 28];
            a[7] = 1;
            // ES_Descriptor > DecoderConfigDescriptor (AAC, 0x40) > DecSpecificInfo (AOT 2).
            let dsi = [5u8, 2, 0x12, 0x10];
            let dcd = cat(&[&[4u8, 13 + 4, 0x40, 0x15], &[0; 11], &dsi]);
            let es = cat(&[&[3u8, (3 + dcd.len()) as u8, 0, 1, 0], &dcd]);
            bx(b"mp4a", &cat(&[&a, &bx(b"esds", &full(0, 0, &es))]))
        };
        let stsd = bx(b"stsd", &full(0, 0, &cat(&[&1u32.to_be_bytes(), &entry])));
        let minf = bx(b"minf", &bx(b"stbl", &stsd));
        let mdia = bx(b"mdia", &cat(&[&mdhd, &hdlr, &minf]));
        moov.extend(bx(b"trak", &cat(&[&tkhd, &mdia])));
    }
    let mut mvex = Vec::new();
    for t in tracks {
        // trex: default duration 0 and flags non-sync, so tests see tfhd/trun take precedence.
        let body = cat(&[
            &t.id.to_be_bytes(),
            &1u32.to_be_bytes(),
            &0u32.to_be_bytes(),
            &0u32.to_be_bytes(),
            &0x0001_0000u32.to_be_bytes(),
        ]);
        mvex.extend(bx(b"trex", &full(0, 0, &body)));
    }
    moov.extend(bx(b"mvex", &mvex));
    cat(&[&ftyp, &bx(b"moov", &moov)])
}

/// One track's run inside a synthetic fragment.
pub(crate) struct SynthRun {
    pub(crate) track: u32,
    pub(crate) decode_time: u64,
    pub(crate) durations: Vec<u32>,
    pub(crate) sync: bool,
}

/// styp + moof (tfhd default-base-is-moof, tfdt v1, trun with durations and first-sample flags) + mdat.
pub(crate) fn fragment(seq: u32, runs: &[SynthRun]) -> Vec<u8> {
    let mut moof = bx(b"mfhd", &full(0, 0, &seq.to_be_bytes()));
    for r in runs {
        let tfhd = bx(b"tfhd", &full(0, 0x02_0000, &r.track.to_be_bytes()));
        let tfdt = bx(b"tfdt", &full(1, 0, &r.decode_time.to_be_bytes()));
        let first: u32 = if r.sync { 0x0200_0000 } else { 0x0101_0000 };
        let mut trun = cat(&[&(r.durations.len() as u32).to_be_bytes(), &0u32.to_be_bytes(), &first.to_be_bytes()]);
        for d in &r.durations {
            trun.extend_from_slice(&d.to_be_bytes());
            trun.extend_from_slice(&10u32.to_be_bytes());
        }
        let trun = bx(b"trun", &full(0, 0x01 | 0x04 | 0x100 | 0x200, &trun));
        moof.extend(bx(b"traf", &cat(&[&tfhd, &tfdt, &trun])));
    }
    cat(&[&bx(b"styp", b"msdh\0\0\0\0msdhmsix"), &bx(b"moof", &moof), &bx(b"mdat", &seq.to_be_bytes().repeat(4))])
}
