//! Every seed and every input a fuzzer once broke onair with, through its target again (`cargo
//! test`, no fuzzer needed): a found crash is fixed once and stays fixed. Inputs live in
//! `seeds/{target}/` (where a fuzzing run starts) and `regressions/{target}/` (what
//! `scripts/fuzz.sh` found; the file name says why it is kept).

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("flv_reader", onair_fuzz::flv_reader),
    ("fmp4_upload", onair_fuzz::fmp4_upload),
    ("rtmp_session", onair_fuzz::rtmp_session),
    ("chat_frame", onair_fuzz::chat_frame),
];

fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).expect("a readable input")))
        .collect();
    out.sort();
    out
}

#[test]
fn seeds_and_found_inputs_pass_their_targets() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ran = 0;
    for (name, target) in TARGETS {
        let seeds = inputs(&root.join("seeds").join(name));
        assert!(!seeds.is_empty(), "{name} has seeds to start from");
        for (path, bytes) in seeds.iter().chain(inputs(&root.join("regressions").join(name)).iter()) {
            let outcome = std::panic::catch_unwind(|| target(bytes));
            assert!(outcome.is_ok(), "{path} broke {name} again");
            ran += 1;
        }
    }
    assert!(ran >= TARGETS.len());
}

/// The RTMP target gets past the handshake and through a real client's commands: a fuzzer
/// starting from its seed explores the chunk stream and AMF, not only the handshake.
#[test]
fn a_real_publishers_session_reaches_media() {
    assert_eq!(onair_fuzz::rtmp_session_tags(&onair_fuzz::publisher_seed()), 2, "a video and an audio tag");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seed = std::fs::read(root.join("seeds/rtmp_session/publish")).expect("the committed seed");
    assert_eq!(onair_fuzz::rtmp_session_tags(&seed), 2, "the committed seed still reaches media");
}

/// Writes the RTMP seed (`cargo test -p onair-fuzz -- --ignored write_rtmp_seed`), after a
/// change to what a publisher sends.
#[test]
#[ignore = "writes into the source tree"]
fn write_rtmp_seed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(root.join("seeds/rtmp_session")).unwrap();
    std::fs::write(root.join("seeds/rtmp_session/publish"), onair_fuzz::publisher_seed()).unwrap();
}
