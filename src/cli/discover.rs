//! `dinoreg discover`: unsupervised single-object discovery with LOST or TokenCut on the last block's
//! attention keys (CLS and registers dropped), one box per image.
//!
//! Images are read at full resolution (or resized with `--short-side`), normalised with the model's
//! processor and zero-padded bottom/right to a multiple of the patch size, as LOST and TokenCut do;
//! `--pixels` arrays are padded the same way. Output: a JSON array, one object per image,
//! `{"image", "image_size": [H, W], "box": [x1, y1, x2, y2], "seed": [row, col], "mask_patches", "grid",
//! "box_patches", "mask", ("eigenvector")}`, the box in image pixels with an exclusive max.
//! `--draw` writes the image with the object's patches tinted, the box and the seed patch outlined.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use candle::{Device, Tensor};
use dinoreg::heads::discovery::{
    pad_to_patches, Discovery, Lost, LostOptions, TokenCut, TokenCutOptions,
};
use dinoreg::heads::{FeatureSource, Head};
use dinoreg::io::npy::{array_to_tensor, read_pixels};
use dinoreg::preprocess::{
    DenseOptions, ImageProcessor, Multiple, PadAnchor, IMAGENET_MEAN, IMAGENET_STD,
};
use dinoreg::Dinov2Model;
use dinoreg::Vit;
use image::{Rgb, RgbImage};
use imageproc::drawing::draw_hollow_rect_mut;
use imageproc::rect::Rect;
use ndarray::Axis;
use serde::Serialize;

use super::common::{expand_images, write_atomic, InputArgs, ModelArgs, ModelSource};

/// Arguments of `dinoreg discover`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    method: MethodArgs,
    /// The JSON file to write (an array, one object per image).
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Also write a picture of the box and mask (several images: one file each, named
    /// <stem>_<image>.png).
    #[arg(long)]
    draw: Option<PathBuf>,
}

/// The discovery method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// LOST (Siméoni et al. 2021): the lowest-degree patch and its expansion.
    Lost,
    /// TokenCut (Wang et al. 2022): a normalised cut of the patch graph.
    Tokencut,
}

/// Which tensor of the last block the method reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Features {
    /// Attention keys (LOST's and TokenCut's default).
    Keys,
    /// Attention queries.
    Queries,
    /// Attention values.
    Values,
    /// The block's output tokens.
    Output,
}

/// The method and its options, shared with `dinoreg corloc`.
#[derive(Debug, Clone, clap::Args)]
pub struct MethodArgs {
    /// The discovery method.
    #[arg(long, value_enum, default_value_t = Method::Lost)]
    pub method: Method,
    /// LOST: how many lowest-degree patches the seed expansion looks at.
    #[arg(long, default_value_t = 100)]
    pub k_patches: usize,
    /// LOST: no seed expansion (the mask is the seed's positive correlations).
    #[arg(long)]
    pub no_seed_expansion: bool,
    /// LOST: a constant added to the gram matrix (the registers paper used one; LOST: 0).
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    pub gram_bias: f32,
    /// TokenCut: the similarity threshold of the graph.
    #[arg(long, default_value_t = 0.2, allow_hyphen_values = true)]
    pub tau: f32,
    /// Which tensor of the last block to read.
    #[arg(long, value_enum, default_value_t = Features::Keys)]
    pub features: Features,
    /// Resize images so that their short side has this many pixels first (default: full resolution,
    /// as LOST). Boxes are still given in the image's own pixels.
    #[arg(long)]
    pub short_side: Option<u32>,
}

/// The most patches an image may have: LOST's gram matrix is `N x N` f32 (20 000 patches: 1.6 GB);
/// TokenCut's dense eigendecomposition costs `N^3` (6 000 patches: about half a minute).
const MAX_PATCHES: [usize; 2] = [20_000, 6_000];

/// LOST or TokenCut.
enum AnyHead {
    Lost(Lost),
    TokenCut(TokenCut),
}

impl AnyHead {
    fn request(&self) -> dinoreg::heads::FeatureRequest {
        match self {
            AnyHead::Lost(h) => h.request(),
            AnyHead::TokenCut(h) => h.request(),
        }
    }

    /// Errors when a grid of `grid` patches is too large for the method.
    fn check_grid(&self, grid: (usize, usize)) -> anyhow::Result<()> {
        let (name, max) = match self {
            AnyHead::Lost(_) => ("LOST", MAX_PATCHES[0]),
            AnyHead::TokenCut(_) => ("TokenCut", MAX_PATCHES[1]),
        };
        let n = grid.0 * grid.1;
        if n > max {
            bail!(
                "{}x{} = {n} patches is more than {name} handles ({max}); shrink the image with --short-side",
                grid.0,
                grid.1
            );
        }
        Ok(())
    }

    fn discover(
        &self,
        features: &dinoreg::heads::FeatureMaps,
        image_size: (usize, usize),
    ) -> dinoreg::heads::Result<Vec<Discovery>> {
        match self {
            AnyHead::Lost(h) => h.discover(features, image_size),
            AnyHead::TokenCut(h) => h.discover(features, image_size),
        }
    }
}

/// One image's result, as written to the JSON output.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// The image file, or `pixels[i]`.
    pub image: String,
    /// The image's size `[H, W]`, in the pixels the box is given in.
    pub image_size: [usize; 2],
    /// The size `[H, W]` the model saw before padding (differs from `image_size` with --short-side).
    pub input_size: [usize; 2],
    /// The object, its box in image pixels.
    #[serde(flatten)]
    pub discovery: Discovery,
}

/// A backbone, a discovery head and how images are prepared for them.
pub struct Discoverer {
    model: Arc<Dinov2Model>,
    head: AnyHead,
    processor: ImageProcessor,
    dense: DenseOptions,
    patch: usize,
}

impl Discoverer {
    /// Loads the model named by `model` and builds the head of `method`.
    pub fn load(model: &ModelArgs, method: &MethodArgs) -> anyhow::Result<Self> {
        let source = ModelSource::resolve(model)?;
        let source_kind = match method.features {
            Features::Keys => FeatureSource::Keys,
            Features::Queries => FeatureSource::Queries,
            Features::Values => FeatureSource::Values,
            Features::Output => FeatureSource::Output,
        };
        let head = match method.method {
            Method::Lost => AnyHead::Lost(Lost::new(
                LostOptions::default()
                    .with_k_patches(method.k_patches)
                    .with_seed_expansion(!method.no_seed_expansion)
                    .with_gram_bias(method.gram_bias)
                    .with_source(source_kind),
            )?),
            Method::Tokencut => AnyHead::TokenCut(TokenCut::new(
                TokenCutOptions::default()
                    .with_tau(method.tau)
                    .with_source(source_kind),
            )?),
        };
        let patch = source.config.patch_size;
        let dense = DenseOptions::default()
            .with_short_side(method.short_side)
            .with_patch_size(patch as u32)
            .with_multiple(Multiple::Pad(PadAnchor::BottomRight));
        Ok(Self {
            model: source.model()?,
            head,
            processor: source.processor.clone(),
            dense,
            patch,
        })
    }

    /// The model's device.
    pub fn device(&self) -> &Device {
        self.model.device()
    }

    /// The object in each image of a pixel batch `(B, 3, H, W)` (padded here), boxes in its pixels.
    pub fn on_pixels(&self, pixels: &Tensor) -> anyhow::Result<Vec<Discovery>> {
        let (padded, size) = pad_to_patches(pixels, self.patch)?;
        let (_, _, h, w) = padded.dims4()?;
        self.head.check_grid((h / self.patch, w / self.patch))?;
        let features = self.model.features(&padded, &self.head.request())?;
        Ok(self.head.discover(&features, size)?)
    }

    /// The object in one RGB image named `name`, its box in the image's own pixels.
    pub fn on_rgb(&self, rgb: &RgbImage, name: String) -> anyhow::Result<Found> {
        let meta = self.dense.plan((rgb.height(), rgb.width()))?;
        let (gh, gw) = meta.grid();
        self.head.check_grid((gh as usize, gw as usize))?;
        let (array, meta) = self.processor.dense(rgb, &self.dense)?;
        let pixels = array_to_tensor(array.insert_axis(Axis(0)).into_dyn(), self.device())?;
        let features = self.model.features(&pixels, &self.head.request())?;
        let input = (meta.resized.0 as usize, meta.resized.1 as usize);
        let mut discovery = self
            .head
            .discover(&features, input)?
            .pop()
            .context("the head returned no result")?;
        let original = (meta.original.0 as usize, meta.original.1 as usize);
        if original != input {
            let sx = original.1 as f64 / input.1 as f64;
            let sy = original.0 as f64 / input.0 as f64;
            let scale = |v: usize, s: f64, max: usize| ((v as f64 * s).round() as usize).min(max);
            let [x1, y1, x2, y2] = discovery.bbox;
            discovery.bbox = [
                scale(x1, sx, original.1),
                scale(y1, sy, original.0),
                scale(x2, sx, original.1),
                scale(y2, sy, original.0),
            ];
        }
        Ok(Found {
            image: name,
            image_size: [original.0, original.1],
            input_size: [input.0, input.1],
            discovery,
        })
    }

    /// Decodes the image at `path` and finds its object.
    pub fn on_image(&self, path: &Path) -> anyhow::Result<(RgbImage, Found)> {
        let rgb = self.processor.read(path)?;
        let found = self.on_rgb(&rgb, path.display().to_string())?;
        Ok((rgb, found))
    }

    /// The patch size of the model.
    pub fn patch(&self) -> usize {
        self.patch
    }
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.output.extension().is_none_or(|e| e != "json") {
        bail!("--output {}: expected a .json file", args.output.display());
    }
    if let Some(d) = &args.draw {
        if d.extension().is_none_or(|e| e != "png") {
            bail!("--draw {}: expected a .png file", d.display());
        }
    }
    let discoverer = Discoverer::load(&args.model, &args.method)?;
    let mut found = Vec::new();
    let mut pictures = Vec::new();
    if let Some(path) = &args.input.pixels {
        let channels = 3;
        let pixels = read_pixels(path, channels)?.to_device(discoverer.device())?;
        let (_, _, h, w) = pixels.dims4()?;
        for (i, d) in discoverer.on_pixels(&pixels)?.into_iter().enumerate() {
            if args.draw.is_some() {
                pictures.push(pixels_to_rgb(&pixels.get(i)?)?);
            }
            found.push(Found {
                image: format!("pixels[{i}]"),
                image_size: [h, w],
                input_size: [h, w],
                discovery: d,
            });
        }
    } else {
        if args.input.images.is_empty() {
            bail!("no input: give --image FILE (or a folder) or --pixels FILE.npy");
        }
        for path in expand_images(&args.input.images)? {
            let (rgb, f) = discoverer
                .on_image(&path)
                .with_context(|| format!("{}", path.display()))?;
            found.push(f);
            if args.draw.is_some() {
                pictures.push(rgb);
            }
        }
    }
    for f in &found {
        let d = &f.discovery;
        println!(
            "{}: box {:?}, seed {:?}, {} patches",
            f.image, d.bbox, d.seed, d.mask_patches
        );
    }
    let json = json_lines(&found)?;
    write_atomic(&args.output, |tmp| Ok(std::fs::write(tmp, &json)?))?;
    if let Some(draw) = &args.draw {
        for (i, (f, mut rgb)) in found.iter().zip(pictures).enumerate() {
            let input = (f.input_size[0], f.input_size[1]);
            overlay(&mut rgb, &f.discovery, discoverer.patch(), input);
            let path = picture_path(draw, &f.image, i, found.len());
            write_atomic(&path, |tmp| {
                rgb.save_with_format(tmp, image::ImageFormat::Png)?;
                Ok(())
            })?;
        }
    }
    Ok(())
}

/// `items` as a JSON array with one compact object a line (masks stay readable).
pub fn json_lines<T: Serialize>(items: &[T]) -> anyhow::Result<String> {
    let rows = items
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!("[\n{}\n]", rows.join(",\n")))
}

/// The `--draw` file of image `i` of `n`: the path itself for one image, else `<stem>_<image>.png`.
fn picture_path(draw: &Path, image: &str, i: usize, n: usize) -> PathBuf {
    if n == 1 {
        return draw.to_path_buf();
    }
    let stem = draw
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("discover");
    let name = Path::new(image)
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.starts_with("pixels["))
        .map_or_else(|| i.to_string(), str::to_string);
    draw.with_file_name(format!("{stem}_{name}.png"))
}

/// A normalised pixel tensor `(3, H, W)` back to RGB with ImageNet's mean and std (clamped).
fn pixels_to_rgb(pixels: &Tensor) -> anyhow::Result<RgbImage> {
    let (c, h, w) = pixels.dims3()?;
    if c != 3 {
        bail!("--draw needs 3-channel pixels, got {c}");
    }
    let v = pixels
        .to_dtype(candle::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Ok(RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let px = |ch: usize| {
            let z = v[ch * h * w + y as usize * w + x as usize] as f64;
            ((z * IMAGENET_STD[ch] + IMAGENET_MEAN[ch]) * 255.0)
                .round()
                .clamp(0.0, 255.0) as u8
        };
        Rgb([px(0), px(1), px(2)])
    }))
}

/// Tints the object's patches and outlines the box (green) and the seed patch (yellow). The mask and
/// the seed lie on the grid of the model input, whose unpadded size is `input_size` `(H, W)`; the
/// picture may be larger or smaller (--short-side).
fn overlay(rgb: &mut RgbImage, found: &Discovery, patch: usize, input_size: (usize, usize)) {
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let [gh, gw] = found.grid;
    let (sy, sx) = (
        input_size.0 as f64 / h as f64,
        input_size.1 as f64 / w as f64,
    );
    let tint = [255.0, 40.0, 40.0];
    for (x, y, p) in rgb.enumerate_pixels_mut() {
        let c = ((x as f64 * sx) as usize / patch).min(gw - 1);
        let r = ((y as f64 * sy) as usize / patch).min(gh - 1);
        if found.mask[r * gw + c] {
            for (v, t) in p.0.iter_mut().zip(tint) {
                *v = (0.55 * f64::from(*v) + 0.45 * t).round() as u8;
            }
        }
    }
    let [x1, y1, x2, y2] = found.bbox;
    outline(rgb, (x1, y1, x2, y2), Rgb([40, 220, 40]));
    let [r, c] = found.seed;
    let to_x = |v: usize| ((v * patch) as f64 / sx).round() as usize;
    let to_y = |v: usize| ((v * patch) as f64 / sy).round() as usize;
    let seed_box = (to_x(c), to_y(r), to_x(c + 1).min(w), to_y(r + 1).min(h));
    outline(rgb, seed_box, Rgb([250, 220, 40]));
}

/// A 2-pixel outline of the box `(x1, y1, x2, y2)` (exclusive max).
fn outline(rgb: &mut RgbImage, (x1, y1, x2, y2): (usize, usize, usize, usize), colour: Rgb<u8>) {
    for t in 0..2 {
        let (w, h) = (x2.saturating_sub(x1 + 2 * t), y2.saturating_sub(y1 + 2 * t));
        if w > 0 && h > 0 {
            let rect = Rect::at((x1 + t) as i32, (y1 + t) as i32).of_size(w as u32, h as u32);
            draw_hollow_rect_mut(rgb, rect, colour);
        }
    }
}
