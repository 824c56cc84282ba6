//! The DINOv2 PCA picture (`dinoreg pca`): the first three principal components of the patch
//! features (`last_hidden_state`, CLS and registers dropped) as RGB, at each image's size, with one
//! PCA per image or one joint PCA over several, and optional foreground thresholding on the first
//! component (`viz::pca`).
//!
//! Shapes: one image at a time `(1, 3, H, W)` → patch tokens `(h·w, D)` → `(3, h, w)` components →
//! an RGB picture of the image's size.

use std::path::Path;

use image::RgbImage;

use super::pictures::{PictureOptions, PicturePipeline};
use super::task::Task;
use crate::progress::{for_each_reported, Progress};
use crate::viz::{pca_pictures, DenseImage, Interpolation, PcaOptions, PICTURE_SHORT_SIDE};
use crate::{Error, Result};

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

impl PictureOptions for PcaPipelineOptions {
    fn short_side(&self) -> Option<u32> {
        self.short_side
    }

    fn task(&self) -> Task {
        Task::Pca
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
pub type PcaPipeline = PicturePipeline<PcaPipelineOptions>;

impl PicturePipeline<PcaPipelineOptions> {
    /// The PCA picture of one decoded image, at its size.
    pub fn run_image(&self, image: &RgbImage) -> Result<RgbImage> {
        self.picture(&self.dense_image(image.clone())?)
    }

    /// The PCA picture of the image file at `path`, at its size.
    pub fn run_path(&self, path: impl AsRef<Path>) -> Result<RgbImage> {
        self.picture(&self.read(path, &())?)
    }

    /// The pictures of several image files, in order: one joint PCA over all of them when the
    /// options ask for it, else one per image (reported to `progress`, which can stop the run with
    /// [`Error::Interrupted`](crate::Error::Interrupted), and hears as notes what the decoder
    /// notices about an image, such as a 16-bit grayscale PNG).
    pub fn run_paths(
        &self,
        paths: &[impl AsRef<Path>],
        progress: &dyn Progress,
    ) -> Result<Vec<RgbImage>> {
        if self.options().joint {
            let images = for_each_reported(progress, "images", paths, |p| self.read(p, progress))?;
            self.pictures(&images)
        } else {
            for_each_reported(progress, "images", paths, |p| {
                self.picture(&self.read(p, progress)?)
            })
        }
    }

    /// The picture of one image, with its own PCA.
    fn picture(&self, image: &DenseImage) -> Result<RgbImage> {
        self.pictures(std::slice::from_ref(image))?
            .pop()
            .ok_or_else(|| Error::input("image", "the PCA returned no picture"))
    }

    /// One PCA over `images`, each drawn at its size.
    fn pictures(&self, images: &[DenseImage]) -> Result<Vec<RgbImage>> {
        pca_pictures(
            self.model(),
            images,
            &self.options().pca,
            self.options().interpolation,
        )
    }
}
