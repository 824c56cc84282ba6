//! Checking outputs before any work: every command validates each output path before it loads a
//! model or reads an image, so a typo costs nothing.
//!
//! The one rule for folders: **missing parent folders of an output (and a missing output folder)
//! are created**, by every command, before the work starts. An output then must be writable, and a
//! file output must end with one of the extensions the option accepts (the error lists them); the
//! extension decides the format.

use std::path::Path;

use anyhow::{bail, Context};

/// The lower-case extension of `path` (without the dot), if any.
pub fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// Checks the file output of `flag` at `path`: its extension is one of `accepted` (lower case,
/// without dot), it is not a folder, and its folder exists (created when missing) and is writable.
/// Returns the extension.
pub fn check_file(flag: &str, path: &Path, accepted: &[&str]) -> anyhow::Result<String> {
    let list = accepted
        .iter()
        .map(|e| format!(".{e}"))
        .collect::<Vec<_>>()
        .join(", ");
    let ext = match extension(path) {
        Some(e) if accepted.contains(&e.as_str()) => e,
        _ => bail!(
            "invalid {flag} {}: expected a file ending with {list}",
            path.display()
        ),
    };
    if path.is_dir() {
        bail!(
            "invalid {flag} {}: is a folder, expected a file ending with {list}",
            path.display()
        );
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    check_dir(flag, parent)?;
    Ok(ext)
}

/// Checks the folder output of `flag`: created when missing (with its parents), not a file, and
/// writable.
pub fn check_dir(flag: &str, dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "invalid {flag} {}: is a file, expected a folder",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{flag}: cannot create folder {}", dir.display()))?;
    let probe = dinoreg::io::output::temp_path(&dir.join("probe"));
    std::fs::File::create(&probe)
        .with_context(|| format!("{flag}: cannot write in folder {}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
