//! `dinoreg depth`: depth maps from a Depth-Anything model (`depth-anything/Depth-Anything-V2-*-hf`,
//! or an original `depth_anything_v2_vit*.pth` given as `--head`, whose fine-tuned backbone is used)
//! or from one of dinov2's depth heads (`dinov2_vit*14_{nyu,kitti}_{linear,linear4,dpt}_head.pth` as
//! `--head` on a DINOv2 `--model`).
//!
//! Images: Depth-Anything's preprocessing (aspect kept, both sides at least `--input-size`, multiples
//! of the patch size, bicubic, ImageNet normalisation), the output resized back with
//! `align_corners=True`; dinov2's heads see the image at its own size, center-padded to a multiple of
//! the patch size (`CenterPadding`), the output resized back with `align_corners=False`. `--pixels`
//! are used as they are (padded for dinov2's heads). Outputs: `.npy` raw depth `(B, H, W)` at the
//! input size; `.png` a colour-mapped picture (inferno, near is bright), `--png16` 16-bit grayscale.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use candle::Tensor;
use dinoreg::heads::depth::{
    depth_anything_input_size, AnyDepthHead, DepthAnythingConfig, DepthAnythingHead, DepthHead,
    DepthKind, DepthRange, Dinov2DepthOptions, Dinov2DptDepthHead, Dinov2LinearDepthHead,
    OriginalDepthAnythingOptions,
};
use dinoreg::heads::{Head, TensorStore};
use dinoreg::io::npy::{array_to_tensor, read_pixels};
use dinoreg::model::weights::open_backbone;
use dinoreg::preprocess::{
    resize_rgb8, DenseOptions, ImageProcessor, ProcessorConfig, Resample, IMAGENET_MEAN,
    IMAGENET_STD,
};
use dinoreg::Dinov2Model;
use dinoreg::Vit;
use ndarray::Axis;

use dinoreg::viz::colormap::Colormap;

use super::common::{
    expand_images, per_input_paths, write_atomic, write_npy, InputArgs, ModelArgs, ModelSource,
};

/// Arguments of `dinoreg depth`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    input: InputArgs,
    /// A head checkpoint: one of dinov2's depth heads (.pth, mmcv layout), or a Depth-Anything-V2 .pth
    /// (its fine-tuned backbone is used too). Default: the model's own head (a Depth-Anything model).
    #[arg(long)]
    head: Option<PathBuf>,
    /// `.npy`: raw depth (B, H, W); `.png`: a colour-mapped picture (several images: one file each,
    /// named <stem>_<image>.png).
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Write `.png` as 16-bit grayscale (min-max normalised, near is bright) instead of colours.
    #[arg(long)]
    png16: bool,
    /// Depth-Anything: the lower bound of both sides of the model input, in pixels.
    #[arg(long, default_value_t = 518)]
    input_size: usize,
    /// dinov2 heads: top of the depth range (default 10 m, 80 m when the file name says kitti).
    /// Depth-Anything-V2 .pth: the head is metric, scaled to this (20 indoor, 80 outdoor).
    /// Depth-Anything model: replaces the config's max_depth.
    #[arg(long)]
    max_depth: Option<f64>,
    /// dinov2 heads: bottom of the depth range (default 0.001 m).
    #[arg(long)]
    min_depth: Option<f64>,
    /// The backbone blocks (0-based, comma-separated) that feed a .pth head, when its width has no
    /// published table.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    layers: Option<Vec<i64>>,
}

/// A backbone, a head and how images are prepared for them.
struct Depther {
    model: Arc<Dinov2Model>,
    head: AnyDepthHead,
    /// Depth-Anything's resizing (`Some(lower bound)`) or dinov2's center padding (`None`).
    lower_bound: Option<usize>,
    patch: usize,
}

/// One depth map `(H, W)` and the name of its input.
struct Prediction {
    name: String,
    depth: Tensor,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let format = OutputFormat::of(&args.output, args.png16)?;
    let source = ModelSource::resolve(&args.model)?;
    let depther = load(&args, &source)?;
    let predictions = match &args.input.pixels {
        Some(path) => {
            let pixels =
                read_pixels(path, source.config.num_channels)?.to_device(&source.load.device)?;
            depther.predict_pixels(&pixels)?
        }
        None => {
            if args.input.images.is_empty() {
                bail!("no input: give --image FILE (or a folder) or --pixels FILE.npy");
            }
            let paths = expand_images(&args.input.images)?;
            let mut out = Vec::with_capacity(paths.len());
            for path in &paths {
                out.push(depther.predict_image(&source.processor, path)?);
            }
            out
        }
    };
    for p in &predictions {
        let (h, w) = p.depth.dims2()?;
        let (lo, hi) = min_max(&p.depth)?;
        println!("{}: {h}x{w}, depth {lo:.4} .. {hi:.4}", p.name);
    }
    format.write(&args.output, &predictions, depther.head.kind())?;
    Ok(())
}

fn load(args: &Args, source: &ModelSource) -> anyhow::Result<Depther> {
    let device = &source.load.device;
    let patch = source.config.patch_size;
    let width = source.config.hidden_size;
    let da = Some(args.input_size);
    // A bare Depth-Anything-V2 .pth given as --model carries its own head.
    let own_head = source
        .config_inferred
        .then(|| source.files.weights[0].clone());
    let Some(path) = args.head.as_ref().or(own_head.as_ref()) else {
        if args.min_depth.is_some() {
            bail!("--min-depth applies to dinov2's heads (--head FILE) only");
        }
        let mut config = DepthAnythingConfig::from_file(&source.files.config).context(
            "the model has no depth head (not a Depth-Anything config.json); give --head FILE with a dinov2 or Depth-Anything-V2 head",
        )?;
        if let Some(m) = args.max_depth {
            config.max_depth = m;
        }
        let weights = open_backbone(&source.files.weights)?;
        let head = DepthAnythingHead::load(&weights.store, &config, device)?;
        let model = Arc::new(Dinov2Model::from_weights(
            source.config.clone(),
            &weights,
            &source.load,
        )?);
        return Ok(Depther {
            model,
            head: head.into(),
            lower_bound: da,
            patch,
        });
    };
    let store = TensorStore::open(path)?;
    if store.contains("depth_head.projects.0.weight") {
        if args.min_depth.is_some() {
            bail!(
                "--min-depth applies to dinov2's heads only; {} is a Depth-Anything-V2 head",
                path.display()
            );
        }
        let mut options = match args.max_depth {
            Some(m) => OriginalDepthAnythingOptions::metric(m),
            None => OriginalDepthAnythingOptions::default(),
        }
        .with_patch_size(patch);
        if let Some(layers) = &args.layers {
            options = options.with_blocks(layers.clone());
        }
        let head = DepthAnythingHead::from_original_store(&store, &options, device)?;
        let head_width = head.config().reassemble_hidden_size;
        if head_width != width {
            bail!(
                "{} is a head for a backbone of width {head_width}, but the model {} has width {width}",
                path.display(),
                args.model.model
            );
        }
        // The file's own, fine-tuned backbone (`pretrained.*`), not the model's original weights.
        let own = store.names().iter().any(|n| n.starts_with("pretrained."));
        let weights = match own {
            true => open_backbone(std::slice::from_ref(path))?,
            false => open_backbone(&source.files.weights)?,
        };
        let model = Arc::new(Dinov2Model::from_weights(
            source.config.clone(),
            &weights,
            &source.load,
        )?);
        return Ok(Depther {
            model,
            head: head.into(),
            lower_bound: da,
            patch,
        });
    }
    let kitti = path
        .to_string_lossy()
        .to_ascii_lowercase()
        .contains("kitti");
    let default = if kitti {
        DepthRange::KITTI
    } else {
        DepthRange::NYU
    };
    let range = DepthRange::new(
        args.min_depth.unwrap_or(default.min),
        args.max_depth.unwrap_or(default.max),
    )?;
    let options = Dinov2DepthOptions {
        blocks: args.layers.clone(),
        range,
    };
    let has = |name: &str| store.contains(name) || store.contains(&format!("decode_head.{name}"));
    let head: AnyDepthHead = if has("reassemble_blocks.projects.0.conv.weight") {
        Dinov2DptDepthHead::load(&store, width, &options, device)?.into()
    } else if has("conv_depth.weight") {
        Dinov2LinearDepthHead::load(&store, width, &options, device)?.into()
    } else {
        bail!(
            "{} is not a depth head: expected dinov2's (decode_head.conv_depth.*, decode_head.reassemble_blocks.*) or Depth-Anything-V2's (depth_head.*)",
            path.display()
        );
    };
    let model = source.model()?;
    Ok(Depther {
        model,
        head,
        lower_bound: None,
        patch,
    })
}

impl Depther {
    /// Depth `(B, h', w')` of pixels the backbone can take.
    fn forward(&self, pixels: &Tensor) -> anyhow::Result<Tensor> {
        let features = self.model.features(pixels, &self.head.request())?;
        Ok(self.head.forward(&features)?)
    }

    /// Pixels as given (`(B, 3, H, W)`), center-padded for dinov2's heads; depth at `(H, W)`.
    fn predict_pixels(&self, pixels: &Tensor) -> anyhow::Result<Vec<Prediction>> {
        let (b, _, h, w) = pixels.dims4()?;
        let input = match self.lower_bound {
            Some(_) => pixels.clone(),
            None => dinoreg::heads::ops::center_pad(pixels, self.patch)?,
        };
        let depth = self.head.resize_output(&self.forward(&input)?, (h, w))?;
        (0..b)
            .map(|i| {
                Ok(Prediction {
                    name: format!("pixels[{i}]"),
                    depth: depth.get(i)?,
                })
            })
            .collect()
    }

    /// One image, prepared for the head; depth at the image's size.
    fn predict_image(&self, reader: &ImageProcessor, path: &Path) -> anyhow::Result<Prediction> {
        let image = reader.read(path)?;
        let (h, w) = (image.height() as usize, image.width() as usize);
        let normalise = ImageProcessor::new(
            ProcessorConfig::default()
                .with_resize(false)
                .with_center_crop(false)
                .with_mean_std(IMAGENET_MEAN, IMAGENET_STD),
        );
        let array = match self.lower_bound {
            Some(bound) => {
                let (th, tw) = depth_anything_input_size((h, w), bound, self.patch)?;
                let resized = resize_rgb8(&image, tw as u32, th as u32, Resample::Bicubic)?;
                normalise.to_pixels(&resized)
            }
            None => {
                let options = DenseOptions::default().with_patch_size(self.patch as u32);
                normalise.dense(&image, &options)?.0
            }
        };
        let pixels = array_to_tensor(array.insert_axis(Axis(0)).into_dyn(), self.model.device())?;
        let depth = self.head.resize_output(&self.forward(&pixels)?, (h, w))?;
        Ok(Prediction {
            name: path.display().to_string(),
            depth: depth.get(0)?,
        })
    }
}

/// Zero-pads `(B, C, H, W)` to multiples of `patch`, split evenly (extra row/column at the end), as
/// dinov2's `CenterPadding` does.
fn min_max(depth: &Tensor) -> anyhow::Result<(f32, f32)> {
    let flat = depth.flatten_all()?;
    Ok((
        flat.min(0)?.to_scalar::<f32>()?,
        flat.max(0)?.to_scalar::<f32>()?,
    ))
}

/// What `--output` asks for.
enum OutputFormat {
    Npy,
    Png { sixteen_bit: bool },
}

impl OutputFormat {
    fn of(path: &Path, png16: bool) -> anyhow::Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match (ext.as_deref(), png16) {
            (Some("npy"), false) => Ok(OutputFormat::Npy),
            (Some("npy"), true) => bail!("--png16 needs a .png --output, got {}", path.display()),
            (Some("png"), sixteen_bit) => Ok(OutputFormat::Png { sixteen_bit }),
            _ => bail!(
                "invalid --output {}: expected a .npy or .png file",
                path.display()
            ),
        }
    }

    fn write(
        &self,
        path: &Path,
        predictions: &[Prediction],
        kind: DepthKind,
    ) -> anyhow::Result<()> {
        match self {
            OutputFormat::Npy => {
                let first = predictions[0].depth.dims();
                if let Some(p) = predictions.iter().find(|p| p.depth.dims() != first) {
                    bail!(
                        "{} and {} have different sizes ({:?}, {:?}): write .png files, or run them separately",
                        predictions[0].name,
                        p.name,
                        first,
                        p.depth.dims()
                    );
                }
                let maps: Vec<&Tensor> = predictions.iter().map(|p| &p.depth).collect();
                write_npy(path, &Tensor::stack(&maps, 0)?)?;
                println!("wrote {}", path.display());
            }
            OutputFormat::Png { sixteen_bit } => {
                for (target, p) in
                    per_input_paths(path, predictions.iter().map(|p| p.name.as_str()))
                        .iter()
                        .zip(predictions)
                {
                    let near_is_high = kind == DepthKind::Relative;
                    write_png(target, &p.depth, near_is_high, *sixteen_bit)?;
                    println!("wrote {}", target.display());
                }
            }
        }
        Ok(())
    }
}

/// Writes `depth` `(H, W)` as an image, min-max normalised so that near is bright: colours through
/// the inferno map, or 16-bit grayscale.
fn write_png(
    path: &Path,
    depth: &Tensor,
    near_is_high: bool,
    sixteen_bit: bool,
) -> anyhow::Result<()> {
    let (h, w) = depth.dims2()?;
    let values = depth.flatten_all()?.to_vec1::<f32>()?;
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let unit = values.iter().map(|&v| {
        let t = ((v - lo) / span).clamp(0.0, 1.0);
        if near_is_high {
            t
        } else {
            1.0 - t
        }
    });
    let (w32, h32) = (w as u32, h as u32);
    write_atomic(path, |tmp| {
        if sixteen_bit {
            let raw: Vec<u16> = unit.map(|t| (t * 65535.0).round() as u16).collect();
            let image = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(w32, h32, raw)
                .context("depth buffer size")?;
            image.save_with_format(tmp, image::ImageFormat::Png)?;
        } else {
            let raw: Vec<u8> = unit.flat_map(|t| Colormap::Inferno.color(t)).collect();
            let image = image::RgbImage::from_raw(w32, h32, raw).context("depth buffer size")?;
            image.save_with_format(tmp, image::ImageFormat::Png)?;
        }
        Ok(())
    })
}
