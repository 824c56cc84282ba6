//! The registers paper's picture (`dinoreg attention`, Darcet et al. 2023, Figs. 1–3): per image,
//! the last layer's CLS attention of each head and their mean over the image, the norms of the output
//! patch tokens with the high-norm "artifact" tokens tinted, each register's attention, and the share
//! of high-norm tokens (`viz::attention`).
//!
//! Shapes: one image at a time `(1, 3, H, W)` → attentions `(1, H, T, T)` of the last block,
//! `T = 1 + R + h·w` → maps `(H, h, w)`, `(R, h, w)`, norms `(h, w)` → pictures of the image's size.

use std::path::Path;

use image::RgbImage;

use super::pictures::{PictureOptions, PicturePipeline};
use super::task::Task;
use crate::progress::Progress;
use crate::viz::{
    attention_pictures, AttentionOptions, AttentionPictures, AttentionSummary, DenseImage,
    Interpolation, PICTURE_SHORT_SIDE,
};
use crate::Result;

/// Options of an [`AttentionPipeline`]. Default: short side 448, the registers paper's threshold
/// (150) on the output tokens, flat patches.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionPipelineOptions {
    /// Resize so that the short side has this many pixels before the model (`None` keeps the size).
    pub short_side: Option<u32>,
    /// The norm threshold and which tokens' norms are measured.
    pub attention: AttentionOptions,
    /// How the patch grid is drawn at the image's size.
    pub interpolation: Interpolation,
}

impl Default for AttentionPipelineOptions {
    fn default() -> Self {
        Self {
            short_side: Some(PICTURE_SHORT_SIDE),
            attention: AttentionOptions::default(),
            interpolation: Interpolation::Nearest,
        }
    }
}

impl AttentionPipelineOptions {
    /// Sets the short side (`None` keeps the image's size).
    pub fn with_short_side(mut self, short_side: Option<u32>) -> Self {
        self.short_side = short_side;
        self
    }

    /// Sets the norm threshold and source.
    pub fn with_attention(mut self, attention: AttentionOptions) -> Self {
        self.attention = attention;
        self
    }

    /// Sets how the patch grid is drawn.
    pub fn with_interpolation(mut self, interpolation: Interpolation) -> Self {
        self.interpolation = interpolation;
        self
    }
}

/// One image's attention pictures and numbers.
#[derive(Debug, Clone)]
pub struct AttentionResult {
    /// The pictures (and the maps they were drawn from).
    pub pictures: AttentionPictures,
    /// The share of high-norm tokens and the norms' statistics.
    pub summary: AttentionSummary,
}

impl PictureOptions for AttentionPipelineOptions {
    fn short_side(&self) -> Option<u32> {
        self.short_side
    }

    fn task(&self) -> Task {
        Task::Attention
    }
}

/// A backbone drawing the registers paper's pictures.
///
/// ```
/// # fn main() -> dinoreg::Result<()> {
/// use dinoreg::pipelines::{AttentionPipeline, AttentionPipelineOptions};
/// use dinoreg::LoadOptions;
///
/// let options = AttentionPipelineOptions::default().with_short_side(Some(56));
/// let pipeline =
///     AttentionPipeline::from_pretrained("tests/fixtures/model/reg4", &options, &LoadOptions::default())?;
/// let result = pipeline.run_path("examples/images/chelsea.png")?;
/// assert_eq!(result.pictures.heads.len(), 4);
/// // Chelsea (451 × 300) at short side 56, patch 4: a 14 × 21 grid.
/// assert_eq!(result.summary.patch_tokens, 14 * 21);
/// # Ok(())
/// # }
/// ```
pub type AttentionPipeline = PicturePipeline<AttentionPipelineOptions>;

impl PicturePipeline<AttentionPipelineOptions> {
    /// The pictures of one decoded image named `name` (the name goes into the summary).
    pub fn run_image(&self, image: &RgbImage, name: &str) -> Result<AttentionResult> {
        self.result(&self.dense_image(image.clone())?, name)
    }

    /// The pictures of the image file at `path`.
    pub fn run_path(&self, path: impl AsRef<Path>) -> Result<AttentionResult> {
        self.run_path_with(path.as_ref(), &())
    }

    /// The pictures of several image files, one at a time, each handed to `sink` as soon as it is
    /// drawn (so a long run keeps what it did); reported to `progress` as stage `"images"`, stopping
    /// with [`Error::Interrupted`](crate::Error::Interrupted) when it is cancelled. What the decoder
    /// notices about an image (a 16-bit grayscale PNG) is a note of `progress`.
    pub fn for_each_path<P: AsRef<Path>>(
        &self,
        paths: &[P],
        progress: &dyn Progress,
        mut sink: impl FnMut(&P, AttentionResult) -> Result<()>,
    ) -> Result<()> {
        crate::progress::for_each_reported(progress, "images", paths, |p| {
            sink(p, self.run_path_with(p.as_ref(), progress)?)
        })?;
        Ok(())
    }

    /// [`AttentionPipeline::run_path`], the decoder's notes told to `progress`.
    fn run_path_with(&self, path: &Path, progress: &dyn Progress) -> Result<AttentionResult> {
        self.result(&self.read(path, progress)?, &path.display().to_string())
    }

    fn result(&self, image: &DenseImage, name: &str) -> Result<AttentionResult> {
        let pictures = attention_pictures(
            self.model(),
            image,
            &self.options().attention,
            self.options().interpolation,
        )?;
        let summary = pictures
            .maps
            .summary(name, self.options().attention.norm_source);
        Ok(AttentionResult { pictures, summary })
    }
}
