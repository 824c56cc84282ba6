//! What the subcommands share: the `--model` argument (local folder or Hub id) and the device, the
//! `--image` / `--pixels` inputs (images decoded and preprocessed in parallel, folders expanded),
//! and writing outputs atomically (temporary file, then rename) so a failure loses nothing.

use std::path::{Path, PathBuf};

use anyhow::bail;
use candle::Tensor;
use dinoreg::LoadOptions;

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

    /// The `--image` files, folders expanded; an error when none was given. (A 16-bit gray PNG is
    /// warned about when the pipeline decodes it, through its progress.)
    pub fn image_paths(&self) -> anyhow::Result<Vec<PathBuf>> {
        if self.images.is_empty() {
            bail!("no input: give --image FILE (or a folder) or --pixels FILE.npy");
        }
        Ok(dinoreg::pipelines::expand_images(&self.images)?)
    }
}

/// Writes a tensor as a float32 `.npy`, atomically.
pub fn write_npy(path: &Path, tensor: &Tensor) -> anyhow::Result<()> {
    Ok(dinoreg::io::npy::write_tensor(path, tensor)?)
}
