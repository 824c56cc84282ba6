//! Running the `dinoreg` binary from the CLI tests: a command with a clean environment (offline Hub,
//! no scheduler variables), and the checks every CLI test makes on what it prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `dinoreg` binary with the Hub offline and no shard variables of a scheduler inherited.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dinoreg"));
    c.env("HF_HUB_OFFLINE", "1");
    for var in [
        "JOB_COMPLETION_INDEX",
        "DINOREG_SHARD_COUNT",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_COUNT",
    ] {
        c.env_remove(var);
    }
    c
}

/// Runs `dinoreg ARGS` to completion.
pub fn dinoreg(args: &[&str]) -> Output {
    bin().args(args).output().expect("cannot run dinoreg")
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "dinoreg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything the run printed on stderr.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a failure with a single `error: …` line on stderr containing `needle`, and no panic;
/// returns that line.
#[track_caller]
pub fn fails_with(out: &Output, needle: &str) -> String {
    assert!(!out.status.success(), "expected a failure");
    let err = stderr(out);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// `examples/images/<name>`, the photographs the examples and tests share.
pub fn example_image(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/images")
        .join(name)
}

/// A test path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}
