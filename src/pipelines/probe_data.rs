//! The data of a segmentation probe training run: image / label-map pairs from two folders, split
//! into training and validation (validation folders, or a seeded fraction of the training pairs),
//! every label map decoded and checked against its image's size before any backbone work, and the
//! number of classes (given, from a classes file, or the largest training label + 1).
//!
//! Class counts are guarded: a label outside `0..K` (other than 255, ignored) is refused, naming the
//! file; a count inferred from 16-bit label maps may not exceed 256 (a 16-bit map of small class ids
//! scaled by 257, as some tools save 8-bit maps, would otherwise ask for a probe of thousands of
//! classes): give the count to train more.

use std::path::{Path, PathBuf};

use crate::heads::segmentation::{ClassSet, SplitMix64};
use crate::pipelines::batch::each;
use crate::pipelines::labels::{pair_labeled_images, LabelEncoding, LabelMap, LabeledImage};
use crate::progress::Progress;
use crate::{Error, Result};

/// The most classes inferred from 16-bit label maps without an explicit class count.
pub const MAX_INFERRED_CLASSES: usize = 256;

/// Where the validation pairs come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Validation {
    /// A seeded share (in `[0, 1)`) of the training pairs, held out.
    Fraction(f64),
    /// Folders of validation images and label maps.
    Folders {
        /// The images.
        images: PathBuf,
        /// The label maps.
        labels: PathBuf,
    },
}

impl Default for Validation {
    /// 10% of the training pairs.
    fn default() -> Self {
        Validation::Fraction(0.1)
    }
}

/// Options of [`ProbeData::load`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProbeDataOptions {
    /// Where the validation pairs come from.
    pub validation: Validation,
    /// The number of classes; `None`: the classes' count, else the largest training label + 1.
    pub num_classes: Option<usize>,
    /// Class names and colours (their colours also decode colour label maps).
    pub classes: Option<ClassSet>,
    /// The seed of the validation split.
    pub seed: u64,
}

impl ProbeDataOptions {
    /// Sets where the validation pairs come from.
    pub fn with_validation(mut self, validation: Validation) -> Self {
        self.validation = validation;
        self
    }

    /// Sets the number of classes.
    pub fn with_num_classes(mut self, num_classes: usize) -> Self {
        self.num_classes = Some(num_classes);
        self
    }

    /// Sets the class names and colours.
    pub fn with_classes(mut self, classes: ClassSet) -> Self {
        self.classes = Some(classes);
        self
    }

    /// Sets the seed of the validation split.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// An image and its decoded label map.
#[derive(Debug, Clone)]
pub struct ProbeItem {
    /// The files.
    pub files: LabeledImage,
    /// The decoded label map, at the image's size.
    pub labels: LabelMap,
}

/// Training and validation items and their classes.
#[derive(Debug, Clone)]
pub struct ProbeData {
    train: Vec<ProbeItem>,
    val: Vec<ProbeItem>,
    classes: ClassSet,
}

impl ProbeData {
    /// Pairs the images under `images` with the label maps in `labels`, splits off the validation
    /// pairs, decodes and checks every label map (stage `"label maps"` of `progress`, which also
    /// receives a note when the validation share rounds to no image).
    pub fn load(
        images: impl AsRef<Path>,
        labels: impl AsRef<Path>,
        options: &ProbeDataOptions,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let (train, val) = split(pair_labeled_images(images, labels)?, options, progress)?;
        let colors = options.classes.as_ref().map(|c| c.colors().to_vec());
        let n_train = train.len();
        let pairs: Vec<LabeledImage> = train.into_iter().chain(val).collect();
        let mut train = each("label maps", &pairs, progress, |files| {
            decode(files, colors.as_deref())
        })?;
        let val = train.split_off(n_train);
        let num_classes = num_classes(&train, options)?;
        for item in train.iter().chain(&val) {
            if let Some(bad) = item.labels.label_outside(num_classes) {
                return Err(Error::input(
                    item.files.labels.display().to_string(),
                    format!("label {bad} is outside 0..{num_classes} (expected a class index or 255 for ignored pixels)"),
                ));
            }
        }
        let classes = options
            .classes
            .clone()
            .unwrap_or_else(|| ClassSet::for_num_classes(num_classes));
        Ok(Self {
            train,
            val,
            classes,
        })
    }

    /// The training items.
    pub fn train(&self) -> &[ProbeItem] {
        &self.train
    }

    /// The validation items (may be empty).
    pub fn val(&self) -> &[ProbeItem] {
        &self.val
    }

    /// The class names and colours, one per class.
    pub fn classes(&self) -> &ClassSet {
        &self.classes
    }

    /// The number of classes `K`.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }
}

/// The training and validation pairs.
fn split(
    mut train: Vec<LabeledImage>,
    options: &ProbeDataOptions,
    progress: &dyn Progress,
) -> Result<(Vec<LabeledImage>, Vec<LabeledImage>)> {
    let fraction = match &options.validation {
        Validation::Folders { images, labels } => {
            return Ok((train, pair_labeled_images(images, labels)?))
        }
        Validation::Fraction(f) => *f,
    };
    if !(0.0..1.0).contains(&fraction) {
        return Err(Error::option(
            "validation fraction",
            format!("{fraction} is not in [0, 1)"),
        ));
    }
    let n_val = (train.len() as f64 * fraction).round() as usize;
    if n_val == 0 {
        if fraction > 0.0 {
            progress.note(&format!(
                "{} images are too few to hold out {:.0}% for validation; no mIoU will be reported",
                train.len(),
                100.0 * fraction
            ));
        }
        return Ok((train, Vec::new()));
    }
    if n_val >= train.len() {
        return Err(Error::option(
            "validation fraction",
            format!("{fraction} leaves no training image out of {}", train.len()),
        ));
    }
    SplitMix64::new(options.seed ^ 0x5EED_5A11).shuffle(&mut train);
    let val = train.split_off(train.len() - n_val);
    Ok((train, val))
}

/// Decodes the label map of `files` and checks it against its image's size (read from the file
/// header).
fn decode(files: &LabeledImage, colors: Option<&[[u8; 3]]>) -> Result<ProbeItem> {
    let (w, h) = image::image_dimensions(&files.image).map_err(|e| Error::Image {
        path: files.image.clone(),
        reason: e.to_string(),
    })?;
    let labels = LabelMap::read(&files.labels, colors)?;
    let image = (h as usize, w as usize);
    if labels.size() != image {
        return Err(Error::input(
            files.labels.display().to_string(),
            format!(
                "the label map is {}x{} but its image {} is {}x{}: they must be the same size",
                labels.size().0,
                labels.size().1,
                files.image.display(),
                image.0,
                image.1
            ),
        ));
    }
    Ok(ProbeItem {
        files: files.clone(),
        labels,
    })
}

/// The class count: given, the classes', or the largest training label + 1 (guarded for 16-bit
/// maps).
fn num_classes(train: &[ProbeItem], options: &ProbeDataOptions) -> Result<usize> {
    match (&options.classes, options.num_classes) {
        (Some(c), Some(k)) if c.len() != k => Err(Error::option(
            "num_classes",
            format!("{k}, but the classes name {}", c.len()),
        )),
        (Some(c), _) => Ok(c.len()),
        (None, Some(0)) => Err(Error::option("num_classes", "must be at least 1")),
        (None, Some(k)) => Ok(k),
        (None, None) => {
            let largest = train
                .iter()
                .filter_map(|i| i.labels.largest_label().map(|l| (l, i)))
                .max_by_key(|(l, _)| *l);
            let Some((largest, item)) = largest else {
                return Err(Error::input(
                    "label maps",
                    "every label is 255 (ignored): nothing to train on",
                ));
            };
            let k = largest as usize + 1;
            if k > MAX_INFERRED_CLASSES && item.labels.encoding() == LabelEncoding::Gray16 {
                return Err(Error::input(
                    item.files.labels.display().to_string(),
                    format!(
                        "this 16-bit label map holds label {largest}, which would make a probe of {k} classes; give the number of classes to train more than {MAX_INFERRED_CLASSES}"
                    ),
                ));
            }
            Ok(k)
        }
    }
}
