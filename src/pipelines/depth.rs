//! Monocular depth: a backbone and a depth head (Depth-Anything-V2, as HF
//! `DepthAnythingForDepthEstimation` or the original `.pth`, or one of dinov2's linear / DPT depth
//! heads, told apart by their tensors), each head with its own preprocessing and post-processing:
//!
//! - Depth-Anything (`depth_anything_v2/dpt.py` `image2tensor` / `infer_image`): aspect kept, both
//!   sides at least `input_size` (518), multiples of the patch size, bicubic, ImageNet normalisation (the
//!   checkpoint processor's mean and std, ImageNet's for every published checkpoint);
//!   the output resized back to the image with `align_corners=True`;
//! - dinov2's heads (`dinov2/hub/depthers.py`): the image at its own size, the same normalisation,
//!   centre-padded to a multiple of the patch size (`CenterPadding`); the output resized back with
//!   `align_corners=False`.
//!
//! dinov2's heads are metric over a range set by their file name (see
//! [`depth_range_for_head_file`](crate::pipelines::depth_range_for_head_file)) unless
//! [`DepthOptions`] sets it.
//!
//! Shapes: pixels `(B, 3, H', W')`; depth `(H, W)` per image, at the image's (or the unpadded
//! pixels') size.

use std::path::Path;

use candle::Tensor;
use image::RgbImage;

use crate::heads::depth::{AnyDepthHead, DepthHead, DepthKind};
use crate::heads::ops::center_pad;
use crate::heads::Head;
use crate::model::{LoadOptions, ModelSource, Vit};
use crate::pipelines::batch::each;
use crate::pipelines::depth_head::load_depth;
use crate::pipelines::depth_map::DepthMap;
use crate::pipelines::input::InputName;
use crate::pipelines::task_preprocessor::TaskPreprocessor;
use crate::preprocess::ImageProcessor;
use crate::progress::Progress;
use crate::{Error, Result};

/// Options of a [`DepthPipeline`].
#[derive(Debug, Clone, PartialEq)]
pub struct DepthOptions {
    /// Depth-Anything: the lower bound of both sides of the model input, in pixels (518).
    pub input_size: usize,
    /// dinov2's heads: the top of the depth range (default 10 m, 80 m when the head's file name says
    /// `kitti`). A Depth-Anything-V2 `.pth`: the head is metric, scaled to this (20 indoors, 80
    /// outdoors). A Depth-Anything model: replaces its config's `max_depth`.
    pub max_depth: Option<f64>,
    /// dinov2's heads: the bottom of the depth range (default 0.001 m); refused for other heads.
    pub min_depth: Option<f64>,
    /// The backbone blocks (0-based, negative from the end) that feed a `.pth` head, when its width
    /// has no published table.
    pub blocks: Option<Vec<i64>>,
}

impl Default for DepthOptions {
    fn default() -> Self {
        Self {
            input_size: 518,
            max_depth: None,
            min_depth: None,
            blocks: None,
        }
    }
}

impl DepthOptions {
    /// Sets Depth-Anything's lower bound of the input sides.
    pub fn with_input_size(mut self, input_size: usize) -> Self {
        self.input_size = input_size;
        self
    }

    /// Sets the top of the depth range (see [`DepthOptions::max_depth`]).
    pub fn with_max_depth(mut self, max_depth: f64) -> Self {
        self.max_depth = Some(max_depth);
        self
    }

    /// Sets the bottom of a dinov2 head's depth range.
    pub fn with_min_depth(mut self, min_depth: f64) -> Self {
        self.min_depth = Some(min_depth);
        self
    }

    /// Sets the backbone blocks that feed a `.pth` head.
    pub fn with_blocks(mut self, blocks: impl Into<Vec<i64>>) -> Self {
        self.blocks = Some(blocks.into());
        self
    }
}

/// How a depth pipeline turns an image into pixels, set by its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepthPreprocessing {
    /// Depth-Anything: aspect kept, both sides at least `lower_bound`, multiples of the patch size,
    /// bicubic.
    DepthAnything {
        /// The lower bound of both sides, in pixels.
        lower_bound: usize,
    },
    /// dinov2's heads: the image at its own size, centre-padded to a multiple of the patch size.
    CenterPadding,
}

/// A backbone, a depth head and their preprocessing, producing [`DepthMap`]s.
///
/// ```
/// # fn main() -> dinoreg::Result<()> {
/// use dinoreg::pipelines::{DepthOptions, DepthPipeline};
/// use dinoreg::LoadOptions;
///
/// // A tiny Depth-Anything model (4-pixel patches): a small input size keeps it fast.
/// let options = DepthOptions::default().with_input_size(56);
/// let pipeline = DepthPipeline::from_pretrained(
///     "tests/fixtures/depth/da_relative",
///     None,
///     &options,
///     &LoadOptions::default(),
/// )?;
/// let depth = pipeline.run_path("examples/images/chelsea.png")?;
/// assert_eq!(depth.size(), (300, 451));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DepthPipeline {
    model: Box<dyn Vit>,
    head: AnyDepthHead,
    preprocessing: DepthPreprocessing,
    reader: ImageProcessor,
    input: TaskPreprocessor,
}

impl DepthPipeline {
    /// Loads a model (Hub id, folder or bare `.pth`) and its depth head: `head` is a head file (one
    /// of dinov2's depth heads, or a Depth-Anything-V2 `.pth` whose fine-tuned backbone replaces the
    /// model's weights); `None` takes the model's own head (a Depth-Anything checkpoint, or a bare
    /// Depth-Anything-V2 `.pth` given as the model).
    pub fn from_pretrained(
        source: &str,
        head: Option<&Path>,
        options: &DepthOptions,
        load: &LoadOptions,
    ) -> Result<Self> {
        let resolved = ModelSource::resolve(source)?;
        let (model, head) = load_depth(&resolved, source, head, options, load)?;
        Self::new(Box::new(model), head, resolved.processor, options)
    }

    /// A pipeline over any backbone and depth head; the head sets the preprocessing. `processor`
    /// decodes images (its limits and alpha handling) and gives the mean and std (ImageNet's for
    /// every published DINOv2 and DINOv3 LVD checkpoint, as the depth heads have them); the head
    /// sizes the image.
    pub fn new(
        model: Box<dyn Vit>,
        head: impl Into<AnyDepthHead>,
        processor: ImageProcessor,
        options: &DepthOptions,
    ) -> Result<Self> {
        let head = head.into();
        let preprocessing = match &head {
            AnyDepthHead::DepthAnything(h) => {
                if options.input_size == 0 {
                    return Err(Error::option("input size", "must be at least 1 pixel"));
                }
                let (head_width, width) =
                    (h.config().reassemble_hidden_size, model.info().hidden_size);
                if head_width != width {
                    return Err(Error::option(
                        "depth head",
                        format!("made for a backbone of width {head_width}, but the model has width {width}"),
                    ));
                }
                DepthPreprocessing::DepthAnything {
                    lower_bound: options.input_size,
                }
            }
            _ => DepthPreprocessing::CenterPadding,
        };
        Ok(Self {
            input: TaskPreprocessor::depth(
                processor.clone(),
                preprocessing,
                model.info().patch_size,
            ),
            model,
            head,
            preprocessing,
            reader: processor,
        })
    }

    /// The backbone.
    pub fn model(&self) -> &dyn Vit {
        self.model.as_ref()
    }

    /// The depth head.
    pub fn head(&self) -> &AnyDepthHead {
        &self.head
    }

    /// Relative (Depth-Anything's relative models: larger is nearer) or metric (metres).
    pub fn kind(&self) -> DepthKind {
        self.head.kind()
    }

    /// How images become pixels.
    pub fn preprocessing(&self) -> DepthPreprocessing {
        self.preprocessing
    }

    /// The pixels `(1, 3, H', W')` the backbone sees for `image` (resized for Depth-Anything, padded
    /// for dinov2's heads).
    pub fn pixels(&self, image: &RgbImage) -> Result<Tensor> {
        self.input.pixels(image, self.model.device())
    }

    /// The preprocessing behind [`DepthPipeline::pixels`], without the model.
    pub fn task_preprocessor(&self) -> &TaskPreprocessor {
        &self.input
    }

    /// Depth `(B, H, W)` of backbone-ready pixels, resized to `size`.
    fn forward(&self, pixels: &Tensor, size: (usize, usize)) -> Result<Tensor> {
        let features = self.model.features(pixels, &self.head.request())?;
        let depth = self.head.forward(&features)?;
        Ok(self.head.resize_output(&depth, size)?)
    }

    /// Depth of normalised pixels `(B, 3, H, W)`, used as they are (centre-padded for dinov2's
    /// heads); one map per image, at `(H, W)`, named `pixels[i]`.
    pub fn run_pixels(&self, pixels: &Tensor) -> Result<Vec<DepthMap>> {
        let (b, _, h, w) = pixels.dims4().map_err(|_| {
            Error::input(
                "pixel_values",
                format!("shape {:?}, expected (B, 3, H, W)", pixels.dims()),
            )
        })?;
        let input = match self.preprocessing {
            DepthPreprocessing::DepthAnything { .. } => pixels.clone(),
            DepthPreprocessing::CenterPadding => center_pad(pixels, self.model.info().patch_size)?,
        };
        let depth = self.forward(&input, (h, w))?;
        (0..b)
            .map(|i| DepthMap::new(InputName::Pixels(i), depth.get(i)?, self.kind()))
            .collect()
    }

    /// Depth of one decoded image, at its size (named `image`).
    pub fn run_image(&self, image: &RgbImage) -> Result<DepthMap> {
        let size = (image.height() as usize, image.width() as usize);
        let depth = self.forward(&self.pixels(image)?, size)?;
        DepthMap::new(InputName::Image, depth.get(0)?, self.kind())
    }

    /// Depth of the image file at `path`, at its size.
    pub fn run_path(&self, path: impl AsRef<Path>) -> Result<DepthMap> {
        self.run_path_with(path.as_ref(), &())
    }

    /// [`DepthPipeline::run_path`], the decoder's notes told to `progress`.
    fn run_path_with(&self, path: &Path, progress: &dyn Progress) -> Result<DepthMap> {
        let map = self.run_image(&self.reader.read_with_progress(path, progress)?)?;
        Ok(map.with_name(InputName::File(path.to_path_buf())))
    }

    /// Depth of several image files (of any sizes), one at a time, in order.
    pub fn run_batch(&self, paths: &[impl AsRef<Path>]) -> Result<Vec<DepthMap>> {
        self.run_batch_with_progress(paths, &())
    }

    /// [`DepthPipeline::run_batch`], reporting each image to `progress` (stage `"images"`, with what
    /// the decoder notices about it, such as a 16-bit grayscale PNG, as a note) and stopping with
    /// [`Error::Interrupted`] when it is cancelled.
    pub fn run_batch_with_progress(
        &self,
        paths: &[impl AsRef<Path>],
        progress: &dyn Progress,
    ) -> Result<Vec<DepthMap>> {
        each("images", paths, progress, |p| {
            self.run_path_with(p.as_ref(), progress)
        })
    }
}
