//! The files of an embedding folder (what `dinoreg embed` writes and `dinoreg search` reads):
//!
//! | file | content |
//! | --- | --- |
//! | `index.json` | [`IndexMeta`]: model, descriptor, dims, count, shard, whether the job finished |
//! | `embeddings.npy` | `(N, D)` float32, one L2-normalised row per image |
//! | `paths.txt` | one image path per line, in the order of the rows, relative to this folder (layout 2; see [`super::relpath`]) |
//! | `skipped.txt` | `path<TAB>reason` per unreadable image |
//! | `chunks/` | the job's journal (see [`super::chunks`]), the source of the files above |
//! | `hnsw.bin` | the optional approximate index (see [`super::approx`]) |
//!
//! Every file is written to a temporary file in the same folder and renamed over its target
//! ([`crate::io::output`]).

use std::path::{Path, PathBuf};

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::shard::Shard;
use crate::io::output::write_bytes;
use crate::{Error, Result};

/// The metadata file.
pub const META_FILE: &str = "index.json";
/// The embeddings array.
pub const EMBEDDINGS_FILE: &str = "embeddings.npy";
/// The image paths, one per row.
pub const PATHS_FILE: &str = "paths.txt";
/// The unreadable images and why.
pub const SKIPPED_FILE: &str = "skipped.txt";
/// The folder of the job's chunk files.
pub const CHUNKS_DIR: &str = "chunks";

/// The version of the folder layout written in `index.json`: 2 stores `paths.txt` relative to the
/// folder. Version 1 (paths relative to where `embed` ran) is still read.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest layout version still read.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

/// `index.json`: what made the embeddings, so that queries are embedded the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    /// The layout version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// The model: an absolute local folder or a Hub id.
    pub model: String,
    /// The descriptor in its text form (`cls`, `mean`, `cls+mean`, `gem:P`).
    pub descriptor: String,
    /// The length of each embedding.
    pub dims: usize,
    /// Rows of `embeddings.npy` (0 until the job finished).
    pub count: usize,
    /// Unreadable images listed in `skipped.txt`.
    pub skipped: usize,
    /// The part of the collection this folder holds, when sharded.
    pub shard: Option<Shard>,
    /// Whether the job finished and the consolidated files are written.
    pub complete: bool,
}

impl IndexMeta {
    /// Reads `dir/index.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| {
            Error::input(
                path.display().to_string(),
                format!("not an embedding index.json ({e})"),
            )
        })
    }

    /// Writes `dir/index.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::input(META_FILE, e.to_string()))?;
        write_bytes(&dir.join(META_FILE), format!("{text}\n").as_bytes())
    }
}

/// What `index.json` records as the model of `source`: the absolute folder (or file) of a local
/// model, else the Hub id as given, so that queries are later embedded by the same model.
///
/// ```
/// use dinoreg::retrieval::store::model_id;
/// assert_eq!(model_id("facebook/dinov2-with-registers-small"), "facebook/dinov2-with-registers-small");
/// assert!(std::path::Path::new(&model_id("tests/fixtures/model/reg4")).is_absolute());
/// ```
pub fn model_id(source: &str) -> String {
    let path = Path::new(source);
    match path.exists().then(|| path.canonicalize()) {
        Some(Ok(p)) => p.display().to_string(),
        _ => source.to_string(),
    }
}

/// An unreadable image and why it was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The image path.
    pub path: String,
    /// The one-line reason.
    pub reason: String,
}

/// The consolidated content of an embedding folder.
#[derive(Debug, Clone)]
pub struct Embeddings {
    /// What made them.
    pub meta: IndexMeta,
    /// `(N, D)` rows.
    pub vectors: Array2<f32>,
    /// The image of each row.
    pub paths: Vec<String>,
    /// Images that could not be read.
    pub skipped: Vec<Skipped>,
}

impl Embeddings {
    /// Reads a finished embedding folder, checking that its files agree.
    pub fn read(dir: &Path) -> Result<Self> {
        let meta = IndexMeta::read(dir)?;
        let name = dir.display().to_string();
        if !meta.complete {
            return Err(Error::input(
                name,
                "the embedding job has not finished; run `dinoreg embed` again with the same arguments to resume it",
            ));
        }
        let array = crate::io::npy::read_array(dir.join(EMBEDDINGS_FILE))?;
        let vectors = array.into_dimensionality::<ndarray::Ix2>().map_err(|_| {
            Error::input(
                dir.join(EMBEDDINGS_FILE).display().to_string(),
                "expected a 2-D array (N, D)",
            )
        })?;
        let mut paths = read_lines(&dir.join(PATHS_FILE))?;
        if meta.format >= 2 {
            for p in &mut paths {
                *p = super::relpath::from_index_relative(p, dir);
            }
        }
        let skipped = read_lines(&dir.join(SKIPPED_FILE))?
            .into_iter()
            .map(|line| {
                let (path, reason) = line.split_once('\t').unwrap_or((line.as_str(), ""));
                Skipped {
                    path: path.to_string(),
                    reason: reason.to_string(),
                }
            })
            .collect();
        let embeddings = Self {
            meta,
            vectors,
            paths,
            skipped,
        };
        embeddings.check(&name)?;
        Ok(embeddings)
    }

    /// Checks that the parts agree: the layout version, one path per row, `dims` columns, and the
    /// counts of `index.json` (`count`, `skipped`). `name` is the folder, for the message.
    pub fn check(&self, name: &str) -> Result<()> {
        check_parts(
            name,
            &self.meta,
            self.vectors.dim(),
            self.paths.len(),
            self.skipped.len(),
        )
    }

    /// Writes the consolidated files, then `index.json` (last, with `complete: true`), after checking
    /// that the parts agree as [`Embeddings::check`] does.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let meta = IndexMeta {
            count: self.paths.len(),
            skipped: self.skipped.len(),
            complete: true,
            format: FORMAT_VERSION,
            ..self.meta.clone()
        };
        check_parts(
            &dir.display().to_string(),
            &meta,
            self.vectors.dim(),
            self.paths.len(),
            self.skipped.len(),
        )?;
        crate::io::npy::write_array(dir.join(EMBEDDINGS_FILE), &self.vectors)?;
        let paths: Vec<String> = self
            .paths
            .iter()
            .map(|p| super::relpath::to_index_relative(p, dir))
            .collect();
        write_lines(&dir.join(PATHS_FILE), paths.iter().map(String::as_str))?;
        let skipped: Vec<String> = self
            .skipped
            .iter()
            .map(|s| format!("{}\t{}", s.path, s.reason))
            .collect();
        write_lines(&dir.join(SKIPPED_FILE), skipped.iter().map(String::as_str))?;
        meta.write(dir)
    }
}

/// The checks of [`Embeddings::check`] on the parts' sizes.
fn check_parts(
    name: &str,
    meta: &IndexMeta,
    (rows, dims): (usize, usize),
    paths: usize,
    skipped: usize,
) -> Result<()> {
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&meta.format) {
        return Err(Error::input(
            name,
            format!(
                "index.json has layout version {}, this dinoreg reads versions {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}",
                meta.format
            ),
        ));
    }
    if rows != paths || rows != meta.count || dims != meta.dims || skipped != meta.skipped {
        return Err(Error::input(
            name,
            format!(
                "embeddings.npy is {rows}x{dims}, paths.txt has {paths} lines and skipped.txt {skipped}, but index.json says {}x{} and {} skipped",
                meta.count, meta.dims, meta.skipped
            ),
        ));
    }
    Ok(())
}

/// Reads a text file as lines (no trailing empty line).
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// Writes one line per item, atomically.
pub fn write_lines<'a>(path: &Path, lines: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    write_bytes(path, text.as_bytes())
}

/// Creates `dir` (and its parents) when missing.
pub fn ensure_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    Ok(dir.to_path_buf())
}
