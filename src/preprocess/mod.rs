//! Image preprocessing as HF `BitImageProcessor` (PIL backend) does it for DINOv2 with registers and
//! as `DINOv3ViTImageProcessor` (torchvision backend) does it for DINOv3, plus a dense mode for dense
//! tasks.
//!
//! - [`resample`]: Pillow's integer-exact `Image.resize` (bicubic and the other PIL filters);
//! - [`interpolate`]: PyTorch's antialiased bilinear / bicubic resize of f32 planes;
//! - `dinov3`: `DINOv3ViTImageProcessor`'s steps (rescale, float resize, crop, normalise);
//! - [`config`]: `preprocessor_config.json` as [`ProcessorConfig`] (default = the checkpoints' file);
//! - [`processor`]: [`ImageProcessor`], file or image -> (3, 224, 224) f32, batches -> (B, 3, H, W);
//! - [`dense`]: aspect-ratio-keeping inputs whose sides are multiples of the patch size, with
//!   [`DenseMeta`] to map outputs back to the image;
//! - `inverse`: normalised pixels back to RGB pictures ([`ImageProcessor::to_rgb_images`]).
//!
//! Decoding and RGB conversion live in [`crate::io::image`].

pub mod config;
pub mod dense;
mod dinov3;
pub mod interpolate;
mod inverse;
pub mod processor;
pub mod resample;

pub use config::{ProcessorConfig, ProcessorKind, Size, IMAGENET_MEAN, IMAGENET_STD};
pub use dense::{DenseMeta, DenseOptions, Multiple, PadAnchor, Padding};
pub use processor::{ImageProcessor, PREPROCESSOR_CONFIG};
pub use resample::{resize_rgb8, resize_window_rgb8, Resample, Window};
