//! Which renditions a broadcast records when its channel keeps only the ladder's top and lowest
//! (`RecordRenditions::TopAndLowest`): decided per segment against what the stream packages at
//! that moment, so a ladder that changes (a shed level, a transcode pod's new assignment) goes on
//! recording its new extremes, and the VOD plan's coverage rule leaves out a rendition that was
//! an extreme only for a while.

use crate::ladder::SOURCE;

/// A rendition's place in the ladder: the source above every rung, rungs by height.
fn rank(name: &str) -> Option<u32> {
    if name == SOURCE {
        return Some(u32::MAX);
    }
    name.strip_suffix('p')?.parse().ok()
}

/// Whether `rendition` is the top or the lowest of what the stream packages (`packaged`, in any
/// order; `rendition` counts as packaged). A name that cannot be ranked is kept: a few bytes
/// too many rather than a VOD missing something.
pub fn top_or_lowest(packaged: &[String], rendition: &str) -> bool {
    let Some(own) = rank(rendition) else { return true };
    let (lowest, top) =
        packaged.iter().filter_map(|n| rank(n)).chain([own]).fold((u32::MAX, 0), |(lo, hi), r| (lo.min(r), hi.max(r)));
    own == lowest || own == top
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn the_top_and_the_lowest_of_what_is_packaged() {
        let full = ladder(&["720p", "480p", "360p"]);
        let kept: Vec<&str> = ["720p", "480p", "360p"].into_iter().filter(|r| top_or_lowest(&full, r)).collect();
        assert_eq!(kept, ["720p", "360p"]);
        // An ingest pod packages the source and its transcode pods' rungs: the source is the top.
        let split = ladder(&["source", "1080p", "720p", "480p"]);
        let kept: Vec<&str> =
            ["source", "1080p", "720p", "480p"].into_iter().filter(|r| top_or_lowest(&split, r)).collect();
        assert_eq!(kept, ["source", "480p"]);
        // A one-rendition ladder (passthrough) is both.
        assert!(top_or_lowest(&ladder(&["source"]), "source"));
        // Not yet listed: judged as if it were.
        assert!(top_or_lowest(&ladder(&["720p"]), "360p"));
        assert!(!top_or_lowest(&ladder(&["720p", "360p"]), "480p"));
        // A level shed that drops the lowest rung makes the next one the lowest.
        assert!(top_or_lowest(&ladder(&["720p", "480p"]), "480p"));
        // Names that are not ladder rungs are kept.
        assert!(top_or_lowest(&full, "audio"));
    }
}
