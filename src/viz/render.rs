//! From image files to pictures: dense preprocessing (aspect kept, sides multiples of the patch size),
//! the model's patch tokens, and the PCA and attention pictures at the image's size.
//!
//! Shapes: one image at a time `(1, 3, H, W)` (images of different sizes make different grids);
//! patch tokens `(h·w, D)` of `last_hidden_state` (final LayerNorm applied, CLS and registers dropped).

use std::path::{Path, PathBuf};

use candle::Device;
use image::{Rgb, RgbImage};
use ndarray::{Array2, Axis};

use super::attention::{attention_maps, AttentionMaps, AttentionOptions};
use super::colorbar::{with_colorbar, ValueRange};
use super::colormap::Colormap;
use super::heatmap::{blend, heatmap, heatmap_in, rgb_image, to_image, Interpolation};
use super::pca::{pca_rgb, PcaOptions};
use crate::io::npy::{array_to_tensor, tensor_to_array};
use crate::model::Vit;
use crate::preprocess::{DenseMeta, DenseOptions, ImageProcessor, Multiple};
use crate::{Error, Result};

/// The short side pictures are drawn at by default (`dinoreg pca` and `dinoreg attention`).
pub const PICTURE_SHORT_SIDE: u32 = 448;

/// Dense options for pictures of a model with patch size `patch`: short side `short_side` (None keeps
/// the size), sides rounded to the nearest multiple of the patch (no padding tokens in the statistics).
pub fn picture_options(patch: usize, short_side: Option<u32>) -> DenseOptions {
    DenseOptions::default()
        .with_patch_size(patch as u32)
        .with_short_side(short_side)
        .with_multiple(Multiple::Resize)
}

/// A decoded image with its dense model input.
#[derive(Debug, Clone)]
pub struct DenseImage {
    /// The decoded RGB image.
    pub image: RgbImage,
    /// The model input `(1, 3, H, W)`.
    pub pixels: candle::Tensor,
    /// How the input maps back to the image.
    pub meta: DenseMeta,
}

impl DenseImage {
    /// Decodes `path` and preprocesses it with `options` onto `device`.
    pub fn load(
        processor: &ImageProcessor,
        path: impl AsRef<Path>,
        options: &DenseOptions,
        device: &Device,
    ) -> Result<Self> {
        Self::from_image(processor, processor.read(path)?, options, device)
    }

    /// Preprocesses a decoded image with `options` onto `device`.
    pub fn from_image(
        processor: &ImageProcessor,
        image: RgbImage,
        options: &DenseOptions,
        device: &Device,
    ) -> Result<Self> {
        let (array, meta) = processor.dense(&image, options)?;
        let pixels = array_to_tensor(array.insert_axis(Axis(0)).into_dyn(), device)?;
        Ok(Self {
            image,
            pixels,
            meta,
        })
    }
}

/// The patch tokens `(h·w, D)` of one image and its grid `(h, w)`.
pub fn patch_tokens(
    model: &dyn Vit,
    pixels: &candle::Tensor,
) -> Result<(Array2<f32>, (usize, usize))> {
    let out = model.forward(pixels)?;
    let (h, w) = out.grid;
    let r = model.info().num_register_tokens;
    let tokens = out.last_hidden_state.get(0)?.narrow(0, 1 + r, h * w)?;
    let array = tensor_to_array(&tokens)?
        .into_dimensionality()
        .map_err(|e| Error::input("patch tokens", e.to_string()))?;
    Ok((array, (h, w)))
}

/// PCA pictures of `images` with one PCA fitted on all of them, each at its image's size.
pub fn pca_pictures(
    model: &dyn Vit,
    images: &[DenseImage],
    opts: &PcaOptions,
    interp: Interpolation,
) -> Result<Vec<RgbImage>> {
    let tokens = images
        .iter()
        .map(|im| patch_tokens(model, &im.pixels))
        .collect::<Result<Vec<_>>>()?;
    let views: Vec<_> = tokens.iter().map(|(t, _)| t.view()).collect();
    let grids: Vec<_> = tokens.iter().map(|(_, g)| *g).collect();
    let maps = pca_rgb(&views, &grids, opts)?;
    images
        .iter()
        .zip(maps)
        .map(|(im, map)| {
            Ok(rgb_image(
                to_image(map.rgb.view(), &im.meta, interp)?.view(),
            ))
        })
        .collect()
}

/// The attention pictures of one image.
#[derive(Debug, Clone)]
pub struct AttentionPictures {
    /// The maps they were drawn from.
    pub maps: AttentionMaps,
    /// Per head: its CLS attention over the image.
    pub heads: Vec<RgbImage>,
    /// The CLS attention averaged over heads, over the image.
    pub mean: RgbImage,
    /// Per register: its attention (mean over heads) over the image.
    pub registers: Vec<RgbImage>,
    /// The patch-token norms over their robust range (1st to 99th percentile; see
    /// [`crate::viz::colorbar`]), high-norm patches tinted red, with a colour bar of the values on the
    /// right.
    pub norms: RgbImage,
}

/// Which of an image's attention pictures are saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttentionSaveOptions {
    /// Also save each register's attention (`<stem>_reg<r>.png`).
    pub registers: bool,
}

impl AttentionSaveOptions {
    /// Sets whether the register pictures are saved.
    pub fn with_registers(mut self, yes: bool) -> Self {
        self.registers = yes;
        self
    }
}

impl AttentionPictures {
    /// Saves the pictures into the folder `dir` as `<stem>_attn_head<k>.png` (one per head),
    /// `<stem>_attn_mean.png`, `<stem>_norms.png` and, when asked, `<stem>_reg<r>.png`; returns the
    /// files written.
    pub fn save(
        &self,
        dir: impl AsRef<Path>,
        stem: &str,
        options: &AttentionSaveOptions,
    ) -> Result<Vec<PathBuf>> {
        let mut pictures: Vec<(String, &RgbImage)> = self
            .heads
            .iter()
            .enumerate()
            .map(|(k, head)| (format!("attn_head{k}"), head))
            .collect();
        pictures.push(("attn_mean".into(), &self.mean));
        pictures.push(("norms".into(), &self.norms));
        if options.registers {
            pictures.extend(
                self.registers
                    .iter()
                    .enumerate()
                    .map(|(r, reg)| (format!("reg{r}"), reg)),
            );
        }
        pictures
            .into_iter()
            .map(|(name, picture)| {
                let path = dir.as_ref().join(format!("{stem}_{name}.png"));
                save_png(picture, &path)?;
                Ok(path)
            })
            .collect()
    }
}

/// Weight of the heatmap over the photograph.
const OVERLAY_ALPHA: f32 = 0.6;

/// Runs the model on one image and draws its attention and norm pictures at the image's size.
pub fn attention_pictures(
    model: &dyn Vit,
    image: &DenseImage,
    opts: &AttentionOptions,
    interp: Interpolation,
) -> Result<AttentionPictures> {
    let maps = attention_maps(model, &image.pixels, opts)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::input("image", "the model returned no attention"))?;
    let over = |map: ndarray::ArrayView2<'_, f32>| {
        blend(
            &image.image,
            &heatmap(map, &image.meta, interp)?,
            OVERLAY_ALPHA,
        )
    };
    let heads = maps
        .cls
        .outer_iter()
        .map(over)
        .collect::<Result<Vec<_>>>()?;
    let mean = over(maps.cls.mean_axis(Axis(0)).unwrap_or_default().view())?;
    let registers = maps
        .registers
        .outer_iter()
        .map(over)
        .collect::<Result<Vec<_>>>()?;
    let range = ValueRange::robust(maps.norms.norms.iter().copied());
    let norms = heatmap_in(maps.norms.norms.view(), &image.meta, interp, range)?;
    let high = maps
        .norms
        .high
        .mapv(|h| if h { 1.0f32 } else { 0.0 })
        .insert_axis(Axis(0));
    let mask = to_image(high.view(), &image.meta, Interpolation::Nearest)?;
    let red = RgbImage::from_pixel(norms.width(), norms.height(), Rgb([255, 0, 0]));
    let tinted = blend(&norms, &red, 0.6)?;
    let norms = RgbImage::from_fn(norms.width(), norms.height(), |x, y| {
        if mask[[0, y as usize, x as usize]] > 0.5 {
            *tinted.get_pixel(x, y)
        } else {
            *norms.get_pixel(x, y)
        }
    });
    let norms = with_colorbar(&norms, Colormap::Viridis, range);
    Ok(AttentionPictures {
        maps,
        heads,
        mean,
        registers,
        norms,
    })
}

/// File-name stems for the pictures of `paths`: each file's stem, with `_N` added where two files
/// share one (N its position in `paths`; [`crate::io::output::disambiguate`]).
pub fn unique_stems(paths: &[std::path::PathBuf]) -> Vec<String> {
    let stems: Vec<String> = paths
        .iter()
        .map(|p| {
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into())
        })
        .collect();
    crate::io::output::disambiguate(&stems)
}

/// The picture files of `images`: `output` itself when it is a `.png` and there is one image, else
/// `output/<stem>_<suffix>.png` per image (stems made unique by [`unique_stems`]; the folder is
/// created).
///
/// ```
/// use std::path::PathBuf;
/// use dinoreg::viz::render::picture_files;
///
/// let one = picture_files("out.png", &[PathBuf::from("cat.jpg")], "pca")?;
/// assert_eq!(one, [PathBuf::from("out.png")]);
/// assert!(picture_files("out.png", &[PathBuf::from("a.jpg"), PathBuf::from("b.jpg")], "pca").is_err());
/// # Ok::<(), dinoreg::Error>(())
/// ```
pub fn picture_files(
    output: impl AsRef<Path>,
    images: &[PathBuf],
    suffix: &str,
) -> Result<Vec<PathBuf>> {
    let output = output.as_ref();
    let is_png = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if is_png {
        if images.len() != 1 {
            return Err(Error::option(
                "output",
                format!(
                    "{} is one file but {} images were given; give a folder",
                    output.display(),
                    images.len()
                ),
            ));
        }
        return Ok(vec![output.to_path_buf()]);
    }
    std::fs::create_dir_all(output).map_err(|e| Error::io(output, e))?;
    Ok(unique_stems(images)
        .into_iter()
        .map(|s| output.join(format!("{s}_{suffix}.png")))
        .collect())
}

/// Saves `image` as a PNG at `path`, atomically ([`crate::io::output::write_with`]).
pub fn save_png(image: &RgbImage, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    crate::io::output::write_with(path, |tmp| {
        image
            .save_with_format(tmp, image::ImageFormat::Png)
            .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
    })
}
