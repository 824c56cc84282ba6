//! The fuzz targets' bodies (`tests/fuzz/targets.rs`) on stable: every input that crashed a target
//! (`tests/fuzz/regressions/<target>/`, fixed since) and every input of the committed minimized
//! corpora (`tests/fuzz/corpus/<target>/`) must run through without a panic.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::Path;

/// Every target, by the name of its folders.
const TARGETS: [(&str, fn(&[u8])); 11] = [
    ("config_json", targets::config_json),
    ("preprocessor_config", targets::preprocessor_config),
    ("npy", targets::npy),
    ("safetensors", targets::safetensors),
    ("pth", targets::pth),
    ("index_files", targets::index_files),
    ("hnsw", targets::hnsw),
    ("chunks", targets::chunks),
    ("voc_xml", targets::voc_xml),
    ("coco_json", targets::coco_json),
    ("image", targets::image),
];

/// Runs every file of `folder/<target>/` through its target; returns how many ran.
fn replay(folder: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz").join(folder);
    let mut ran = 0;
    for (name, run) in TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).expect("read input");
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{name}: {} panicked", file.display());
            ran += 1;
        }
    }
    ran
}

#[test]
fn fuzz_crashes_stay_fixed() {
    assert!(replay("regressions") > 0, "no regression inputs found");
}

#[test]
fn fuzz_corpora_replay_without_panics() {
    assert!(replay("corpus") > 0, "no corpus found");
}
