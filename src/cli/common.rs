//! What the subcommands share: the `--model` argument (local folder or Hub id) and the device, the
//! `--image` / `--pixels` inputs (images decoded and preprocessed in parallel, folders expanded),
//! and writing outputs atomically (temporary file, then rename) so a failure loses nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use candle::{Device, Tensor};
use dinoreg::io::hub::{resolve_model, ModelFiles};
use dinoreg::model::weights::open_backbone;
use dinoreg::preprocess::ImageProcessor;
use dinoreg::{Dinov2Config, Dinov2Model, LoadOptions};

/// `--model` and `--device`.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// A local model folder (config.json + weights), a Hub id such as
    /// facebook/dinov2-with-registers-small (downloaded once into the Hugging Face cache), or a bare
    /// original .pth checkpoint (config inferred from its tensors).
    #[arg(long, short = 'm')]
    pub model: String,
    /// Device: `cpu`, `cuda` or `cuda:N` (default: CUDA when built with it and available, else CPU).
    #[arg(long)]
    pub device: Option<String>,
}

/// `--image` / `--pixels`.
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    /// Image files or folders of images (PNG, JPEG, WebP, TIFF, BMP, GIF). Repeatable.
    #[arg(long = "image", short = 'i', num_args = 1.., conflicts_with = "pixels")]
    pub images: Vec<PathBuf>,
    /// A float32/float64 .npy array (B, 3, H, W), already normalised, used as it is.
    #[arg(long)]
    pub pixels: Option<PathBuf>,
}

impl ModelArgs {
    /// The load options `--device` asks for.
    pub fn load_options(&self) -> anyhow::Result<LoadOptions> {
        Ok(LoadOptions::default().with_device_name(self.device.as_deref())?)
    }
}

impl InputArgs {
    /// The `--pixels` tensor on `model`'s device, checked against its channels (`None` without
    /// `--pixels`).
    pub fn pixels_for(&self, model: &dyn dinoreg::Vit) -> anyhow::Result<Option<Tensor>> {
        let Some(path) = &self.pixels else {
            return Ok(None);
        };
        let pixels = dinoreg::io::npy::read_pixels(path, model.info().num_channels)?;
        Ok(Some(pixels.to_device(model.device())?))
    }

    /// The `--image` files, folders expanded; an error when none was given.
    pub fn image_paths(&self) -> anyhow::Result<Vec<PathBuf>> {
        if self.images.is_empty() {
            bail!("no input: give --image FILE (or a folder) or --pixels FILE.npy");
        }
        Ok(dinoreg::pipelines::expand_images(&self.images)?)
    }
}

/// The device named by `--device`.
pub fn device(arg: Option<&str>) -> anyhow::Result<Device> {
    match arg {
        None => Ok(Device::cuda_if_available(0).unwrap_or(Device::Cpu)),
        Some("cpu") => Ok(Device::Cpu),
        Some(s) if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal = s
                .strip_prefix("cuda:")
                .map(|n| n.parse::<usize>())
                .transpose()
                .with_context(|| format!("invalid --device {s:?}: expected cuda:N"))?
                .unwrap_or(0);
            Device::new_cuda(ordinal).with_context(|| {
                format!("--device {s}: CUDA is not available (build with --features cuda on a machine with a GPU)")
            })
        }
        Some(other) => bail!("invalid --device {other:?}: expected cpu, cuda or cuda:N"),
    }
}

/// A resolved model: its files, config, preprocessing and load options.
pub struct ModelSource {
    /// The files.
    pub files: ModelFiles,
    /// The parsed config.
    pub config: Dinov2Config,
    /// The image processor (the model's `preprocessor_config.json`, else the checkpoints' values).
    pub processor: ImageProcessor,
    /// Device and dtype.
    pub load: LoadOptions,
}

impl ModelSource {
    /// Resolves `--model` (downloading it when it is a Hub id not yet cached).
    pub fn resolve(args: &ModelArgs) -> anyhow::Result<Self> {
        let load = LoadOptions::default().with_device(device(args.device.as_deref())?);
        let path = Path::new(&args.model);
        if path.is_file() {
            // A bare checkpoint (an original facebookresearch or Depth-Anything-V2 .pth): the config
            // comes from its tensor shapes.
            let weights = open_backbone(&[path.to_path_buf()])?;
            let config = dinoreg::model::weights::infer_config(&weights)?;
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            return Ok(Self {
                files: ModelFiles {
                    dir,
                    config: path.to_path_buf(),
                    weights: vec![path.to_path_buf()],
                    preprocessor: None,
                },
                config,
                processor: ImageProcessor::default(),
                load,
            });
        }
        let files = resolve_model(&args.model)?;
        let config = Dinov2Config::from_file(&files.config)?;
        let processor = match &files.preprocessor {
            Some(p) => ImageProcessor::from_file(p)?,
            None => ImageProcessor::default(),
        };
        Ok(Self {
            files,
            config,
            processor,
            load,
        })
    }

    /// Loads the backbone model.
    pub fn model(&self) -> anyhow::Result<Arc<Dinov2Model>> {
        let weights = open_backbone(&self.files.weights)?;
        Ok(Arc::new(Dinov2Model::from_weights(
            self.config.clone(),
            &weights,
            &self.load,
        )?))
    }
}

/// File extensions read as images when a folder is given.
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp", "gif"];

/// Whether `path` has an image extension.
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Expands folders (recursively, sorted) into image files; files are kept as given.
pub fn expand_images(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read folder {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if is_image(&p) {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    if out.is_empty() {
        bail!("no image found in {paths:?}");
    }
    Ok(out)
}

/// Writes through a temporary file renamed over `path`, so `path` is either the old or the new file.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut failure = None;
    let result = dinoreg::io::output::write_with(path, |tmp| {
        write(tmp).map_err(|e| {
            let msg = format!("{e:#}");
            failure = Some(e);
            dinoreg::Error::io(path, std::io::Error::other(msg))
        })
    });
    match (result, failure) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(e)) => Err(e.context(format!("cannot write {}", path.display()))),
        (Err(e), None) => Err(e.into()),
    }
}

/// Writes a tensor as a float32 `.npy`, atomically.
pub fn write_npy(path: &Path, tensor: &Tensor) -> anyhow::Result<()> {
    Ok(dinoreg::io::npy::write_tensor(path, tensor)?)
}
