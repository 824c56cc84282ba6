//! Unsupervised single-object discovery: LOST or TokenCut (`dinoreg_heads::discovery`) on the last
//! block's attention keys (or queries, values, output tokens), one object per image, as
//! valeoai/LOST's `main_lost.py` and TokenCut's `main_tokencut.py` run them.
//!
//! Images are read at full resolution (or resized to a short side first), normalised with the
//! model's processor and zero-padded bottom/right to a multiple of the patch size, as LOST and
//! TokenCut do; pixel tensors are padded the same way. The box is given in the image's own pixels.
//!
//! Shapes: pixels `(B, 3, H, W)` → padded `(B, 3, ⌈H/p⌉·p, ⌈W/p⌉·p)` → one feature map
//! `(B, C, h, w)` → one [`DiscoveredObject`] per image, its mask on the `(h, w)` grid.

use std::path::Path;

use candle::Tensor;
use dinoreg_heads::discovery::{pad_to_patches, Discovery};
use image::RgbImage;
use ndarray::Axis;
use serde::{Serialize, Serializer};

use super::discover_method::{DiscoveryMethod, MethodHead};
use super::input::InputName;
use super::task::Task;
use super::task_preprocessor::{discovery_dense, TaskPreprocessor};
use crate::io::json::write_json_lines;
use crate::io::npy::array_to_tensor;
use crate::model::{DinoModel, LoadOptions, Vit};
use crate::preprocess::{DenseMeta, DenseOptions, ImageProcessor};
use crate::progress::{for_each_reported, Progress};
#[cfg(feature = "draw")]
use crate::viz::draw_discovery;
use crate::{Error, Result};

/// Options of a [`DiscoveryPipeline`]. Default: LOST with its paper's options, full resolution.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DiscoveryOptions {
    /// The method and its options.
    pub method: DiscoveryMethod,
    /// Resize images so that their short side has this many pixels first (`None`: full resolution,
    /// as LOST). Boxes are still given in the image's own pixels.
    pub short_side: Option<u32>,
}

impl DiscoveryOptions {
    /// Sets the method and its options.
    pub fn with_method(mut self, method: DiscoveryMethod) -> Self {
        self.method = method;
        self
    }

    /// Sets the short side images are resized to first (`None`: full resolution).
    pub fn with_short_side(mut self, short_side: Option<u32>) -> Self {
        self.short_side = short_side;
        self
    }
}

/// The object found in one image.
///
/// Serialises to the JSON object `dinoreg discover` writes: `{"image", "image_size": [H, W],
/// "input_size": [H, W], "box": [x1, y1, x2, y2], "box_patches", "seed": [row, col], "grid", "mask",
/// "mask_patches", ("eigenvector")}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiscoveredObject {
    /// The image file, or row `i` of a pixel tensor (`pixels[i]` in JSON).
    #[serde(serialize_with = "as_text")]
    pub image: InputName,
    /// The image's size `[H, W]`, in the pixels the box is given in.
    pub image_size: [usize; 2],
    /// The size `[H, W]` the model saw before padding (differs from `image_size` with a short side).
    pub input_size: [usize; 2],
    /// The object: its box in image pixels (exclusive max), seed patch `[row, col]`, and its mask on
    /// the patch grid of the model input.
    #[serde(flatten)]
    pub discovery: Discovery,
}

impl DiscoveredObject {
    /// The box `[x1, y1, x2, y2]` in image pixels, exclusive max.
    pub fn bbox(&self) -> [usize; 4] {
        self.discovery.bbox
    }

    /// The seed patch `[row, col]` on the grid of the model input.
    pub fn seed(&self) -> [usize; 2] {
        self.discovery.seed
    }

    /// The object's patches, row-major over [`Discovery::grid`].
    pub fn mask(&self) -> &[bool] {
        &self.discovery.mask
    }

    /// Writes `objects` as a JSON array, one object a line (the file `dinoreg discover` writes),
    /// atomically.
    pub fn write_json(path: impl AsRef<Path>, objects: &[Self]) -> Result<()> {
        write_json_lines(path, objects)
    }
}

/// Serialises an [`InputName`] as its display text.
fn as_text<S: Serializer>(name: &InputName, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(name)
}

/// A backbone, a discovery head (LOST or TokenCut) and how images are prepared for them.
///
/// ```
/// # fn main() -> dinoreg::Result<()> {
/// use dinoreg::pipelines::{DiscoveryOptions, DiscoveryPipeline};
/// use dinoreg::LoadOptions;
///
/// let pipeline = DiscoveryPipeline::from_pretrained(
///     "tests/fixtures/discovery/tiny_reg4",
///     &DiscoveryOptions::default(),
///     &LoadOptions::default(),
/// )?;
/// let found = pipeline.run_path("tests/fixtures/discovery/voc/JPEGImages/000001.jpg")?;
/// assert_eq!(found.image_size, [20, 24]);
/// let [x1, y1, x2, y2] = found.bbox();
/// assert!(x1 < x2 && x2 <= 24 && y1 < y2 && y2 <= 20);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DiscoveryPipeline {
    model: Box<dyn Vit>,
    processor: ImageProcessor,
    method: DiscoveryMethod,
    head: MethodHead,
    dense: DenseOptions,
    input: TaskPreprocessor,
}

impl DiscoveryPipeline {
    /// Loads a model of either generation (Hub id, folder or bare `.pth`) with its processor.
    pub fn from_pretrained(
        source: &str,
        options: &DiscoveryOptions,
        load: &LoadOptions,
    ) -> Result<Self> {
        let pretrained = DinoModel::from_pretrained(source, load)?;
        Self::new(Box::new(pretrained.model), pretrained.processor, options)
    }

    /// A pipeline over any backbone and processor; errors on invalid method options.
    pub fn new(
        model: Box<dyn Vit>,
        processor: ImageProcessor,
        options: &DiscoveryOptions,
    ) -> Result<Self> {
        let head = MethodHead::new(&options.method)?;
        let dense = discovery_dense(options.short_side, model.info().patch_size)?;
        Ok(Self {
            input: TaskPreprocessor::dense(Task::Discover, processor.clone(), dense),
            model,
            processor,
            method: options.method.clone(),
            head,
            dense,
        })
    }

    /// The backbone.
    pub fn model(&self) -> &dyn Vit {
        self.model.as_ref()
    }

    /// The image processor (decoding, rescale and normalisation).
    pub fn processor(&self) -> &ImageProcessor {
        &self.processor
    }

    /// The method and its options.
    pub fn method(&self) -> &DiscoveryMethod {
        &self.method
    }

    /// The model's patch size.
    pub fn patch_size(&self) -> usize {
        self.model.info().patch_size
    }

    /// The pixels `(1, 3, H, W)` the backbone sees for `image`: resized to the short side when one
    /// was asked for, normalised, zero-padded bottom/right to multiples of the patch size.
    pub fn pixels(&self, image: &RgbImage) -> Result<Tensor> {
        self.input.pixels(image, self.model.device())
    }

    /// The preprocessing behind [`DiscoveryPipeline::pixels`], without the model.
    pub fn task_preprocessor(&self) -> &TaskPreprocessor {
        &self.input
    }

    /// [`DiscoveryPipeline::pixels`] with the plan that maps them back to the image.
    fn dense_pixels(&self, image: &RgbImage) -> Result<(Tensor, DenseMeta)> {
        let (array, meta) = self.processor.dense(image, &self.dense)?;
        let pixels = array_to_tensor(array.insert_axis(Axis(0)).into_dyn(), self.model.device())?;
        Ok((pixels, meta))
    }

    /// The object in each image of normalised pixels `(B, 3, H, W)` (padded here), boxes in their
    /// pixels; the objects are named `pixels[i]`.
    pub fn run_pixels(&self, pixels: &Tensor) -> Result<Vec<DiscoveredObject>> {
        let p = self.patch_size();
        let (padded, (h, w)) = pad_to_patches(pixels, p)?;
        self.method
            .check_grid((h.div_ceil(p), w.div_ceil(p)), "pixels")?;
        let features = self.model.features(&padded, &self.head.request())?;
        Ok(self
            .head
            .discover(&features, (h, w))?
            .into_iter()
            .enumerate()
            .map(|(i, discovery)| DiscoveredObject {
                image: InputName::Pixels(i),
                image_size: [h, w],
                input_size: [h, w],
                discovery,
            })
            .collect())
    }

    /// The object in one decoded image named `name`, its box in the image's own pixels.
    pub fn run_image(&self, image: &RgbImage, name: InputName) -> Result<DiscoveredObject> {
        // The guard runs on the plan, before any resizing of a too large image.
        let (gh, gw) = self.dense.plan((image.height(), image.width()))?.grid();
        self.method
            .check_grid((gh as usize, gw as usize), &name.to_string())?;
        let (pixels, meta) = self.dense_pixels(image)?;
        let features = self.model.features(&pixels, &self.head.request())?;
        let input = (meta.resized.0 as usize, meta.resized.1 as usize);
        let mut discovery = self
            .head
            .discover(&features, input)?
            .pop()
            .ok_or_else(|| Error::input(name.to_string(), "the head returned no object"))?;
        let original = (meta.original.0 as usize, meta.original.1 as usize);
        if original != input {
            discovery.bbox = scale_box(discovery.bbox, input, original);
        }
        Ok(DiscoveredObject {
            image: name,
            image_size: [original.0, original.1],
            input_size: [input.0, input.1],
            discovery,
        })
    }

    /// The object in the image file at `path` (decoded with the processor's limits).
    pub fn run_path(&self, path: impl AsRef<Path>) -> Result<DiscoveredObject> {
        self.run_path_with_progress(path, &())
    }

    /// [`DiscoveryPipeline::run_path`], telling `progress` what the decoder noticed about the image
    /// (a 16-bit grayscale PNG) as notes.
    pub(crate) fn run_path_with_progress(
        &self,
        path: impl AsRef<Path>,
        progress: &dyn Progress,
    ) -> Result<DiscoveredObject> {
        let path = path.as_ref();
        self.run_image(
            &self.processor.read_with_progress(path, progress)?,
            InputName::File(path.to_path_buf()),
        )
    }

    /// The objects of several image files, in order, one at a time (images of different sizes make
    /// different grids, so they do not share a batch). Reports each image to `progress` (and what the
    /// decoder notices about it, such as a 16-bit grayscale PNG, as a note) and stops with
    /// [`Error::Interrupted`] when it is cancelled; the first failing image stops the run.
    pub fn run_paths(
        &self,
        paths: &[impl AsRef<Path>],
        progress: &dyn Progress,
    ) -> Result<Vec<DiscoveredObject>> {
        for_each_reported(progress, "images", paths, |path| {
            self.run_path_with_progress(path, progress)
        })
    }

    /// The picture of `object` over `image` (the image it was found in, or the pixels it was found in
    /// turned back into a picture): its patches tinted, its box and seed patch outlined. Needs the
    /// `draw` feature.
    #[cfg(feature = "draw")]
    pub fn draw(&self, image: &RgbImage, object: &DiscoveredObject) -> RgbImage {
        let input = (object.input_size[0], object.input_size[1]);
        draw_discovery(image, &object.discovery, self.patch_size(), input)
    }
}

/// Scales a box `[x1, y1, x2, y2]` from an `input` `(H, W)` to the `original` `(H, W)`, rounded and
/// clipped to it.
fn scale_box(bbox: [usize; 4], input: (usize, usize), original: (usize, usize)) -> [usize; 4] {
    let sx = original.1 as f64 / input.1 as f64;
    let sy = original.0 as f64 / input.0 as f64;
    let scale = |v: usize, s: f64, max: usize| ((v as f64 * s).round() as usize).min(max);
    let [x1, y1, x2, y2] = bbox;
    [
        scale(x1, sx, original.1),
        scale(y1, sy, original.0),
        scale(x2, sx, original.1),
        scale(y2, sy, original.0),
    ]
}
