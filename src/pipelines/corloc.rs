//! CorLoc of object discovery on a VOC-style folder (`Annotations/*.xml`, `JPEGImages/`) or a
//! COCO-style JSON, as valeoai/LOST's `main_lost.py` scores it: an image is found when its box has an
//! IoU of at least 0.5 with any ground-truth box; CorLoc = found / evaluated.
//!
//! Bad annotations, missing or undecodable images are reported through
//! [`Progress::note`](crate::progress::Progress::note) and in the report, and the run goes on.

use std::path::{Path, PathBuf};

use dinoreg_heads::discovery::{
    list_coco, list_voc, CocoOptions, CorLoc, GtItem, ImageResult, ItemError, Listing, VocOptions,
};
use serde::Serialize;

use super::discover::{DiscoveryOptions, DiscoveryPipeline};
use crate::io::json::json_lines;
use crate::io::output::write_bytes;
use crate::model::LoadOptions;
use crate::progress::{check_cancelled, Progress};
use crate::{Error, Result};

/// Where the ground truth comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorLocDataset {
    /// A VOC-style folder (`Annotations/*.xml`, `JPEGImages/`, optional `ImageSets/Main/`).
    Voc {
        /// The folder.
        root: PathBuf,
        /// The image set and whether hard objects are dropped.
        options: VocOptions,
    },
    /// A COCO-style annotation JSON (crowd objects removed) and the folder of its images.
    Coco {
        /// The annotation file.
        annotations: PathBuf,
        /// The folder its `file_name`s are relative to.
        images: PathBuf,
        /// An optional list of the images to keep.
        options: CocoOptions,
    },
}

impl CorLocDataset {
    /// A VOC-style folder.
    pub fn voc(root: impl AsRef<Path>, options: VocOptions) -> Self {
        Self::Voc {
            root: root.as_ref().to_path_buf(),
            options,
        }
    }

    /// A COCO-style annotation file and the folder of its images.
    pub fn coco(
        annotations: impl AsRef<Path>,
        images: impl AsRef<Path>,
        options: CocoOptions,
    ) -> Self {
        Self::Coco {
            annotations: annotations.as_ref().to_path_buf(),
            images: images.as_ref().to_path_buf(),
            options,
        }
    }

    /// The items with their ground-truth boxes, the items that could not be listed and why, and the
    /// items left out on purpose. Errors when the folder or annotation file cannot be read at all.
    pub fn list(&self) -> Result<Listing> {
        Ok(match self {
            Self::Voc { root, options } => list_voc(root, options)?,
            Self::Coco {
                annotations,
                images,
                options,
            } => list_coco(annotations, images, options)?,
        })
    }
}

/// Options of a [`CorLocPipeline`]. Default: every image, LOST's IoU threshold 0.5.
#[derive(Debug, Clone, PartialEq)]
pub struct CorLocOptions {
    /// Evaluate only the first `limit` images of the listing.
    pub limit: Option<usize>,
    /// The IoU from which an image counts as found, in `(0, 1]`.
    pub iou_threshold: f32,
}

impl Default for CorLocOptions {
    fn default() -> Self {
        Self {
            limit: None,
            iou_threshold: 0.5,
        }
    }
}

impl CorLocOptions {
    /// Sets how many images of the listing are evaluated (`None`: all).
    pub fn with_limit(mut self, limit: Option<usize>) -> Self {
        self.limit = limit;
        self
    }

    /// Sets the IoU threshold.
    pub fn with_iou_threshold(mut self, threshold: f32) -> Self {
        self.iou_threshold = threshold;
        self
    }
}

/// One evaluated image: its score and the discovery details.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorLocRow {
    /// The name, predicted box, best IoU and whether it was found.
    #[serde(flatten)]
    pub result: ImageResult,
    /// The seed patch `[row, col]`.
    pub seed: [usize; 2],
    /// How many patches the object's mask holds.
    pub mask_patches: usize,
    /// The image's size `[H, W]`.
    pub image_size: [usize; 2],
}

/// The outcome of a CorLoc run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorLocReport {
    /// CorLoc in percent.
    pub corloc: f64,
    /// Images found.
    pub found: usize,
    /// Images evaluated.
    pub total: usize,
    /// Items that could not be listed or run, and why.
    pub errors: Vec<ItemError>,
    /// Items left out on purpose (VOC images with only hard objects under `remove_hard`).
    pub skipped: Vec<String>,
    /// One row per evaluated image, in dataset order.
    pub images: Vec<CorLocRow>,
}

impl CorLocReport {
    /// The results file of `dinoreg corloc`: `{"corloc", "found", "total", "errors", "skipped",
    /// "images": [...]}` with one image a line.
    pub fn to_json(&self) -> Result<String> {
        #[derive(Serialize)]
        struct Summary<'a> {
            corloc: f64,
            found: usize,
            total: usize,
            errors: &'a [ItemError],
            skipped: &'a [String],
        }
        let summary = Summary {
            corloc: self.corloc,
            found: self.found,
            total: self.total,
            errors: &self.errors,
            skipped: &self.skipped,
        };
        let mut json = serde_json::to_string(&summary)
            .map_err(|e| Error::input("CorLoc report", e.to_string()))?;
        json.pop(); // the closing brace
        Ok(format!(
            "{json},\n\"images\": {}}}\n",
            json_lines(&self.images)?
        ))
    }

    /// Writes [`CorLocReport::to_json`] to `path`, atomically.
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<()> {
        write_bytes(path.as_ref(), self.to_json()?.as_bytes())
    }
}

/// A discovery pipeline scored against ground-truth boxes.
///
/// ```
/// # fn main() -> dinoreg::Result<()> {
/// use dinoreg::heads::discovery::VocOptions;
/// use dinoreg::pipelines::{CorLocDataset, CorLocOptions, CorLocPipeline, DiscoveryOptions};
/// use dinoreg::LoadOptions;
///
/// let pipeline = CorLocPipeline::from_pretrained(
///     "tests/fixtures/discovery/tiny_reg4",
///     &DiscoveryOptions::default(),
///     &CorLocOptions::default().with_limit(Some(2)),
///     &LoadOptions::default(),
/// )?;
/// let dataset = CorLocDataset::voc("tests/fixtures/discovery/voc", VocOptions::default());
/// let report = pipeline.run(&dataset, &())?;
/// assert_eq!(report.total, 2);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct CorLocPipeline {
    discovery: DiscoveryPipeline,
    options: CorLocOptions,
}

impl CorLocPipeline {
    /// Loads a model (Hub id, folder or bare `.pth`) and builds its discovery pipeline.
    pub fn from_pretrained(
        source: &str,
        discovery: &DiscoveryOptions,
        options: &CorLocOptions,
        load: &LoadOptions,
    ) -> Result<Self> {
        let discovery = DiscoveryPipeline::from_pretrained(source, discovery, load)?;
        Self::new(discovery, options)
    }

    /// Scores `discovery`; errors when the IoU threshold is outside `(0, 1]`.
    pub fn new(discovery: DiscoveryPipeline, options: &CorLocOptions) -> Result<Self> {
        CorLoc::new().with_threshold(options.iou_threshold)?;
        Ok(Self {
            discovery,
            options: options.clone(),
        })
    }

    /// The discovery pipeline.
    pub fn discovery(&self) -> &DiscoveryPipeline {
        &self.discovery
    }

    /// Lists `dataset` and evaluates it ([`CorLocPipeline::evaluate`]).
    pub fn run(&self, dataset: &CorLocDataset, progress: &dyn Progress) -> Result<CorLocReport> {
        self.evaluate(dataset.list()?, progress)
    }

    /// Runs discovery on every item of `listing` (the first [`CorLocOptions::limit`]) and scores the
    /// boxes. The listing's errors and each image that fails are reported to `progress` as notes and
    /// kept in [`CorLocReport::errors`]; the run goes on. Errors when there is no image to evaluate,
    /// and with [`Error::Interrupted`] when `progress` is cancelled.
    pub fn evaluate(&self, listing: Listing, progress: &dyn Progress) -> Result<CorLocReport> {
        let Listing {
            mut items,
            mut errors,
            skipped,
        } = listing;
        for e in &errors {
            progress.note(&format!("warning: skipped {e}"));
        }
        if let Some(n) = self.options.limit {
            items.truncate(n);
        }
        if items.is_empty() {
            return Err(Error::input(
                "dataset",
                format!("no image to evaluate ({} annotation errors)", errors.len()),
            ));
        }
        let mut score = CorLoc::new().with_threshold(self.options.iou_threshold)?;
        let mut images = Vec::with_capacity(items.len());
        progress.begin("images", Some(items.len() as u64));
        for (i, item) in items.iter().enumerate() {
            check_cancelled(progress, i, items.len())?;
            match self.row(item, &mut score, progress) {
                Ok(row) => images.push(row),
                Err(e) => {
                    let error = ItemError {
                        item: item.name.clone(),
                        reason: e.to_string(),
                    };
                    progress.note(&format!("warning: skipped {error}"));
                    errors.push(error);
                }
            }
            progress.advance(1);
        }
        progress.end();
        Ok(CorLocReport {
            corloc: score.percent(),
            found: score.found(),
            total: score.total(),
            errors,
            skipped,
            images,
        })
    }

    /// Discovers the object of one item and scores it.
    fn row(&self, item: &GtItem, score: &mut CorLoc, progress: &dyn Progress) -> Result<CorLocRow> {
        let found = self
            .discovery
            .run_path_with_progress(&item.image, progress)?;
        let d = &found.discovery;
        let result = score
            .add(item.name.clone(), d.bbox.map(|v| v as f32), &item.boxes)
            .clone();
        Ok(CorLocRow {
            result,
            seed: d.seed,
            mask_patches: d.mask_patches,
            image_size: found.image_size,
        })
    }
}
