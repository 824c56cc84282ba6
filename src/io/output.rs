//! Writing outputs without ever losing what was there: everything goes to a temporary file in the
//! destination folder, which is then renamed over the destination, so a failed or interrupted write
//! leaves the old file (or nothing) and no half-written one. Every output gets the permissions a
//! plain `File::create` gives under the process's umask (0644 under umask 022), whatever the writer
//! did to its temporary file (some writers create 0600 files).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Error, Result};

/// A fresh temporary path next to `path` (same folder, so the rename is atomic).
pub fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".to_string());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

/// Calls `write` with a temporary path, then renames the temporary file over `path`. On any error the
/// temporary file is removed and `path` is untouched. A missing destination folder is an
/// [`Error::Io`] naming `path`.
pub fn write_with<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("folder {} does not exist", parent.display()),
                ),
            ));
        }
    }
    let tmp = temp_path(path);
    // The mode a plain create gets under the umask, restored after `write` (which may replace the
    // file with one of its own, e.g. a 0600 temporary file).
    let permissions = std::fs::File::create(&tmp)
        .and_then(|f| f.metadata())
        .map(|m| m.permissions())
        .map_err(|e| Error::io(path, e));
    let result = permissions.and_then(|permissions| {
        write(&tmp)?;
        std::fs::set_permissions(&tmp, permissions).map_err(|e| Error::io(path, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically (see [`write_with`]).
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |tmp| {
        std::fs::File::create(tmp)
            .and_then(|mut f| {
                f.write_all(bytes)?;
                f.sync_all()
            })
            .map_err(|e| Error::io(path, e))
    })
}

/// The one collision rule of every command that writes a file per image: a name shared by several
/// images gets `_N` added, N the image's 0-based position in the input list; unique names are kept.
///
/// ```
/// use dinoreg::io::output::disambiguate;
/// let names = ["cat", "dog", "cat"].map(String::from);
/// assert_eq!(disambiguate(&names), ["cat_0", "dog", "cat_2"]);
/// ```
pub fn disambiguate(names: &[String]) -> Vec<String> {
    // Counted once, so a folder of many images costs one pass, not one per name.
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for name in names {
        *counts.entry(name.as_str()).or_default() += 1;
    }
    names
        .iter()
        .enumerate()
        .map(|(i, s)| match counts[s.as_str()] {
            1 => s.clone(),
            _ => format!("{s}_{i}"),
        })
        .collect()
}
