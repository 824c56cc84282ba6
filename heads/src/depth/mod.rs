//! Monocular depth heads on ViT feature maps:
//!
//! - [`DepthAnythingHead`]: Depth-Anything(-V2)'s DPT neck and head, as HF
//!   `DepthAnythingForDepthEstimation` computes it; loads the published `-hf` checkpoints
//!   ([`DepthAnythingConfig`] + `neck.*`/`head.*`) and the original `.pth` layout
//!   ([`DepthAnythingHead::load_original`]). Works on registers backbones too: the maps it receives
//!   never hold CLS or register tokens.
//! - [`Dinov2LinearDepthHead`] and [`Dinov2DptDepthHead`]: dinov2's own depth heads from the
//!   published `.pth` files (mmcv layout, `decode_head.*`).
//!
//! Every head implements [`Head`](crate::Head) with depth `(B, h', w')` as output, and [`DepthHead`] to resize it
//! to the image by its model's convention.

mod any;
mod blocks;
mod config;
mod dinov2_dpt;
mod dinov2_linear;
mod dpt;
mod input_size;
mod keys;
mod options;
mod output;

pub use any::AnyDepthHead;
pub use config::{DepthAnythingConfig, DepthKind};
pub use dinov2_dpt::Dinov2DptDepthHead;
pub use dinov2_linear::Dinov2LinearDepthHead;
pub use dpt::DepthAnythingHead;
pub use input_size::{depth_anything_input_size, MAX_INPUT_PIXELS};
pub use keys::{original_to_hf, OriginalDepthAnythingOptions};
pub use options::{dinov2_four_layers, DepthRange, Dinov2DepthOptions};
pub use output::{resize_depth, DepthHead};

use candle::Tensor;

use crate::{Error, FeatureMaps, Result, TensorStore};

/// Axis `axis` of the stored tensor `name`, for sizes read from a checkpoint.
pub(crate) fn stored_dim(store: &TensorStore, name: &str, axis: usize) -> Result<usize> {
    let shape = store.shape(name).ok_or_else(|| Error::MissingTensor {
        source_name: store.source_name().to_string(),
        name: name.to_string(),
        expected: None,
    })?;
    shape.get(axis).copied().ok_or_else(|| {
        Error::input(
            format!("{}: tensor `{name}`", store.source_name()),
            format!("shape {shape:?} has no axis {axis}"),
        )
    })
}

/// `"decode_head."` when the mmcv prefix is on `probe` in `store` (the published files), else `""`.
pub(crate) fn decode_head_prefix(store: &TensorStore, probe: &str) -> String {
    match store.contains(&format!("decode_head.{probe}")) {
        true => "decode_head.".into(),
        false => String::new(),
    }
}

/// Checks the maps and CLS tokens a dinov2 depth head receives: `n` maps `(B, E, h, w)` on one
/// grid, `n` CLS tokens `(B, E)`. Returns the CLS tokens.
pub(crate) fn check_dinov2_inputs<'a>(
    features: &'a FeatureMaps,
    n: usize,
    embed_dim: usize,
    head: &str,
) -> Result<&'a [Tensor]> {
    if features.maps.len() != n {
        return Err(Error::input(
            "feature maps",
            format!("the {head} needs {n} maps, got {}", features.maps.len()),
        ));
    }
    let cls = features.require_cls(head)?;
    if cls.len() != n {
        return Err(Error::input(
            "feature maps",
            format!("the {head} needs {n} CLS tokens, got {}", cls.len()),
        ));
    }
    let (b, _, h, w) = features.maps[0].dims4()?;
    for (i, (map, token)) in features.maps.iter().zip(cls).enumerate() {
        let dims = map.dims4()?;
        if dims != (b, embed_dim, h, w) {
            return Err(Error::input(
                format!("feature map {i}"),
                format!(
                    "shape {:?}, expected ({b}, {embed_dim}, {h}, {w})",
                    map.dims()
                ),
            ));
        }
        if token.dims() != [b, embed_dim] {
            return Err(Error::input(
                format!("CLS token {i}"),
                format!("shape {:?}, expected ({b}, {embed_dim})", token.dims()),
            ));
        }
    }
    Ok(cls)
}
