//! What each task's pipeline feeds its backbone, without the model: [`TaskPreprocessor`] turns a
//! decoded image into the pixels `(1, 3, H, W)` the pipeline's backbone sees, and every pipeline
//! computes its pixels through one (its `pixels(&RgbImage)` is this type's
//! [`pixels`](TaskPreprocessor::pixels)). [`TaskPreprocessor::from_pretrained`] builds it from the
//! model's small files only, as HF's `AutoImageProcessor` needs `preprocessor_config.json` alone:
//!
//! | task | pixels | needs |
//! | --- | --- | --- |
//! | classify, embed, features | the model's processor (DINOv2: shortest edge 256, centre crop 224) | `preprocessor_config.json` (or `config.json` for its generation's default) |
//! | features, dense | aspect kept, sides multiples of the patch | + the patch size (`config.json`) |
//! | depth | Depth-Anything: sides ≥ 518, multiples of the patch, bicubic; dinov2's heads: the image centre-padded to the patch; the processor's mean/std (ImageNet's for DINOv2 and DINOv3 LVD) | + the head (`--head`, or the model's own) |
//! | segment | the processor's mean/std, resized to the first scale's short side (512 linear, 640 ms) | + the head file (or a preset) |
//! | discover | the processor's normalisation at full size (or a short side), padded bottom/right to the patch | + the patch size |
//! | pca, attention | aspect kept, short side 448, sides rounded to the patch | + the patch size |

use std::path::{Path, PathBuf};

use candle::{Device, Tensor};
use image::RgbImage;

use crate::heads::depth::{depth_anything_input_size, DepthAnythingConfig};
use crate::heads::ops::resize_bilinear;
use crate::heads::segmentation::{checked_rescaled_size, BnHead};
use crate::heads::TensorStore;
use crate::io::hub::{CONFIG, PREPROCESSOR};
use crate::model::{ModelConfig, ModelSource};
use crate::pipelines::dense_input::{batch_of_one, dense_normaliser};
use crate::pipelines::depth::{DepthOptions, DepthPreprocessing};
use crate::pipelines::task::Task;
use crate::pipelines::{
    AttentionPipelineOptions, DiscoveryOptions, FeaturesOptions, PcaPipelineOptions, Resolution,
    Scale, SegmentationOptions,
};
use crate::preprocess::{resize_rgb8, DenseOptions, ImageProcessor, Multiple, PadAnchor, Resample};
use crate::viz::picture_options;
use crate::{Error, Result};

/// The task options that change the pixels, and the head file of the tasks that have one.
#[derive(Debug, Clone, Default)]
pub struct TaskPreprocessorOptions {
    /// The head file of [`Task::Depth`] (none: the model's own head) and [`Task::Segment`].
    pub head: Option<PathBuf>,
    /// [`Task::Features`]: its resolution.
    pub features: FeaturesOptions,
    /// [`Task::Depth`]: Depth-Anything's input size.
    pub depth: DepthOptions,
    /// [`Task::Segment`]: the preset and scale.
    pub segmentation: SegmentationOptions,
    /// [`Task::Discover`]: the short side.
    pub discovery: DiscoveryOptions,
    /// [`Task::Pca`]: the short side.
    pub pca: PcaPipelineOptions,
    /// [`Task::Attention`]: the short side.
    pub attention: AttentionPipelineOptions,
}

impl TaskPreprocessorOptions {
    /// Sets the head file.
    pub fn with_head(mut self, head: impl Into<PathBuf>) -> Self {
        self.head = Some(head.into());
        self
    }

    /// Sets the short side of every task that has one (discover, pca, attention, segment); 0 keeps
    /// the image's size.
    pub fn with_short_side(mut self, short_side: u32) -> Self {
        let side = (short_side > 0).then_some(short_side);
        self.discovery.short_side = side;
        self.pca.short_side = side;
        self.attention.short_side = side;
        self.segmentation.scale = Some(match side {
            Some(s) => Scale::ShortSide(s as usize),
            None => Scale::Keep,
        });
        self
    }

    /// Sets Depth-Anything's lower bound of the input sides.
    pub fn with_input_size(mut self, input_size: usize) -> Self {
        self.depth.input_size = input_size;
        self
    }

    /// Sets the features options.
    pub fn with_features(mut self, features: FeaturesOptions) -> Self {
        self.features = features;
        self
    }

    /// Sets the depth options.
    pub fn with_depth(mut self, depth: DepthOptions) -> Self {
        self.depth = depth;
        self
    }

    /// Sets the segmentation options.
    pub fn with_segmentation(mut self, segmentation: SegmentationOptions) -> Self {
        self.segmentation = segmentation;
        self
    }

    /// Sets the discovery options.
    pub fn with_discovery(mut self, discovery: DiscoveryOptions) -> Self {
        self.discovery = discovery;
        self
    }
}

/// How the pixels are made (see the module docs).
#[derive(Debug, Clone)]
enum Recipe {
    /// The processor's resize, crop, rescale and normalisation.
    Processor(ImageProcessor),
    /// The processor's normalisation, densely.
    Dense(ImageProcessor, DenseOptions),
    /// Depth-Anything's resize, the processor's mean and std (ImageNet's for published checkpoints).
    DepthAnything {
        normaliser: ImageProcessor,
        lower_bound: usize,
        patch: usize,
    },
    /// dinov2's depth heads: the processor's mean and std, centre padding.
    CenterPadding {
        normaliser: ImageProcessor,
        patch: usize,
    },
    /// mmseg's first scale: the processor's mean and std, bilinear resize.
    Segmentation {
        normaliser: ImageProcessor,
        short_side: Option<usize>,
        ratio: f64,
    },
}

/// A task's preprocessing: decoded image → the pixels `(1, 3, H, W)` its pipeline's backbone sees.
///
/// ```
/// # fn main() -> dinoreg::Result<()> {
/// use dinoreg::pipelines::{Task, TaskPreprocessor, TaskPreprocessorOptions};
///
/// let options = TaskPreprocessorOptions::default().with_input_size(56);
/// // The task the folder serves: a Depth-Anything model → depth, its aspect-kept resize.
/// let pre = TaskPreprocessor::from_pretrained("tests/fixtures/depth/da_relative", None, &options)?;
/// assert_eq!(pre.task(), Task::Depth);
/// let image = pre.read("examples/images/chelsea.png")?; // 451 × 300
/// let pixels = pre.pixels(&image, &candle::Device::Cpu)?;
/// assert_eq!(pixels.dims(), &[1, 3, 56, 84]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TaskPreprocessor {
    task: Task,
    reader: ImageProcessor,
    recipe: Recipe,
}

impl TaskPreprocessor {
    /// The preprocessing of `task` (`None`: the task the model serves, [`Task::served_by`]) for a
    /// model folder, Hub id or bare `.pth`, read from its small files only: a folder needs its
    /// `preprocessor_config.json` (or `config.json`), plus `config.json` for the tasks that need the
    /// patch size; no weights are read (a bare `.pth` has its config inferred from its tensors'
    /// shapes). A Hub id is resolved as [`ModelSource::resolve`] does.
    pub fn from_pretrained(
        source: &str,
        task: Option<Task>,
        options: &TaskPreprocessorOptions,
    ) -> Result<Self> {
        let found = Found::resolve(source)?;
        let task = match task {
            Some(t) => t,
            None => found.served()?,
        };
        let processor = found.processor.clone();
        Ok(match task {
            Task::Classify | Task::Embed => Self::from_processor(task, processor),
            Task::Features => {
                let patch = match options.features.resolution {
                    Resolution::Processor => 0,
                    Resolution::Dense(_) => found.patch(task)?,
                };
                Self::features(processor, &options.features.resolution, patch)
            }
            Task::Depth => {
                let preprocessing = found.depth(options)?;
                Self::depth(processor, preprocessing, found.patch(task)?)
            }
            Task::Segment => {
                let blocks = found.segmentation_blocks(options)?;
                let patch = found.patch(task)?;
                let (short_side, ratio) = options.segmentation.first_scale(blocks, patch)?;
                Self::segment(processor, short_side, ratio)
            }
            Task::Discover => {
                let dense = discovery_dense(options.discovery.short_side, found.patch(task)?)?;
                Self::dense(task, processor, dense)
            }
            Task::Pca | Task::Attention => {
                let short_side = match task {
                    Task::Pca => options.pca.short_side,
                    _ => options.attention.short_side,
                };
                let dense = picture_options(found.patch(task)?, short_side);
                dense.plan((1, 1))?;
                Self::dense(task, processor, dense)
            }
        })
    }

    /// The task.
    pub fn task(&self) -> Task {
        self.task
    }

    /// The model's image processor, which decodes images (its limits and alpha handling).
    pub fn processor(&self) -> &ImageProcessor {
        &self.reader
    }

    /// The image at `path`, decoded as the pipeline decodes it.
    pub fn read(&self, path: impl AsRef<Path>) -> Result<RgbImage> {
        self.reader.read(path)
    }

    /// The pixels `(1, 3, H, W)` the task's backbone sees for `image`, on `device`.
    pub fn pixels(&self, image: &RgbImage, device: &Device) -> Result<Tensor> {
        let (h, w) = (image.height() as usize, image.width() as usize);
        let array = match &self.recipe {
            Recipe::Processor(p) => p.preprocess(image)?,
            Recipe::Dense(p, dense) => p.dense(image, dense)?.0,
            Recipe::DepthAnything {
                normaliser,
                lower_bound,
                patch,
            } => {
                let (th, tw) = depth_anything_input_size((h, w), *lower_bound, *patch)?;
                let resized = resize_rgb8(image, tw as u32, th as u32, Resample::Bicubic)?;
                normaliser.to_pixels(&resized)
            }
            Recipe::CenterPadding { normaliser, patch } => {
                let options = DenseOptions::default().with_patch_size(*patch as u32);
                normaliser.dense(image, &options)?.0
            }
            Recipe::Segmentation {
                normaliser,
                short_side,
                ratio,
            } => {
                let normalised = batch_of_one(normaliser.to_pixels(image), device)?;
                let scaled = checked_rescaled_size((h, w), *short_side, *ratio)?;
                return Ok(resize_bilinear(&normalised, scaled, false)?);
            }
        };
        batch_of_one(array, device)
    }

    /// The processor's own preprocessing (classification, embeddings).
    pub(crate) fn from_processor(task: Task, processor: ImageProcessor) -> Self {
        Self {
            task,
            reader: processor.clone(),
            recipe: Recipe::Processor(processor),
        }
    }

    /// The features' resolution on a backbone of patch `patch`.
    pub(crate) fn features(
        processor: ImageProcessor,
        resolution: &Resolution,
        patch: usize,
    ) -> Self {
        match resolution {
            Resolution::Processor => Self::from_processor(Task::Features, processor),
            Resolution::Dense(d) => {
                Self::dense(Task::Features, processor, d.with_patch_size(patch as u32))
            }
        }
    }

    /// The processor's normalisation with dense options.
    pub(crate) fn dense(task: Task, processor: ImageProcessor, dense: DenseOptions) -> Self {
        Self {
            task,
            reader: processor.clone(),
            recipe: Recipe::Dense(processor, dense),
        }
    }

    /// A depth head's preprocessing; `reader` decodes.
    pub(crate) fn depth(
        reader: ImageProcessor,
        preprocessing: DepthPreprocessing,
        patch: usize,
    ) -> Self {
        let normaliser = dense_normaliser(&reader);
        let recipe = match preprocessing {
            DepthPreprocessing::DepthAnything { lower_bound } => Recipe::DepthAnything {
                normaliser,
                lower_bound,
                patch,
            },
            DepthPreprocessing::CenterPadding => Recipe::CenterPadding { normaliser, patch },
        };
        Self {
            task: Task::Depth,
            reader,
            recipe,
        }
    }

    /// Segmentation's first scale; `reader` decodes.
    pub(crate) fn segment(reader: ImageProcessor, short_side: Option<usize>, ratio: f64) -> Self {
        Self {
            task: Task::Segment,
            recipe: Recipe::Segmentation {
                normaliser: dense_normaliser(&reader),
                short_side,
                ratio,
            },
            reader,
        }
    }
}

/// Discovery's dense input: a short side (or full size), padded bottom/right to the patch.
pub(crate) fn discovery_dense(short_side: Option<u32>, patch: usize) -> Result<DenseOptions> {
    let dense = DenseOptions::default()
        .with_short_side(short_side)
        .with_patch_size(patch as u32)
        .with_multiple(Multiple::Pad(PadAnchor::BottomRight));
    // Checks the short side once, here, rather than on every image.
    dense.plan((1, 1))?;
    Ok(dense)
}

/// What a model source offers without its weights.
struct Found {
    /// The argument, for errors.
    source: String,
    processor: ImageProcessor,
    /// `config.json` (or the config a bare checkpoint implies).
    config: Option<ModelConfig>,
    /// The folder's `config.json`, when there is one.
    config_file: Option<PathBuf>,
    /// A bare checkpoint given as the model.
    checkpoint: Option<PathBuf>,
}

impl Found {
    fn resolve(source: &str) -> Result<Self> {
        let path = Path::new(source);
        if path.is_file() {
            let resolved = ModelSource::from_checkpoint_file(path)?;
            return Ok(Self {
                source: source.to_string(),
                processor: resolved.processor,
                config: Some(resolved.config),
                config_file: None,
                checkpoint: Some(path.to_path_buf()),
            });
        }
        let dir = if path.is_dir() {
            path.to_path_buf()
        } else {
            ModelSource::resolve(source)?.files.dir
        };
        let (config_file, preprocessor) = (dir.join(CONFIG), dir.join(PREPROCESSOR));
        let config_file = config_file.is_file().then_some(config_file);
        if config_file.is_none() && !preprocessor.is_file() {
            return Err(Error::Model {
                model: source.to_string(),
                reason: format!("no {PREPROCESSOR} or {CONFIG} in {}", dir.display()),
            });
        }
        let config = config_file
            .as_ref()
            .map(ModelConfig::from_file)
            .transpose()?;
        let processor = match (preprocessor.is_file(), &config) {
            (true, _) => ImageProcessor::from_file(&preprocessor)?,
            (false, Some(c)) => c.default_processor(),
            (false, None) => ImageProcessor::default(),
        };
        Ok(Self {
            source: source.to_string(),
            processor,
            config,
            config_file,
            checkpoint: None,
        })
    }

    /// The task the model serves by itself.
    fn served(&self) -> Result<Task> {
        match (&self.checkpoint, &self.config_file) {
            (Some(path), _) if is_depth_anything_file(&TensorStore::open(path)?) => Ok(Task::Depth),
            (Some(_), _) => Ok(Task::Features),
            (None, Some(file)) => Task::served_by(file.parent().unwrap_or(Path::new("."))),
            (None, None) => Ok(Task::Features),
        }
    }

    /// The patch size, which `task` needs.
    fn patch(&self, task: Task) -> Result<usize> {
        self.config
            .as_ref()
            .map(ModelConfig::patch_size)
            .ok_or_else(|| Error::Model {
                model: self.source.clone(),
                reason: format!("the {task} task needs the patch size, from a {CONFIG}"),
            })
    }

    /// The depth preprocessing: set by the head file (the options', else a bare Depth-Anything-V2
    /// `.pth` given as the model), else by a Depth-Anything model's config.
    fn depth(&self, options: &TaskPreprocessorOptions) -> Result<DepthPreprocessing> {
        let depth_anything = DepthPreprocessing::DepthAnything {
            lower_bound: options.depth.input_size,
        };
        if options.depth.input_size == 0 {
            return Err(Error::option("input size", "must be at least 1 pixel"));
        }
        match options.head.as_ref().or(self.checkpoint.as_ref()) {
            Some(head) => {
                let store = TensorStore::open(head)?;
                let has =
                    |n: &str| store.contains(n) || store.contains(&format!("decode_head.{n}"));
                if is_depth_anything_file(&store) {
                    Ok(depth_anything)
                } else if has("conv_depth.weight")
                    || has("reassemble_blocks.projects.0.conv.weight")
                {
                    Ok(DepthPreprocessing::CenterPadding)
                } else {
                    Err(Error::input(
                        head.display().to_string(),
                        "not a depth head: expected dinov2's (decode_head.conv_depth.*, decode_head.reassemble_blocks.*) or Depth-Anything-V2's (depth_head.*)",
                    ))
                }
            }
            None => {
                let is_da = self
                    .config_file
                    .as_ref()
                    .is_some_and(|f| DepthAnythingConfig::from_file(f).is_ok());
                if !is_da {
                    return Err(Error::Model {
                        model: self.source.clone(),
                        reason: "has no depth head; give a head file: one of dinov2's depth heads or a Depth-Anything-V2 .pth".into(),
                    });
                }
                Ok(depth_anything)
            }
        }
    }

    /// The number of blocks the segmentation head reads (which picks the preset), or 1 when the
    /// options set the preset and there is no head.
    fn segmentation_blocks(&self, options: &TaskPreprocessorOptions) -> Result<usize> {
        let seg = &options.segmentation;
        match (&options.head, seg.preset) {
            (Some(path), _) => {
                let width = self
                    .config
                    .as_ref()
                    .map(ModelConfig::hidden_size)
                    .ok_or_else(|| Error::Model {
                        model: self.source.clone(),
                        reason: format!(
                            "the segment task needs the backbone width, from a {CONFIG}"
                        ),
                    })?;
                let head = BnHead::load(path, width, &Device::Cpu)?;
                let head = match &seg.blocks {
                    Some(b) => head.with_blocks(b.clone())?,
                    None => head,
                };
                Ok(head.blocks().len())
            }
            (None, Some(_)) => Ok(1),
            (None, None) => Err(Error::option(
                "head",
                "the segment task needs the head file (its blocks choose the preset) or a preset",
            )),
        }
    }
}

/// Whether a checkpoint is a Depth-Anything-V2 `.pth` (its DPT head).
pub(crate) fn is_depth_anything_file(store: &TensorStore) -> bool {
    store.contains("depth_head.projects.0.weight")
}
