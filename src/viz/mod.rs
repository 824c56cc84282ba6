//! Feature pictures: the DINOv2 PCA picture of patch features and the registers paper's attention and
//! token-norm maps, drawn at the image's size over dense inputs (aspect kept, sides multiples of the
//! patch size).
//!
//! - [`pca`]: the first three principal components of the patch features as RGB (joint over several
//!   images, optional foreground thresholding on the first component);
//! - [`attention`]: the last layer's CLS (and register) attention per head, the norms of the output
//!   patch tokens and the share of high-norm artifact tokens;
//! - `discovery` (feature `draw`): a discovered object's patches, box and seed over its image;
//! - [`colorbar`]: robust value ranges and colour bars with values;
//! - [`heatmap`]: resampling patch maps onto the image, a viridis colour map, blending;
//! - [`render`]: from image files to those pictures.

pub mod attention;
pub mod colorbar;
pub mod colormap;
#[cfg(feature = "draw")]
pub mod discovery;
pub mod heatmap;
pub mod pca;
pub mod render;

pub use attention::{
    attention_maps, AttentionMaps, AttentionOptions, AttentionSummary, NormMap, NormSource,
    DEFAULT_NORM_THRESHOLD,
};
#[cfg(feature = "draw")]
pub use discovery::draw_discovery;
pub use heatmap::Interpolation;
pub use pca::{pca_rgb, Foreground, ForegroundSide, PcaMap, PcaOptions};
pub use render::{
    attention_pictures, pca_pictures, picture_files, picture_options, AttentionPictures,
    AttentionSaveOptions, DenseImage, PICTURE_SHORT_SIDE,
};
