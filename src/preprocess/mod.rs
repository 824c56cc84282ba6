//! Image preprocessing as HF `BitImageProcessor` (PIL backend) does it for DINOv2 with registers, plus a
//! dense mode for dense tasks.
//!
//! - [`resample`]: Pillow's integer-exact `Image.resize` (bicubic and the other PIL filters);
//! - [`config`]: `preprocessor_config.json` as [`ProcessorConfig`] (default = the checkpoints' file);
//! - [`processor`]: [`ImageProcessor`], file or image -> (3, 224, 224) f32, batches -> (B, 3, H, W);
//! - [`dense`]: aspect-ratio-keeping inputs whose sides are multiples of the patch size, with
//!   [`DenseMeta`] to map outputs back to the image.
//!
//! Decoding and RGB conversion live in [`crate::io::image`].

pub mod config;
pub mod dense;
pub mod processor;
pub mod resample;

pub use config::{ProcessorConfig, Size, IMAGENET_MEAN, IMAGENET_STD};
pub use dense::{DenseMeta, DenseOptions, Multiple, PadAnchor, Padding};
pub use processor::{ImageProcessor, PREPROCESSOR_CONFIG};
pub use resample::{resize_rgb8, resize_window_rgb8, Resample, Window};
