//! Image paths in `paths.txt`, relative to the index folder, so an index can be searched from any
//! working directory and moved together with its images.
//!
//! Layout version 2 stores each path relative to the index folder (absolute when they share no
//! root); version 1 stored them as `embed` was given them (relative to its working directory) and
//! they are read back unchanged. Paths are made absolute and compared lexically (`.` and `..`
//! resolved without touching the file system).

use std::path::{Component, Path, PathBuf};

/// `path` made absolute against the working directory, `.` and `..` resolved lexically.
fn absolute(path: &Path) -> PathBuf {
    let joined = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `path` (as `embed` was given it) relative to the index folder `dir`, for `paths.txt`.
pub fn to_index_relative(path: &str, dir: &Path) -> String {
    let (target, base) = (absolute(Path::new(path)), absolute(dir));
    let common = target
        .components()
        .zip(base.components())
        .take_while(|(a, b)| a == b)
        .count();
    if common == 0 {
        return target.display().to_string();
    }
    let mut rel = PathBuf::new();
    for _ in base.components().skip(common) {
        rel.push("..");
    }
    for c in target.components().skip(common) {
        rel.push(c);
    }
    rel.display().to_string()
}

/// A `paths.txt` line of an index in `dir` as a path usable from the working directory: `dir`
/// joined with it, `.` and `..` resolved; relative when `dir` is.
pub fn from_index_relative(line: &str, dir: &Path) -> String {
    let line_path = Path::new(line);
    if line_path.is_absolute() {
        return line.to_string();
    }
    let mut out = PathBuf::new();
    for c in dir.join(line_path).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_the_index_folder() {
        let rel = to_index_relative("images/a.png", Path::new("out/idx"));
        assert_eq!(rel, "../../images/a.png");
        assert_eq!(
            from_index_relative(&rel, Path::new("out/idx")),
            "images/a.png"
        );
        assert_eq!(
            to_index_relative("/x/a.png", Path::new("/x/idx")),
            "../a.png"
        );
        assert_eq!(
            from_index_relative("/abs/a.png", Path::new("idx")),
            "/abs/a.png"
        );
    }
}
