//! Playlist files on disk: the end marker a stream's media playlists get when it (or one of its
//! renditions) is over, and the master playlist an ingest pod makes per request from the source
//! it remuxes and the parts its transcode pods uploaded. No HTTP here: `hls.rs` serves the
//! master, the publisher lifecycle, the encoder and the origin's assignment end playlists.

use std::path::Path;
use std::time::Duration;

use crate::transcoders::is_rendition_name;

/// A variant whose playlist has not changed for this long is not offered to new players.
const STALE_VARIANT: Duration = Duration::from_secs(8);

/// Append `#EXT-X-ENDLIST` to a media playlist, once (written aside and renamed: a player never
/// reads half a playlist).
pub async fn end_playlist(playlist: &Path) {
    if let Ok(mut text) = tokio::fs::read_to_string(playlist).await
        && !text.contains("#EXT-X-ENDLIST")
    {
        text.push_str("#EXT-X-ENDLIST\n");
        let tmp = playlist.with_extension("m3u8.end");
        if tokio::fs::write(&tmp, text).await.is_ok() {
            let _ = tokio::fs::rename(&tmp, playlist).await;
        }
    }
}

/// One `#EXT-X-STREAM-INF` entry of a master playlist.
#[derive(Debug, Clone, PartialEq)]
struct Variant {
    attributes: String,
    uri: String,
    bandwidth: u64,
}

fn parse_master(text: &str) -> Vec<Variant> {
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    while let Some(line) = lines.next() {
        if let Some(attributes) = line.strip_prefix("#EXT-X-STREAM-INF:")
            && let Some(uri) = lines.next()
        {
            let bandwidth = attribute(attributes, "BANDWIDTH").and_then(|b| b.parse().ok()).unwrap_or(0);
            out.push(Variant { attributes: attributes.to_owned(), uri: uri.to_owned(), bandwidth });
        }
    }
    out
}

fn attribute<'a>(attributes: &'a str, name: &str) -> Option<&'a str> {
    split_attributes(attributes).into_iter().find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
}

/// `A=1,B="x,y"` into its items; quoted values (CODECS) may hold commas.
fn split_attributes(attributes: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in attributes.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&attributes[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&attributes[start..]);
    out
}

/// The peak bitrate of a variant's recent segments, from their sizes and `#EXTINF` durations:
/// a remuxed source's master entry carries only what ffmpeg guessed (often the audio alone).
async fn measured_bandwidth(variant_dir: &Path) -> Option<u64> {
    let text = tokio::fs::read_to_string(variant_dir.join("index.m3u8")).await.ok()?;
    let mut peak = 0f64;
    let mut duration = None;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = d.trim_end_matches(',').split(',').next().and_then(|d| d.parse::<f64>().ok());
        } else if !line.starts_with('#')
            && !line.trim().is_empty()
            && let Some(d) = duration.take().filter(|d| *d > 0.1)
            && let Ok(meta) = tokio::fs::metadata(variant_dir.join(line.trim())).await
        {
            peak = peak.max(meta.len() as f64 * 8.0 / d);
        }
    }
    (peak > 0.0).then_some((peak * 1.1) as u64)
}

/// Whether a media playlist is still being written: not ended, and changed within the
/// longer of `STALE_VARIANT` and three target durations (a source with long keyframe intervals
/// has long segments).
async fn live_playlist(playlist: &Path) -> bool {
    let Ok(text) = tokio::fs::read_to_string(playlist).await else { return false };
    let target = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
        .and_then(|d| d.trim().parse::<u64>().ok())
        .unwrap_or(1);
    let window = STALE_VARIANT.max(Duration::from_secs(target.saturating_mul(3)));
    let age = tokio::fs::metadata(playlist).await.and_then(|m| m.modified()).ok().and_then(|m| m.elapsed().ok());
    !text.contains("#EXT-X-ENDLIST") && age.is_some_and(|a| a < window)
}

/// The master playlist viewers get from an ingest pod: the source it remuxes plus every
/// uploaded part's renditions whose playlists are live (updated lately, not ended), best first.
/// The source's entry is made here: ffmpeg cannot know a remuxed stream's bitrate, so it is
/// measured from the segments, and the size comes from the publisher's metadata.
pub async fn merged_master(stream_dir: &Path, source_resolution: Option<(u32, u32)>) -> Option<String> {
    let mut variants: Vec<Variant> = Vec::new();
    let mut version = 3;
    let source_dir = stream_dir.join(crate::ladder::SOURCE);
    if live_playlist(&source_dir.join("index.m3u8")).await
        && let Some(bandwidth) = measured_bandwidth(&source_dir).await
    {
        let mut attributes = format!("BANDWIDTH={bandwidth}");
        if let Some((w, h)) = source_resolution {
            attributes.push_str(&format!(",RESOLUTION={w}x{h}"));
        }
        variants.push(Variant { attributes, uri: format!("{}/index.m3u8", crate::ladder::SOURCE), bandwidth });
    }
    let mut entries = tokio::fs::read_dir(stream_dir).await.ok()?;
    while let Ok(Some(e)) = entries.next_entry().await {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("master-") && name.ends_with(".m3u8")) {
            continue;
        }
        let Ok(text) = tokio::fs::read_to_string(e.path()).await else { continue };
        if let Some(v) =
            text.lines().find_map(|l| l.strip_prefix("#EXT-X-VERSION:")).and_then(|v| v.trim().parse().ok())
        {
            version = version.max(v);
        }
        for v in parse_master(&text) {
            let Some(variant) = v.uri.strip_suffix("/index.m3u8").filter(|d| is_rendition_name(d)) else { continue };
            if variants.iter().any(|o| o.uri == v.uri)
                || !live_playlist(&stream_dir.join(variant).join("index.m3u8")).await
            {
                continue;
            }
            variants.push(v);
        }
    }
    if variants.is_empty() {
        return None;
    }
    variants.sort_by_key(|v| std::cmp::Reverse(v.bandwidth));
    let mut out = format!("#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in variants {
        out.push_str(&format!("#EXT-X-STREAM-INF:{}\n{}\n", v.attributes, v.uri));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_attributes_parse_with_quoted_commas() {
        let v = parse_master(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=515900,RESOLUTION=426x240,CODECS=\"avc1.42c015,mp4a.40.2\"\n240p/index.m3u8\n",
        );
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].bandwidth, v[0].uri.as_str()), (515_900, "240p/index.m3u8"));
        assert_eq!(attribute(&v[0].attributes, "CODECS"), Some("\"avc1.42c015,mp4a.40.2\""));
        assert_eq!(attribute(&v[0].attributes, "RESOLUTION"), Some("426x240"));
    }

    #[tokio::test]
    async fn the_merged_master_offers_live_parts_best_first_and_measures_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |p: &str, s: &[u8]| {
            let p = d.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, s).unwrap();
        };
        // ffmpeg's own master for the remuxed source is ignored (it has no bitrate to offer).
        write("master.m3u8", b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=75900,RESOLUTION=1280x720\nsource/index.m3u8\n");
        write("source/index.m3u8", b"#EXTM3U\n#EXTINF:1.000000,\nseg_00001.ts\n#EXTINF:2.000000,\nseg_00002.ts\n");
        write("source/seg_00001.ts", &vec![0u8; 500_000]); // 4 Mbps
        write("source/seg_00002.ts", &vec![0u8; 250_000]); // 1 Mbps
        write(
            "master-t0.m3u8",
            b"#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360\n360p/index.m3u8\n",
        );
        write("360p/index.m3u8", b"#EXTM3U\n#EXTINF:1.0,\nseg_1.ts\n");
        write(
            "master-t1.m3u8",
            b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720\n720p/index.m3u8\n\n#EXT-X-STREAM-INF:BANDWIDTH=1500000\n480p/index.m3u8\n",
        );
        write("720p/index.m3u8", b"#EXTM3U\n#EXTINF:1.0,\nseg_1.ts\n#EXT-X-ENDLIST\n"); // taken away
        // 480p's part never uploaded its playlist (its pod died before the first segment).
        let m = merged_master(d, Some((1280, 720))).await.unwrap();
        let uris: Vec<&str> = m.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(uris, ["source/index.m3u8", "360p/index.m3u8"], "{m}");
        assert!(m.contains("#EXT-X-VERSION:6"));
        assert!(m.contains("BANDWIDTH=4400000,RESOLUTION=1280x720\nsource/"), "peak of the source's segments: {m}");
        assert!(!m.contains("75900"));
        assert_eq!(merged_master(&d.join("nothing"), None).await, None);
    }
}
