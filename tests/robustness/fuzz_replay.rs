//! The fuzz targets' bodies (`tests/fuzz/targets.rs`) on stable: every input that crashed a target
//! (`tests/fuzz/regressions/<target>/`, fixed since) and every input of the committed minimized
//! corpora (`tests/fuzz/corpus/<target>/`) must run through without a panic.
//!
//! Every target has a corpus; only the targets whose fuzzing found a crash have regressions.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};

/// A target's body: one input, no result (a panic is the failure).
type Target = fn(&[u8]);

/// Every target, by the name of its folders.
const TARGETS: [(&str, Target); 12] = [
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
    ("label_png", targets::label_png),
];

/// `tests/fuzz/<folder>`.
fn root(folder: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(folder)
}

/// The files of `dir`, sorted (none when it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    files
}

/// Runs every file of `folder/<target>/` through its target; returns how many ran per target.
fn replay(folder: &str) -> Vec<(&'static str, usize)> {
    let root = root(folder);
    let mut ran = Vec::new();
    for (name, run) in TARGETS {
        let inputs = files(&root.join(name));
        for file in &inputs {
            let data = std::fs::read(file).expect("read input");
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{name}: {} panicked", file.display());
        }
        ran.push((name, inputs.len()));
    }
    ran
}

/// Folders under `folder` that name no target (a typo would silently skip its inputs).
fn unknown_folders(folder: &str) -> Vec<PathBuf> {
    files(&root(folder))
        .into_iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !TARGETS.iter().any(|(t, _)| *t == name)
        })
        .collect()
}

#[test]
fn fuzz_crashes_stay_fixed() {
    assert_eq!(unknown_folders("regressions"), Vec::<PathBuf>::new());
    let ran = replay("regressions");
    // The config_json crashes of 2026-12-06 (10^16 layers) at least.
    assert!(
        ran.iter().any(|&(name, n)| name == "config_json" && n >= 2),
        "{ran:?}"
    );
}

#[test]
fn fuzz_corpora_replay_without_panics() {
    assert_eq!(unknown_folders("corpus"), Vec::<PathBuf>::new());
    for (name, ran) in replay("corpus") {
        assert!(ran > 0, "{name}: no corpus in tests/fuzz/corpus/{name}/");
    }
}
