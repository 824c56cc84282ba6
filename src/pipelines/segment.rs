//! Semantic segmentation as dinov2 evaluates it: a backbone and a BNHead (one of dinov2's published
//! mmseg heads, `dinov2_vit*14_{ade20k,voc2012}_{linear,ms}_head.pth`, or a safetensors head from
//! probe training), run through mmseg's evaluation inference
//! ([`predict`](crate::heads::segmentation::predict): short-side resize, sliding windows centre-padded
//! to the patch size, multi-scale and flip test-time augmentation).
//!
//! Images are normalised with the checkpoint processor's mean and std (ImageNet's for every
//! DINOv2 and DINOv3 LVD checkpoint) at their own size; the preset ("linear":
//! short side 512, 512×512 windows; "ms": short side 640 × five ratios, flips, 640×640 windows) comes
//! from the head's number of blocks unless [`SegmentationOptions`] sets it, and any of its settings
//! can be replaced. Pixel tensors are used at their own size unless a short side is set.
//!
//! Shapes: pixels `(B, 3, H, W)`; logits `(K, H, W)` per image at its size (with several passes, the
//! log of the mean softmax).

use std::path::Path;

use candle::Tensor;
use image::RgbImage;

use crate::heads::segmentation::{
    checked_rescaled_size, predict, window_count, BnHead, ClassSet, InferenceOptions, Window,
};
use crate::heads::Head;
use crate::model::{LoadOptions, ModelSource, Vit};
use crate::pipelines::batch::each;
use crate::pipelines::dense_input::{batch_of_one, dense_normaliser};
use crate::pipelines::input::InputName;
use crate::pipelines::segment_map::SegmentationMap;
use crate::pipelines::task_preprocessor::TaskPreprocessor;
use crate::preprocess::ImageProcessor;
use crate::progress::Progress;
use crate::{Error, Result};

/// dinov2's two evaluation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentationPreset {
    /// Short side 512, sliding 512×512 windows with stride 341, one scale, no flip.
    Linear,
    /// Short side 640 × {1.0, 1.32, 1.73, 2.28, 3.0}, each also flipped, windows 640 stride 320.
    MultiScale,
}

/// How inputs are scaled before the windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Resize so that the short side is this many pixels (times each ratio).
    ShortSide(usize),
    /// Keep the input's size (ratios scale it).
    Keep,
}

/// Options of a [`SegmentationPipeline`]: a preset and what replaces its settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SegmentationOptions {
    /// The evaluation setting; `None`: linear for a head reading one block, ms for more.
    pub preset: Option<SegmentationPreset>,
    /// The scale; `None`: the preset's for images, [`Scale::Keep`] for pixel tensors.
    pub scale: Option<Scale>,
    /// Test-time scale ratios; `None`: the preset's.
    pub ratios: Option<Vec<f64>>,
    /// Also run each scale flipped horizontally; `None`: the preset's.
    pub flip: Option<bool>,
    /// How each scaled input is covered; `None`: the preset's sliding windows.
    pub window: Option<Window>,
    /// Replaces the stride (both axes) of the sliding windows (an error with [`Window::Whole`]).
    pub stride: Option<usize>,
    /// Sliding windows per backbone call (same result; more is faster on a GPU and uses more
    /// memory); `None`: the heads' default (`DEFAULT_WINDOWS_PER_CALL`).
    pub windows_per_call: Option<usize>,
    /// The backbone blocks a `.pth` head reads, when not the last `C_in / width` ones.
    pub blocks: Option<Vec<i64>>,
    /// Class names and colours; `None`: the head's own, else ADE20K for 150 classes, VOC for 21,
    /// numbered classes otherwise.
    pub classes: Option<ClassSet>,
}

impl SegmentationOptions {
    /// Sets the preset.
    pub fn with_preset(mut self, preset: SegmentationPreset) -> Self {
        self.preset = Some(preset);
        self
    }

    /// Sets the scale.
    pub fn with_scale(mut self, scale: Scale) -> Self {
        self.scale = Some(scale);
        self
    }

    /// Sets the test-time ratios.
    pub fn with_ratios(mut self, ratios: Vec<f64>) -> Self {
        self.ratios = Some(ratios);
        self
    }

    /// Sets whether flipped passes are added.
    pub fn with_flip(mut self, flip: bool) -> Self {
        self.flip = Some(flip);
        self
    }

    /// Sets the window.
    pub fn with_window(mut self, window: Window) -> Self {
        self.window = Some(window);
        self
    }

    /// Square sliding windows of side `crop`, every `stride` pixels (default: two thirds of the
    /// crop, rounded up, as 512 → 341 in dinov2's linear setting).
    pub fn with_crop(self, crop: usize, stride: Option<usize>) -> Self {
        let s = stride.unwrap_or((2 * crop).div_ceil(3));
        self.with_window(Window::Slide {
            crop: (crop, crop),
            stride: (s, s),
        })
    }

    /// Sets the stride of the sliding windows.
    pub fn with_stride(mut self, stride: usize) -> Self {
        self.stride = Some(stride);
        self
    }

    /// Sets how many windows go into one backbone call.
    pub fn with_windows_per_call(mut self, n: usize) -> Self {
        self.windows_per_call = Some(n);
        self
    }

    /// Sets the blocks a `.pth` head reads.
    pub fn with_blocks(mut self, blocks: impl Into<Vec<i64>>) -> Self {
        self.blocks = Some(blocks.into());
        self
    }

    /// Sets the class names and colours.
    pub fn with_classes(mut self, classes: ClassSet) -> Self {
        self.classes = Some(classes);
        self
    }

    /// The short side and ratio of the first pass over images, for a head reading `blocks` blocks on
    /// a backbone of patch `patch`: what the windows are cut from.
    pub(crate) fn first_scale(&self, blocks: usize, patch: usize) -> Result<(Option<usize>, f64)> {
        let opts = self.inference(blocks, patch, false)?;
        Ok((opts.short_side, opts.ratios.first().copied().unwrap_or(1.0)))
    }

    /// The inference options for a head reading `blocks` blocks on a backbone of patch `patch`: for images, or for pixel
    /// tensors (`pixels`, whose default scale is their own).
    fn inference(&self, blocks: usize, patch: usize, pixels: bool) -> Result<InferenceOptions> {
        let preset = self.preset.unwrap_or(match blocks {
            1 => SegmentationPreset::Linear,
            _ => SegmentationPreset::MultiScale,
        });
        let mut opts = match preset {
            SegmentationPreset::Linear => InferenceOptions::linear(),
            SegmentationPreset::MultiScale => InferenceOptions::multi_scale(),
        }
        .with_center_padding(Some(patch));
        if let Some(n) = self.windows_per_call {
            opts.windows_per_call = n;
        }
        opts.short_side = match (self.scale, pixels) {
            (Some(Scale::ShortSide(s)), _) => Some(s),
            (Some(Scale::Keep), _) | (None, true) => None,
            (None, false) => opts.short_side,
        };
        if let Some(r) = &self.ratios {
            opts.ratios = r.clone();
        }
        if let Some(f) = self.flip {
            opts.flip = f;
        }
        if let Some(w) = self.window {
            opts.window = w;
        }
        if let Some(s) = self.stride {
            match &mut opts.window {
                Window::Slide { stride, .. } => *stride = (s, s),
                Window::Whole => {
                    return Err(Error::option(
                        "stride",
                        "a stride needs sliding windows, but the whole image is one window",
                    ))
                }
            }
        }
        opts.validate()?;
        Ok(opts)
    }
}

/// A backbone, a BNHead, their class names and dinov2's evaluation inference, producing
/// [`SegmentationMap`]s.
///
/// ```no_run
/// # fn main() -> dinoreg::Result<()> {
/// use dinoreg::pipelines::{SegmentationOptions, SegmentationPipeline};
/// use dinoreg::LoadOptions;
/// use std::path::Path;
///
/// let pipeline = SegmentationPipeline::from_pretrained(
///     "facebook/dinov2-small",
///     "dinov2_vits14_voc2012_linear_head.pth",
///     &SegmentationOptions::default(),
///     &LoadOptions::default(),
/// )?;
/// let map = pipeline.run_path("examples/images/chelsea.png")?;
/// map.write_png("chelsea_classes.png", 0.6)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SegmentationPipeline {
    model: Box<dyn Vit>,
    head: BnHead,
    classes: ClassSet,
    reader: ImageProcessor,
    normaliser: ImageProcessor,
    for_images: InferenceOptions,
    for_pixels: InferenceOptions,
    input: TaskPreprocessor,
}

impl SegmentationPipeline {
    /// Loads a model (Hub id, folder or bare `.pth`) and a BNHead file (a dinov2 mmseg `.pth`:
    /// `decode_head.bn.*`, `decode_head.conv_seg.*`; or a `.safetensors` head from probe training).
    pub fn from_pretrained(
        source: &str,
        head: impl AsRef<Path>,
        options: &SegmentationOptions,
        load: &LoadOptions,
    ) -> Result<Self> {
        // The head first: a head that does not fit fails before the backbone loads.
        let resolved = ModelSource::resolve(source)?;
        let head = BnHead::load(head, resolved.config.hidden_size(), &load.device)?;
        let model = resolved.load(load)?;
        Self::new(Box::new(model), head, resolved.processor, options)
    }

    /// A pipeline over any backbone and BNHead. `processor` decodes images (its limits and alpha
    /// handling) and gives the mean and std (ImageNet's for every published DINOv2 and DINOv3 LVD
    /// checkpoint, as dinov2's segmentation has them); its resize and crop are not used.
    pub fn new(
        model: Box<dyn Vit>,
        head: BnHead,
        processor: ImageProcessor,
        options: &SegmentationOptions,
    ) -> Result<Self> {
        let head = match &options.blocks {
            Some(blocks) => head.with_blocks(blocks.clone())?,
            None => head,
        };
        if head.embed_dim() != model.info().hidden_size {
            return Err(Error::option(
                "segmentation head",
                format!(
                    "reads features of width {}, but the backbone has width {}",
                    head.embed_dim(),
                    model.info().hidden_size
                ),
            ));
        }
        let classes = match &options.classes {
            Some(c) => c.clone(),
            None => head
                .classes()
                .cloned()
                .unwrap_or_else(|| ClassSet::for_num_classes(head.num_classes())),
        };
        classes.check_len(head.num_classes())?;
        let patch = model.info().patch_size;
        let for_images = options.inference(head.blocks().len(), patch, false)?;
        let ratio = for_images.ratios.first().copied().unwrap_or(1.0);
        Ok(Self {
            input: TaskPreprocessor::segment(processor.clone(), for_images.short_side, ratio),
            for_pixels: options.inference(head.blocks().len(), patch, true)?,
            for_images,
            normaliser: dense_normaliser(&processor),
            reader: processor,
            model,
            head,
            classes,
        })
    }

    /// The backbone.
    pub fn model(&self) -> &dyn Vit {
        self.model.as_ref()
    }

    /// The head.
    pub fn head(&self) -> &BnHead {
        &self.head
    }

    /// The class names and colours.
    pub fn classes(&self) -> &ClassSet {
        &self.classes
    }

    /// The inference settings used for images.
    pub fn image_options(&self) -> &InferenceOptions {
        &self.for_images
    }

    /// The inference settings used for pixel tensors.
    pub fn pixel_options(&self) -> &InferenceOptions {
        &self.for_pixels
    }

    /// The image normalised at its own size `(1, 3, H, W)`: what [`SegmentationPipeline::run_pixels`]
    /// takes.
    pub fn normalize(&self, image: &RgbImage) -> Result<Tensor> {
        batch_of_one(self.normaliser.to_pixels(image), self.model.device())
    }

    /// The pixels the windows of the first pass are cut from: the normalised image resized to the
    /// first scale (each window is then centre-padded to the patch size for the backbone).
    pub fn pixels(&self, image: &RgbImage) -> Result<Tensor> {
        self.input.pixels(image, self.model.device())
    }

    /// The preprocessing behind [`SegmentationPipeline::pixels`], without the model.
    pub fn task_preprocessor(&self) -> &TaskPreprocessor {
        &self.input
    }

    /// Logits `(B, K, H, W)` of normalised pixels with `opts`.
    fn logits(&self, pixels: &Tensor, opts: &InferenceOptions) -> Result<Tensor> {
        predict(pixels, opts, |x: &Tensor| -> Result<Tensor> {
            let features = self.model.features(x, &self.head.request())?;
            Ok(self.head.grid_logits(&features)?)
        })
    }

    /// Segmentation of normalised pixels `(B, 3, H, W)` at their size, named `pixels[i]`; the
    /// overlay pictures are the pixels un-normalised.
    pub fn run_pixels(&self, pixels: &Tensor) -> Result<Vec<SegmentationMap>> {
        let logits = self.logits(pixels, &self.for_pixels)?;
        let pictures = self.normaliser.to_rgb_images(pixels)?;
        pictures
            .into_iter()
            .enumerate()
            .map(|(i, rgb)| {
                SegmentationMap::new(
                    InputName::Pixels(i),
                    logits.get(i)?,
                    rgb,
                    self.classes.clone(),
                )
            })
            .collect()
    }

    /// Segmentation of one decoded image at its size (named `image`).
    pub fn run_image(&self, image: &RgbImage) -> Result<SegmentationMap> {
        let logits = self.logits(&self.normalize(image)?, &self.for_images)?;
        SegmentationMap::new(
            InputName::Image,
            logits.get(0)?,
            image.clone(),
            self.classes.clone(),
        )
    }

    /// Segmentation of the image file at `path`, at its size.
    pub fn run_path(&self, path: impl AsRef<Path>) -> Result<SegmentationMap> {
        self.run_path_with(path.as_ref(), &())
    }

    /// [`SegmentationPipeline::run_path`], the decoder's notes told to `progress`.
    fn run_path_with(&self, path: &Path, progress: &dyn Progress) -> Result<SegmentationMap> {
        let map = self.run_image(&self.reader.read_with_progress(path, progress)?)?;
        Ok(map.with_name(InputName::File(path.to_path_buf())))
    }

    /// Segmentation of several image files (of any sizes), one at a time, in order.
    pub fn run_batch(&self, paths: &[impl AsRef<Path>]) -> Result<Vec<SegmentationMap>> {
        self.run_batch_with_progress(paths, &())
    }

    /// [`SegmentationPipeline::run_batch`], reporting to `progress` and stopping with
    /// [`Error::Interrupted`] when it is cancelled: one image is reported window by window (stage
    /// `"windows"`, over every scale and flip, so a long multi-scale run shows itself), several image
    /// by image (stage `"images"`). What the decoder notices about an image (a 16-bit grayscale PNG)
    /// is a note of `progress`.
    pub fn run_batch_with_progress(
        &self,
        paths: &[impl AsRef<Path>],
        progress: &dyn Progress,
    ) -> Result<Vec<SegmentationMap>> {
        if let [path] = paths {
            let path = path.as_ref();
            let image = self.reader.read_with_progress(path, progress)?;
            let map = self.run_image_with_progress(&image, progress)?;
            return Ok(vec![map.with_name(InputName::File(path.to_path_buf()))]);
        }
        each("images", paths, progress, |p| {
            self.run_path_with(p.as_ref(), progress)
        })
    }

    /// [`SegmentationPipeline::run_image`], reporting each window to `progress` (stage `"windows"`)
    /// and stopping with [`Error::Interrupted`] between model calls when it is cancelled.
    pub fn run_image_with_progress(
        &self,
        image: &RgbImage,
        progress: &dyn Progress,
    ) -> Result<SegmentationMap> {
        let opts = &self.for_images;
        let size = (image.height() as usize, image.width() as usize);
        let mut total = 0;
        for &ratio in &opts.ratios {
            let scaled = checked_rescaled_size(size, opts.short_side, ratio)?;
            total += window_count(scaled, &opts.window)?;
        }
        if opts.flip {
            total *= 2;
        }
        let done = std::cell::Cell::new(0usize);
        progress.begin("windows", Some(total as u64));
        let logits = predict(
            &self.normalize(image)?,
            opts,
            |x: &Tensor| -> Result<Tensor> {
                crate::progress::check_cancelled(progress, done.get(), total)?;
                let features = self.model.features(x, &self.head.request())?;
                let logits = self.head.grid_logits(&features)?;
                done.set(done.get() + x.dim(0)?);
                progress.advance(x.dim(0)? as u64);
                Ok(logits)
            },
        )?;
        progress.end();
        SegmentationMap::new(
            InputName::Image,
            logits.get(0)?,
            image.clone(),
            self.classes.clone(),
        )
    }
}
