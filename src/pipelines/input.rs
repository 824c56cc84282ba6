//! What pipelines run on: image files (folders expanded to the images they hold) or a pixel tensor,
//! and the name each input gives to its outputs.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// File extensions read as images when a folder is expanded.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp", "gif"];

/// Whether `path` has an image extension (case-insensitive).
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Expands folders (recursively, sorted by path) into the image files they hold; files are kept as
/// given, in order. An empty result is an error naming the inputs.
pub fn expand_images(paths: &[impl AsRef<Path>]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if is_image(&p) {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        let p = p.as_ref();
        if p.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.to_path_buf());
        }
    }
    if out.is_empty() {
        let names: Vec<String> = paths
            .iter()
            .map(|p| p.as_ref().display().to_string())
            .collect();
        return Err(Error::input(
            "images",
            format!(
                "no image found in {names:?} (looked for {})",
                IMAGE_EXTENSIONS.join(", ")
            ),
        ));
    }
    Ok(out)
}

/// The name of one input, for naming its outputs and messages: an image file, or row `i` of a pixel
/// tensor (shown as `pixels[i]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InputName {
    /// An image file.
    File(PathBuf),
    /// Row `i` of a pixel batch.
    Pixels(usize),
}

impl InputName {
    /// The file stem for output names (`pixels0` for a tensor row).
    pub fn stem(&self) -> String {
        match self {
            Self::File(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into()),
            Self::Pixels(i) => format!("pixels{i}"),
        }
    }
}

impl fmt::Display for InputName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Pixels(i) => write!(f, "pixels[{i}]"),
        }
    }
}
