//! The resumable, batched embedding job behind `dinoreg embed`: images → L2-normalised descriptors in an
//! output folder (layout in [`super::store`]).
//!
//! - A decoder thread reads and preprocesses the next batches in parallel (rayon) while the model runs
//!   on the current one; a bounded channel keeps at most [`EmbedOptions::prefetch`] batches ahead.
//! - Every finished batch is a chunk of the journal ([`super::chunks`]); a run skips the images the
//!   journal already holds, so an interrupted job resumed with the same arguments gives the same files.
//! - Unreadable images are recorded with their reason and listed in `skipped.txt`; they are not fatal.
//! - `shard` takes a contiguous part of the sorted image list ([`super::shard`]).
//! - Once every image is done, the journal is consolidated into `embeddings.npy` / `paths.txt` /
//!   `skipped.txt` (in the order of the image list) and compacted to one chunk.
//!
//! One job at a time per output folder (a second process would see the first one's unfinished chunk
//! as left over by an interruption).
//!
//! Shapes: each batch `(B, 3, H, W)` → `(B, D')`; batches of mixed input sizes (center crop off) are run
//! per size.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use ndarray::{Array2, Array3, Axis};
use rayon::prelude::*;

use super::chunks::{check_path, Journal, Outcome, Record};
use super::descriptor::Descriptor;
use super::shard::Shard;
use super::store::{ensure_dir, Embeddings, IndexMeta, Skipped, FORMAT_VERSION};
use crate::io::image::DecodeNote;
use crate::io::npy::array_to_tensor;
use crate::model::Vit;
use crate::preprocess::processor::report_notes;
use crate::preprocess::ImageProcessor;
use crate::progress::{check_cancelled, Progress};
use crate::{Error, Result};

/// Options of [`EmbedJob::run`]. Default: CLS descriptor, batches of 32, two batches prefetched.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedOptions {
    /// The descriptor.
    pub descriptor: Descriptor,
    /// Images per batch.
    pub batch_size: usize,
    /// Batches decoded ahead of the model.
    pub prefetch: usize,
    /// Only this part of the image list.
    pub shard: Option<Shard>,
    /// Stop after this many batches in this run (the job stays resumable); `None` runs to the end.
    pub max_batches: Option<usize>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self {
            descriptor: Descriptor::default(),
            batch_size: 32,
            prefetch: 2,
            shard: None,
            max_batches: None,
        }
    }
}

impl EmbedOptions {
    /// Sets the descriptor.
    pub fn with_descriptor(mut self, descriptor: Descriptor) -> Self {
        self.descriptor = descriptor;
        self
    }

    /// Sets the batch size.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets how many batches are decoded ahead.
    pub fn with_prefetch(mut self, prefetch: usize) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// Sets the shard.
    pub fn with_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// Sets the most batches run before stopping (the job stays resumable).
    pub fn with_max_batches(mut self, max_batches: Option<usize>) -> Self {
        self.max_batches = max_batches;
        self
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedReport {
    /// Images of the job (this shard).
    pub total: usize,
    /// Images found done by earlier runs.
    pub resumed: usize,
    /// Images embedded by this run.
    pub embedded: usize,
    /// All unreadable images of the job.
    pub skipped: Vec<Skipped>,
    /// Whether every image is done and the consolidated files are written.
    pub complete: bool,
}

/// Embeds image collections with one model and its preprocessing.
#[derive(Debug, Clone, Copy)]
pub struct EmbedJob<'a> {
    model: &'a dyn Vit,
    processor: &'a ImageProcessor,
    model_id: &'a str,
}

/// One decoded batch: the items with their pixels or why they failed, and what the decoder noticed
/// about each (told to the progress when the batch is embedded).
type Decoded = Vec<(
    String,
    std::result::Result<Array3<f32>, String>,
    Vec<DecodeNote>,
)>;

impl<'a> EmbedJob<'a> {
    /// A job running `model` on images preprocessed by `processor`; `model_id` (an absolute folder or a
    /// Hub id) is recorded in `index.json` so that queries are embedded by the same model.
    pub fn new(model: &'a dyn Vit, processor: &'a ImageProcessor, model_id: &'a str) -> Self {
        Self {
            model,
            processor,
            model_id,
        }
    }

    /// Embeds `images` (in this order, duplicates dropped) into `out`. See the module docs.
    pub fn run(&self, images: &[PathBuf], out: &Path, opts: &EmbedOptions) -> Result<EmbedReport> {
        self.run_with_progress(images, out, opts, &())
    }

    /// [`EmbedJob::run`], reporting images to `progress` (the stage `"images"`: the job's images,
    /// those done by earlier runs first) and telling it, as notes, what the decoder noticed about the
    /// images embedded (a 16-bit grayscale PNG, clipped to 255). When `progress` is cancelled the job
    /// stops before its next batch and returns [`Error::Interrupted`]; the finished batches are kept,
    /// so running it again resumes.
    pub fn run_with_progress(
        &self,
        images: &[PathBuf],
        out: &Path,
        opts: &EmbedOptions,
        progress: &dyn Progress,
    ) -> Result<EmbedReport> {
        if opts.batch_size == 0 {
            return Err(Error::option("batch_size", "must be at least 1"));
        }
        opts.descriptor.validate()?;
        self.processor.config.validate()?;
        let items = job_items(images, opts.shard)?;
        ensure_dir(out)?;
        let meta = self.open_meta(out, opts)?;
        let journal = Journal::open(out, meta.dims)?;
        let mut known = journal.read()?;
        let pending: Vec<&String> = items.iter().filter(|p| !known.contains_key(*p)).collect();
        let resumed = items.len() - pending.len();
        let mut embedded = 0;
        let mut processed = 0;
        progress.begin("images", Some(items.len() as u64));
        if resumed > 0 {
            progress.advance(resumed as u64);
        }
        let limit = opts.max_batches.unwrap_or(usize::MAX);
        let groups: Vec<&[&String]> = pending.chunks(opts.batch_size).take(limit).collect();
        std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = sync_channel::<Decoded>(opts.prefetch);
            let processor = self.processor;
            let groups = &groups;
            scope.spawn(move || {
                for group in groups {
                    let decoded: Decoded = group
                        .par_iter()
                        .map(|p| match processor.load_noted(Path::new(p.as_str())) {
                            Ok((pixels, notes)) => ((*p).clone(), Ok(pixels), notes),
                            Err(e) => ((*p).clone(), Err(skip_reason(e)), Vec::new()),
                        })
                        .collect();
                    if tx.send(decoded).is_err() {
                        break;
                    }
                }
            });
            for decoded in rx.iter() {
                check_cancelled(progress, resumed + processed, items.len())?;
                for (path, _, notes) in &decoded {
                    report_notes(progress, Path::new(path), notes);
                }
                let records = self.embed_batch(decoded, &opts.descriptor)?;
                journal.append(&records)?;
                embedded += records
                    .iter()
                    .filter(|r| matches!(r.outcome, Outcome::Embedded(_)))
                    .count();
                processed += records.len();
                progress.advance(records.len() as u64);
                for r in records {
                    known.insert(r.path, r.outcome);
                }
            }
            Ok(())
        })?;
        progress.end();
        let complete = items.iter().all(|p| known.contains_key(p));
        let skipped = items
            .iter()
            .filter_map(|p| match known.get(p) {
                Some(Outcome::Skipped(reason)) => Some(Skipped {
                    path: p.clone(),
                    reason: reason.clone(),
                }),
                _ => None,
            })
            .collect();
        if complete {
            self.consolidate(out, meta, &items, &known, &journal)?;
        }
        Ok(EmbedReport {
            total: items.len(),
            resumed,
            embedded,
            skipped,
            complete,
        })
    }

    /// Reads or creates `index.json`, refusing a folder made with another model or descriptor.
    fn open_meta(&self, out: &Path, opts: &EmbedOptions) -> Result<IndexMeta> {
        let dims = opts.descriptor.dims(self.model.info().hidden_size);
        let fresh = IndexMeta {
            format: FORMAT_VERSION,
            model: self.model_id.to_string(),
            descriptor: opts.descriptor.to_string(),
            dims,
            count: 0,
            skipped: 0,
            shard: opts.shard,
            complete: false,
        };
        if out.join(super::store::META_FILE).is_file() {
            let old = IndexMeta::read(out)?;
            if (&old.model, &old.descriptor, old.dims, old.shard)
                != (&fresh.model, &fresh.descriptor, fresh.dims, fresh.shard)
            {
                return Err(Error::option(
                    "output",
                    format!(
                        "{} holds embeddings of model {} with descriptor {} ({}), not {} with {} ({}); use another output folder",
                        out.display(),
                        old.model,
                        old.descriptor,
                        shard_words(old.shard),
                        fresh.model,
                        fresh.descriptor,
                        shard_words(fresh.shard)
                    ),
                ));
            }
            return Ok(old);
        }
        fresh.write(out)?;
        Ok(fresh)
    }

    /// Runs the model on the decoded images of one batch.
    fn embed_batch(&self, decoded: Decoded, descriptor: &Descriptor) -> Result<Vec<Record>> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; decoded.len()];
        let mut by_size: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
        for (i, (_, result, _)) in decoded.iter().enumerate() {
            match result {
                Ok(a) => by_size.entry((a.dim().1, a.dim().2)).or_default().push(i),
                Err(reason) => outcomes[i] = Some(Outcome::Skipped(reason.clone())),
            }
        }
        let mut sizes: Vec<_> = by_size.into_iter().collect();
        sizes.sort();
        for (_, members) in sizes {
            let views: Vec<_> = members
                .iter()
                .filter_map(|&i| decoded[i].1.as_ref().ok().map(|a| a.view()))
                .collect();
            let stacked = ndarray::stack(Axis(0), &views)
                .map_err(|e| Error::input("batch", e.to_string()))?;
            let pixels = array_to_tensor(stacked.into_dyn(), self.model.device())?;
            let vectors = descriptor
                .describe(self.model, &pixels)?
                .to_device(&candle::Device::Cpu)?
                .to_vec2::<f32>()?;
            for (&i, v) in members.iter().zip(vectors) {
                outcomes[i] = Some(Outcome::Embedded(v));
            }
        }
        Ok(decoded
            .into_iter()
            .zip(outcomes)
            .map(|((path, _, _), outcome)| Record {
                path,
                outcome: outcome.unwrap_or_else(|| Outcome::Skipped("not processed".into())),
            })
            .collect())
    }

    /// Writes the consolidated files in the order of `items`, then compacts the journal.
    fn consolidate(
        &self,
        out: &Path,
        meta: IndexMeta,
        items: &[String],
        known: &HashMap<String, Outcome>,
        journal: &Journal,
    ) -> Result<()> {
        let dims = meta.dims;
        let mut data = Vec::new();
        let mut paths = Vec::new();
        let mut skipped = Vec::new();
        let mut records = Vec::with_capacity(items.len());
        for p in items {
            match known.get(p) {
                Some(Outcome::Embedded(v)) => {
                    data.extend_from_slice(v);
                    paths.push(p.clone());
                }
                Some(Outcome::Skipped(reason)) => skipped.push(Skipped {
                    path: p.clone(),
                    reason: reason.clone(),
                }),
                None => continue,
            }
            if let Some(o) = known.get(p) {
                records.push(Record {
                    path: p.clone(),
                    outcome: o.clone(),
                });
            }
        }
        let vectors = Array2::from_shape_vec((paths.len(), dims), data)
            .map_err(|e| Error::input("embeddings", e.to_string()))?;
        Embeddings {
            meta,
            vectors,
            paths,
            skipped,
        }
        .write(out)?;
        journal.compact(&records)
    }
}

/// The job's image list: paths as text, first occurrence kept, then the shard's range.
fn job_items(images: &[PathBuf], shard: Option<Shard>) -> Result<Vec<String>> {
    let mut seen = HashSet::new();
    let mut items = Vec::with_capacity(images.len());
    for p in images {
        let text = p.to_str().ok_or_else(|| {
            Error::input(
                p.display().to_string(),
                "image paths must be valid UTF-8 to be listed in paths.txt",
            )
        })?;
        check_path(text)?;
        if seen.insert(text) {
            items.push(text.to_string());
        }
    }
    if let Some(s) = shard {
        let range = s.range(items.len());
        items = items[range].to_vec();
    }
    Ok(items)
}

/// The one-line reason an image is skipped (the path is listed beside it).
fn skip_reason(e: Error) -> String {
    match e {
        Error::Image { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// `shard i/n`, or `all images` for an unsharded job (for messages).
fn shard_words(shard: Option<Shard>) -> String {
    shard.map_or_else(|| "all images".to_string(), |s| format!("shard {s}"))
}
