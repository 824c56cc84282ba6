//! The DINOv2 PCA picture (`dinoreg pca`): the first three principal components of the patch
//! features (`last_hidden_state`, CLS and registers dropped) as RGB, at each image's size, with one
//! PCA per image or one joint PCA over several, and optional foreground thresholding on the first
//! component (`viz::pca`).
//!
//! Shapes: one image at a time `(1, 3, H, W)` → patch tokens `(h·w, D)` → `(3, h, w)` components →
//! an RGB picture of the image's size.

use std::path::Path;

use candle::Tensor;
use image::RgbImage;

use super::pictures::PictureInput;
use crate::model::{LoadOptions, Vit};
use crate::preprocess::ImageProcessor;
use crate::progress::{check_cancelled, Progress};
use crate::viz::{pca_pictures, DenseImage, Interpolation, PcaOptions, PICTURE_SHORT_SIDE};
use crate::Result;

/// Options of a [`PcaPipeline`]. Default: short side 448, one PCA per image, flat patches.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaPipelineOptions {
    /// Resize so that the short side has this many pixels before the model (`None` keeps the size).
    pub short_side: Option<u32>,
    /// Fit one PCA on all the images of a run (colours comparable across them).
    pub joint: bool,
    /// Foreground thresholding.
    pub pca: PcaOptions,
    /// How the patch grid is drawn at the image's size.
    pub interpolation: Interpolation,
}

impl Default for PcaPipelineOptions {
    fn default() -> Self {
        Self {
            short_side: Some(PICTURE_SHORT_SIDE),
            joint: false,
            pca: PcaOptions::default(),
            interpolation: Interpolation::Nearest,
        }
    }
}

impl PcaPipelineOptions {
    /// Sets the short side (`None` keeps the image's size).
    pub fn with_short_side(mut self, short_side: Option<u32>) -> Self {
        self.short_side = short_side;
        self
    }

    /// Sets whether one PCA is fitted on all the images of a run.
    pub fn with_joint(mut self, joint: bool) -> Self {
        self.joint = joint;
        self
    }

    /// Sets the PCA options (foreground thresholding).
    pub fn with_pca(mut self, pca: PcaOptions) -> Self {
        self.pca = pca;
        self
    }

    /// Sets how the patch grid is drawn.
    pub fn with_interpolation(mut self, interpolation: Interpolation) -> Self {
        self.interpolation = interpolation;
        self
    }
}

/// A backbone drawing PCA pictures.
///
/// ```
/// # fn main() -> dinoreg::Result<()> {
/// use dinoreg::pipelines::{PcaPipeline, PcaPipelineOptions};
/// use dinoreg::LoadOptions;
///
/// let options = PcaPipelineOptions::default().with_short_side(Some(56));
/// let pipeline = PcaPipeline::from_pretrained("tests/fixtures/model/reg4", &options, &LoadOptions::default())?;
/// let picture = pipeline.run_path("examples/images/chelsea.png")?;
/// assert_eq!((picture.width(), picture.height()), (451, 300));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PcaPipeline {
    input: PictureInput,
    options: PcaPipelineOptions,
}

impl PcaPipeline {
    /// Loads a model of either generation (Hub id, folder or bare `.pth`) with its processor.
    pub fn from_pretrained(
        source: &str,
        options: &PcaPipelineOptions,
        load: &LoadOptions,
    ) -> Result<Self> {
        Ok(Self {
            input: PictureInput::from_pretrained(source, options.short_side, load)?,
            options: options.clone(),
        })
    }

    /// A pipeline over any backbone and processor.
    pub fn new(
        model: Box<dyn Vit>,
        processor: ImageProcessor,
        options: &PcaPipelineOptions,
    ) -> Result<Self> {
        Ok(Self {
            input: PictureInput::new(model, processor, options.short_side)?,
            options: options.clone(),
        })
    }

    /// The backbone.
    pub fn model(&self) -> &dyn Vit {
        self.input.model()
    }

    /// The image processor.
    pub fn processor(&self) -> &ImageProcessor {
        self.input.processor()
    }

    /// The pixels `(1, 3, H, W)` the backbone sees for `image`.
    pub fn pixels(&self, image: &RgbImage) -> Result<Tensor> {
        self.input.pixels(image)
    }

    /// The PCA picture of one decoded image, at its size.
    pub fn run_image(&self, image: &RgbImage) -> Result<RgbImage> {
        let image = self.input.image(image.clone())?;
        self.pictures(std::slice::from_ref(&image))
            .map(|mut p| p.remove(0))
    }

    /// The PCA picture of the image file at `path`, at its size.
    pub fn run_path(&self, path: impl AsRef<Path>) -> Result<RgbImage> {
        let image = self.input.read(path)?;
        self.pictures(std::slice::from_ref(&image))
            .map(|mut p| p.remove(0))
    }

    /// The pictures of several image files, in order: one joint PCA over all of them when the
    /// options ask for it, else one per image (reported to `progress`, which can stop the run with
    /// [`Error::Interrupted`](crate::Error::Interrupted)).
    pub fn run_paths(
        &self,
        paths: &[impl AsRef<Path>],
        progress: &dyn Progress,
    ) -> Result<Vec<RgbImage>> {
        progress.begin("images", Some(paths.len() as u64));
        let pictures = if self.options.joint {
            let mut images = Vec::with_capacity(paths.len());
            for (i, path) in paths.iter().enumerate() {
                check_cancelled(progress, i, paths.len())?;
                images.push(self.input.read(path)?);
                progress.advance(1);
            }
            self.pictures(&images)?
        } else {
            let mut pictures = Vec::with_capacity(paths.len());
            for (i, path) in paths.iter().enumerate() {
                check_cancelled(progress, i, paths.len())?;
                pictures.push(self.run_path(path)?);
                progress.advance(1);
            }
            pictures
        };
        progress.end();
        Ok(pictures)
    }

    /// One PCA over `images`, each drawn at its size.
    fn pictures(&self, images: &[DenseImage]) -> Result<Vec<RgbImage>> {
        pca_pictures(
            self.input.model(),
            images,
            &self.options.pca,
            self.options.interpolation,
        )
    }
}
