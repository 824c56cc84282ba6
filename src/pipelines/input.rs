//! What pipelines run on: image files (folders expanded to the images they hold), decoded images or a
//! pixel tensor, the name each input gives to its outputs, and the output file of each input when a
//! run writes one file per input.

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

/// The name of one input, for naming its outputs and messages: an image file, an image passed
/// decoded, or row `i` of a pixel tensor (shown as `pixels[i]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InputName {
    /// An image file.
    File(PathBuf),
    /// An image passed decoded (`run_image`), shown as `image`.
    Image,
    /// Row `i` of a pixel batch.
    Pixels(usize),
}

impl InputName {
    /// The file stem for output names (`image` for a decoded image, `pixels0` for a tensor row).
    pub fn stem(&self) -> String {
        match self {
            Self::File(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into()),
            Self::Image => "image".into(),
            Self::Pixels(i) => format!("pixels{i}"),
        }
    }
}

impl fmt::Display for InputName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Image => write!(f, "image"),
            Self::Pixels(i) => write!(f, "pixels[{i}]"),
        }
    }
}

/// The output file of each input when a run writes one file per input: `path` itself for one
/// input, else `<stem>_<input stem>.<ext>` beside it (`_N` appended, N the input's position, when
/// inputs share a stem: [`crate::io::output::disambiguate`]).
///
/// ```
/// use std::path::{Path, PathBuf};
/// use dinoreg::pipelines::{output_paths, InputName};
///
/// let names = [InputName::File("a/cat.png".into()), InputName::Pixels(1)];
/// assert_eq!(
///     output_paths(Path::new("out/depth.png"), &names),
///     [PathBuf::from("out/depth_cat.png"), PathBuf::from("out/depth_pixels1.png")]
/// );
/// assert_eq!(output_paths("d.png", &names[..1]), [PathBuf::from("d.png")]);
/// ```
pub fn output_paths(path: impl AsRef<Path>, names: &[InputName]) -> Vec<PathBuf> {
    let path = path.as_ref();
    if names.len() == 1 {
        return vec![path.to_path_buf()];
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let stems: Vec<String> = names.iter().map(|n| n.stem()).collect();
    crate::io::output::disambiguate(&stems)
        .into_iter()
        .map(|name| path.with_file_name(format!("{stem}_{name}{ext}")))
        .collect()
}
