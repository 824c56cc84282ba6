//! The embedding job's journal: one pair of files per finished batch in `<out>/chunks/`, so that an
//! interrupted job resumes where it stopped and loses nothing.
//!
//! A chunk `NNNNNNNN` is `NNNNNNNN.npy` `(n, D)` float32 (the batch's embeddings) and `NNNNNNNN.tsv`, one
//! line per image of the batch: `ok<TAB>path` (the next row of the `.npy`) or `skip<TAB>path<TAB>reason`.
//! Both are written through temporary files renamed into place, the `.tsv` last: a chunk exists once its
//! `.tsv` does. Anything else in the folder (temporary files, a `.npy` without its `.tsv`) is what an
//! interruption left behind, and [`Journal::open`] removes it. Later chunks win when a path appears twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::Array2;

use super::store::{ensure_dir, read_lines, write_lines, CHUNKS_DIR};
use crate::{Error, Result};

/// What happened to one image.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Its embedding.
    Embedded(Vec<f32>),
    /// Why it could not be read.
    Skipped(String),
}

/// One image's entry in the journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The image path as the job lists it.
    pub path: String,
    /// Its embedding or why it was skipped.
    pub outcome: Outcome,
}

/// The chunk folder of an output folder.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    dims: usize,
}

impl Journal {
    /// Opens (creating it when missing) `<out>/chunks/` for embeddings of length `dims`, and removes
    /// what an interrupted run left half-written.
    pub fn open(out: &Path, dims: usize) -> Result<Self> {
        let dir = ensure_dir(&out.join(CHUNKS_DIR))?;
        let journal = Self { dir, dims };
        let complete = journal.chunks()?;
        for entry in journal.entries()? {
            let name = entry
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let stem = name
                .strip_suffix(".npy")
                .and_then(|s| s.parse::<u64>().ok());
            let stale = name.starts_with('.') || stem.is_some_and(|n| !complete.contains(&n));
            if stale {
                std::fs::remove_file(&entry).map_err(|e| Error::io(&entry, e))?;
            }
        }
        Ok(journal)
    }

    fn entries(&self) -> Result<Vec<PathBuf>> {
        let read = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut out: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
        out.sort();
        Ok(out)
    }

    /// The numbers of the complete chunks, ascending.
    fn chunks(&self) -> Result<Vec<u64>> {
        let mut numbers: Vec<u64> = self
            .entries()?
            .iter()
            .filter_map(|p| p.file_name()?.to_str()?.strip_suffix(".tsv")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    fn file(&self, number: u64, ext: &str) -> PathBuf {
        self.dir.join(format!("{number:08}.{ext}"))
    }

    /// Writes `records` as the next chunk; returns its number.
    pub fn append(&self, records: &[Record]) -> Result<u64> {
        let number = match self.chunks()?.last() {
            None => 0,
            Some(&last) => last.checked_add(1).ok_or_else(|| {
                Error::input(
                    self.dir.display().to_string(),
                    format!("holds a chunk numbered {last}, the largest possible; delete the folder to start again"),
                )
            })?,
        };
        let mut data = Vec::new();
        let mut lines = Vec::with_capacity(records.len());
        for r in records {
            check_path(&r.path)?;
            match &r.outcome {
                Outcome::Embedded(v) => {
                    if v.len() != self.dims {
                        return Err(Error::input(
                            r.path.clone(),
                            format!(
                                "embedding of length {} where {} was expected",
                                v.len(),
                                self.dims
                            ),
                        ));
                    }
                    data.extend_from_slice(v);
                    lines.push(format!("ok\t{}", r.path));
                }
                Outcome::Skipped(reason) => {
                    let reason = reason.replace(['\t', '\n', '\r'], " ");
                    lines.push(format!("skip\t{}\t{reason}", r.path));
                }
            }
        }
        let rows = data.len() / self.dims.max(1);
        let array = Array2::from_shape_vec((rows, self.dims), data)
            .map_err(|e| Error::input("chunk", e.to_string()))?;
        crate::io::npy::write_array(self.file(number, "npy"), &array)?;
        write_lines(&self.file(number, "tsv"), lines.iter().map(String::as_str))?;
        Ok(number)
    }

    /// Every image recorded so far (a later chunk wins over an earlier one).
    pub fn read(&self) -> Result<HashMap<String, Outcome>> {
        let mut out = HashMap::new();
        for number in self.chunks()? {
            for r in self.read_chunk(number)? {
                out.insert(r.path, r.outcome);
            }
        }
        Ok(out)
    }

    fn read_chunk(&self, number: u64) -> Result<Vec<Record>> {
        let tsv = self.file(number, "tsv");
        let npy = self.file(number, "npy");
        let corrupt = |why: String| {
            Error::input(
                tsv.display().to_string(),
                format!("{why}; delete this chunk (its .tsv and .npy) to embed its images again"),
            )
        };
        let array = crate::io::npy::read_array(&npy)?;
        let rows = array.shape().first().copied().unwrap_or(0);
        if array.ndim() != 2 || (rows > 0 && array.shape()[1] != self.dims) {
            return Err(corrupt(format!(
                "its .npy has shape {:?}, expected (n, {})",
                array.shape(),
                self.dims
            )));
        }
        let data = array.iter().copied().collect::<Vec<f32>>();
        let mut rows_iter = data.chunks_exact(self.dims.max(1));
        let mut records = Vec::new();
        for line in read_lines(&tsv)? {
            let mut fields = line.splitn(3, '\t');
            let (kind, path) = (fields.next().unwrap_or(""), fields.next());
            let outcome = match (kind, path) {
                ("ok", Some(_)) => match rows_iter.next() {
                    Some(row) => Outcome::Embedded(row.to_vec()),
                    None => {
                        return Err(corrupt(
                            "it lists more images than its .npy has rows".into(),
                        ))
                    }
                },
                ("skip", Some(_)) => Outcome::Skipped(fields.next().unwrap_or("").to_string()),
                _ => return Err(corrupt(format!("unreadable line {line:?}"))),
            };
            records.push(Record {
                path: path.unwrap_or_default().to_string(),
                outcome,
            });
        }
        if rows_iter.next().is_some() {
            return Err(corrupt(
                "its .npy has more rows than it lists images".into(),
            ));
        }
        Ok(records)
    }

    /// Replaces all chunks by one holding `records` (written first, so an interruption leaves duplicates,
    /// which reading resolves, never a loss).
    pub fn compact(&self, records: &[Record]) -> Result<()> {
        let old = self.chunks()?;
        if old.len() <= 1 {
            return Ok(());
        }
        let kept = self.append(records)?;
        for number in old.into_iter().filter(|&n| n != kept) {
            for ext in ["tsv", "npy"] {
                let f = self.file(number, ext);
                std::fs::remove_file(&f).map_err(|e| Error::io(&f, e))?;
            }
        }
        Ok(())
    }
}

/// Paths are stored one per line, tab-separated: they must not hold a tab or a line break.
pub fn check_path(path: &str) -> Result<()> {
    if path.contains(['\t', '\n', '\r']) {
        return Err(Error::input(
            path.to_string(),
            "image paths with tabs or line breaks cannot be listed in paths.txt; rename the file",
        ));
    }
    Ok(())
}
