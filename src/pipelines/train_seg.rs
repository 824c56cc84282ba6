//! Training a dinov2-style linear segmentation probe (BNHead) on a user's images and label maps
//! ([`ProbeData`]) with the backbone frozen: dinov2 publishes segmentation heads only for backbones
//! without registers; this is how a registers backbone (or DINOv3, or any [`Vit`]) gets one.
//!
//! Each image is normalised (the checkpoint processor's mean and std: ImageNet's for every DINOv2
//! and DINOv3 LVD checkpoint), resized bilinearly so its short side is
//! `short_side` (align_corners=False, in float), centre-padded to the patch size and run once
//! through the backbone; the features `(C_in, h, w)` of the probe's blocks are kept (in memory, and
//! in a cache folder when given, keyed by the model, the image file and the settings). Label maps are
//! resized to the same size with nearest-neighbour. Training follows dinov2's mmseg recipe
//! ([`train_probe`]) and reports through [`Progress`]: stages `"features"` (images) and `"steps"`,
//! one note per epoch (loss, validation mIoU and pixel accuracy).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use candle::{DType, Tensor};
use image::RgbImage;

use crate::heads::ops::{center_pad, resize_bilinear};
use crate::heads::segmentation::{
    checked_rescaled_size, train_probe, BnHead, EpochStats, HeadMetadata, ProbeConfig, Sample,
    StepStats, TrainObserver, TrainOptions,
};
use crate::heads::FeatureRequest;
use crate::io::safetensors::write_safetensors;
use crate::model::{DinoModel, LoadOptions, Vit};
use crate::pipelines::batch::each;
use crate::pipelines::dense_input::{batch_of_one, dense_normaliser};
use crate::pipelines::probe_data::{ProbeData, ProbeItem};
use crate::preprocess::ImageProcessor;
use crate::progress::Progress;
use crate::{Error, Result};

/// Which blocks the probe reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProbeKind {
    /// The last block (dinov2's "linear").
    #[default]
    Linear,
    /// The last four blocks concatenated (dinov2's "ms" head).
    MultiScale,
}

impl ProbeKind {
    /// The blocks read, negative from the end.
    pub fn blocks(self) -> Vec<i64> {
        match self {
            ProbeKind::Linear => vec![-1],
            ProbeKind::MultiScale => vec![-4, -3, -2, -1],
        }
    }
}

/// Options of a [`ProbeTrainingPipeline`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeTrainingOptions {
    /// Which blocks the probe reads.
    pub probe: ProbeKind,
    /// The short side images and labels are resized to, in pixels (`None` keeps the size); 512.
    pub short_side: Option<usize>,
    /// Optimiser, schedule and seed.
    pub train: TrainOptions,
    /// A folder where backbone features are kept and reused by later runs.
    pub cache: Option<PathBuf>,
}

impl Default for ProbeTrainingOptions {
    fn default() -> Self {
        Self {
            probe: ProbeKind::Linear,
            short_side: Some(512),
            train: TrainOptions::default(),
            cache: None,
        }
    }
}

impl ProbeTrainingOptions {
    /// Sets the blocks the probe reads.
    pub fn with_probe(mut self, probe: ProbeKind) -> Self {
        self.probe = probe;
        self
    }

    /// Sets the short side (`None` keeps the size).
    pub fn with_short_side(mut self, short_side: Option<usize>) -> Self {
        self.short_side = short_side;
        self
    }

    /// Sets the optimiser, schedule and seed.
    pub fn with_train(mut self, train: TrainOptions) -> Self {
        self.train = train;
        self
    }

    /// Sets the feature cache folder.
    pub fn with_cache(mut self, cache: impl Into<PathBuf>) -> Self {
        self.cache = Some(cache.into());
        self
    }
}

/// A trained probe, its per-epoch history and the metadata it is saved with.
#[derive(Debug, Clone)]
pub struct TrainedSegmentationHead {
    /// The head (eval mode).
    pub head: BnHead,
    /// One entry per epoch.
    pub history: Vec<EpochStats>,
    /// Classes, blocks, backbone and validation mIoU, saved with the head.
    pub metadata: HeadMetadata,
}

impl TrainedSegmentationHead {
    /// The validation mIoU after the last epoch (`None` without validation images).
    pub fn val_miou(&self) -> Option<f64> {
        self.metadata.val_miou
    }

    /// Writes the head as a `.safetensors` file (creating its folder) that the segmentation
    /// pipeline loads.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        Ok(self.head.save(path, &self.metadata)?)
    }
}

/// A frozen backbone and the preprocessing of probe training, producing
/// [`TrainedSegmentationHead`]s.
///
/// ```
/// # fn main() -> dinoreg::Result<()> {
/// use dinoreg::pipelines::{ProbeTrainingOptions, ProbeTrainingPipeline};
/// use dinoreg::LoadOptions;
///
/// let options = ProbeTrainingOptions::default().with_short_side(Some(32));
/// let pipeline =
///     ProbeTrainingPipeline::from_pretrained("tests/fixtures/model/reg4", &options, &LoadOptions::default())?;
/// let image = image::RgbImage::new(40, 30);
/// // Short side 32 (30x40 -> 32x43), centre-padded to the 4-pixel patches.
/// assert_eq!(pipeline.pixels(&image)?.dims(), &[1, 3, 32, 44]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ProbeTrainingPipeline {
    model: Box<dyn Vit>,
    reader: ImageProcessor,
    normaliser: ImageProcessor,
    model_id: String,
    options: ProbeTrainingOptions,
}

impl ProbeTrainingPipeline {
    /// Loads a model (Hub id, folder or bare `.pth`); `source` also names the backbone in the saved
    /// head and the feature cache.
    pub fn from_pretrained(
        source: &str,
        options: &ProbeTrainingOptions,
        load: &LoadOptions,
    ) -> Result<Self> {
        let pretrained = DinoModel::from_pretrained(source, load)?;
        Self::new(
            Box::new(pretrained.model),
            pretrained.processor,
            source,
            options,
        )
    }

    /// A pipeline over any backbone; `model_id` names it in the saved head and the feature cache.
    /// `processor` only decodes images (its limits and alpha handling).
    pub fn new(
        model: Box<dyn Vit>,
        processor: ImageProcessor,
        model_id: impl Into<String>,
        options: &ProbeTrainingOptions,
    ) -> Result<Self> {
        if options.short_side == Some(0) {
            return Err(Error::option("short side", "must be at least 1 (or none)"));
        }
        Ok(Self {
            model,
            normaliser: dense_normaliser(&processor),
            reader: processor,
            model_id: model_id.into(),
            options: options.clone(),
        })
    }

    /// The backbone.
    pub fn model(&self) -> &dyn Vit {
        self.model.as_ref()
    }

    /// The size `(H, W)` images of `size` are trained at.
    fn train_size(&self, size: (usize, usize)) -> Result<(usize, usize)> {
        match self.options.short_side {
            Some(s) => Ok(checked_rescaled_size(size, Some(s), 1.0)?),
            None => Ok(size),
        }
    }

    /// The pixels `(1, 3, H', W')` the backbone sees for `image`: normalised, resized to the short
    /// side, centre-padded to the patch size.
    pub fn pixels(&self, image: &RgbImage) -> Result<Tensor> {
        let size = self.train_size((image.height() as usize, image.width() as usize))?;
        let pixels = batch_of_one(self.normaliser.to_pixels(image), self.model.device())?;
        let pixels = resize_bilinear(&pixels, size, false)?;
        Ok(center_pad(&pixels, self.model.info().patch_size)?)
    }

    fn request(&self) -> FeatureRequest {
        FeatureRequest::blocks(self.options.probe.blocks())
    }

    /// The training sample of one item: the backbone features `(C_in, h, w)` (from the cache when
    /// present) and the labels resized to the training size.
    pub fn sample(&self, item: &ProbeItem) -> Result<Sample> {
        self.sample_with(item, &())
    }

    /// [`ProbeTrainingPipeline::sample`], the decoder's notes (a 16-bit grayscale PNG) told to
    /// `progress`.
    fn sample_with(&self, item: &ProbeItem, progress: &dyn Progress) -> Result<Sample> {
        let image = &item.files.image;
        let rgb = self.reader.read_with_progress(image, progress)?;
        let original = (rgb.height() as usize, rgb.width() as usize);
        if item.labels.size() != original {
            return Err(Error::input(
                item.files.labels.display().to_string(),
                format!(
                    "the label map is {:?} but its image {} is {original:?}",
                    item.labels.size(),
                    image.display()
                ),
            ));
        }
        let size = self.train_size(original)?;
        let features = self.features(image, &rgb, size)?;
        let labels = item
            .labels
            .resize_nearest(size)
            .to_tensor(self.model.device())?;
        Sample::new(features, labels, self.model.info().patch_size)
            .map_err(|e| Error::input(image.display().to_string(), e.to_string()))
    }

    /// The concatenated features `(C_in, h, w)` of `rgb` at `size`, from the cache when present.
    fn features(&self, image: &Path, rgb: &RgbImage, size: (usize, usize)) -> Result<Tensor> {
        let cached = self
            .options
            .cache
            .as_ref()
            .map(|dir| dir.join(self.cache_name(image, size)));
        let device = self.model.device();
        if let Some(path) = cached.as_ref().filter(|p| p.is_file()) {
            let mut stored = candle::safetensors::load(path, device)
                .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
            if let Some(f) = stored.remove("features") {
                return Ok(f);
            }
        }
        let maps = self
            .model
            .features(&self.pixels(rgb)?, &self.request())?
            .maps;
        let features = Tensor::cat(&maps, 1)?.squeeze(0)?.to_dtype(DType::F32)?;
        if let Some(path) = cached {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            let tensors = [("features".to_string(), features.clone())];
            write_safetensors(&path, &tensors, &HashMap::new())?;
        }
        Ok(features)
    }

    /// `<stem>-<hash>.safetensors`, the hash covering the model, the image file and the settings.
    fn cache_name(&self, image: &Path, size: (usize, usize)) -> String {
        let mut hasher = DefaultHasher::new();
        self.model_id.hash(&mut hasher);
        image
            .canonicalize()
            .unwrap_or_else(|_| image.to_path_buf())
            .hash(&mut hasher);
        if let Ok(meta) = std::fs::metadata(image) {
            meta.len().hash(&mut hasher);
            meta.modified().ok().hash(&mut hasher);
        }
        size.hash(&mut hasher);
        self.request().blocks.hash(&mut hasher);
        let stem = image
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("{stem}-{:016x}.safetensors", hasher.finish())
    }

    /// Extracts (or reads back) the features of every item, then trains the probe on the training
    /// items, validating on the others after every epoch.
    pub fn train(
        &self,
        data: &ProbeData,
        progress: &dyn Progress,
    ) -> Result<TrainedSegmentationHead> {
        let items: Vec<&ProbeItem> = data.train().iter().chain(data.val()).collect();
        let mut train = each("features", &items, progress, |item| {
            self.sample_with(item, progress)
        })?;
        let val = train.split_off(data.train().len());
        let config = ProbeConfig {
            num_classes: data.num_classes(),
            embed_dim: self.model.info().hidden_size,
            blocks: self.options.probe.blocks(),
            classes: Some(data.classes().clone()),
        };
        let epochs = self.options.train.epochs;
        let mut observer = Observer {
            progress,
            epochs,
            started: false,
        };
        let trained = train_probe(&train, &val, &config, &self.options.train, &mut observer)
            .map_err(|e| match e {
                crate::heads::Error::Interrupted { done, total } => {
                    Error::Interrupted { done, total }
                }
                other => other.into(),
            })?;
        progress.end();
        let mut metadata = trained.head.metadata();
        metadata.backbone = Some(self.model_id.clone());
        metadata.val_miou = trained.history.last().and_then(|e| e.val_miou);
        Ok(TrainedSegmentationHead {
            head: trained.head,
            history: trained.history,
            metadata,
        })
    }
}

/// Training progress as [`Progress`] sees it: stage `"steps"`, a note per epoch.
struct Observer<'a> {
    progress: &'a dyn Progress,
    epochs: usize,
    started: bool,
}

impl TrainObserver for Observer<'_> {
    fn on_step(&mut self, s: &StepStats) {
        if !self.started {
            self.progress.begin("steps", Some(s.total_steps as u64));
            self.started = true;
        }
        self.progress.advance(1);
    }

    fn on_epoch(&mut self, e: &EpochStats) {
        let val = match (e.val_miou, e.val_accuracy) {
            (Some(m), Some(a)) => {
                format!("  val mIoU {:.2}  pixel acc {:.2}", 100.0 * m, 100.0 * a)
            }
            _ => String::new(),
        };
        self.progress.note(&format!(
            "epoch {:>3}/{}  loss {:.4}{val}",
            e.epoch + 1,
            self.epochs,
            e.train_loss
        ));
    }

    fn cancelled(&self) -> bool {
        self.progress.cancelled()
    }
}
