//! Unsupervised single-object discovery from a ViT's last-layer features, and its CorLoc evaluation.
//!
//! - [`Lost`]: valeoai/LOST (`object_discovery.py`: `lost`, `patch_scoring`, `detect_box`): the patch with
//!   the fewest positive correlations is the seed, expanded over the lowest-degree patches.
//! - [`TokenCut`]: YangtaoWANG95/TokenCut (`object_discovery.py`: `ncut`): a normalised cut of the
//!   thresholded cosine-similarity graph.
//! - [`corloc`] and [`dataset`]: LOST's CorLoc metric (yolov5 `bbox_iou`) over VOC or COCO ground truth.
//!
//! Both heads read one feature map `(B, C, h, w)` (the last block's attention keys by default, CLS and
//! register tokens removed) and return one [`Discovery`] per image: a box in input pixels, the seed patch,
//! and the object's patch mask. As in LOST, images are zero-padded bottom/right to a multiple of the patch
//! size ([`pad_to_patches`]) and the box is clipped to the unpadded image size.

pub mod components;
pub mod corloc;
#[cfg(feature = "datasets")]
pub mod dataset;
mod gram;
mod graph;
mod lanczos;
pub mod lost;
pub mod tokencut;

use candle::Tensor;
use serde::Serialize;

use crate::{Error, FeatureMaps, Result};

pub use components::{seed_component, Component, PatchBox};
pub use corloc::{iou, CorLoc, ImageResult};
#[cfg(feature = "datasets")]
pub use dataset::{list_coco, list_voc, CocoOptions, GtItem, ItemError, Listing, VocOptions};
pub use lost::{Lost, LostOptions};
pub use tokencut::{TokenCut, TokenCutOptions};

/// The object found in one image.
///
/// Serialises to JSON as `{"box": [x1, y1, x2, y2], "seed": [row, col], "mask_patches": n, ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Discovery {
    /// `[x1, y1, x2, y2]` in input pixels, exclusive max, clipped to the unpadded image.
    #[serde(rename = "box")]
    pub bbox: [usize; 4],
    /// The same box on the patch grid: `[col0, row0, col1, row1]`, exclusive max, not clipped.
    pub box_patches: [usize; 4],
    /// The seed patch `[row, col]`.
    pub seed: [usize; 2],
    /// The patch grid `[h, w]` the mask lies on.
    pub grid: [usize; 2],
    /// The object's patches, row-major over the grid (`h * w` entries): the 4-connected component that
    /// holds the seed.
    pub mask: Vec<bool>,
    /// How many patches the mask holds.
    pub mask_patches: usize,
    /// TokenCut only: the second-smallest generalised eigenvector `(h * w)`, row-major, signed so that the
    /// object lies above its mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eigenvector: Option<Vec<f32>>,
}

impl Discovery {
    /// Builds the result from the seed's component; `patch` and `image_size` `(H, W)` turn the patch box
    /// into pixels.
    pub(crate) fn new(
        component: Component,
        seed: usize,
        grid: (usize, usize),
        patch: usize,
        image_size: (usize, usize),
    ) -> Self {
        let b = component.bounds;
        Self {
            bbox: b.to_pixels(patch, image_size),
            box_patches: [b.col0, b.row0, b.col1, b.row1],
            seed: [seed / grid.1, seed % grid.1],
            grid: [grid.0, grid.1],
            mask_patches: component.size,
            mask: component.mask,
            eigenvector: None,
        }
    }
}

/// Zero-pads pixels `(B, C, H, W)` at the bottom and right to multiples of `patch`, as LOST and TokenCut
/// do (in normalised space). Returns the padded tensor and the original `(H, W)`, which the heads'
/// `discover` methods take to clip boxes.
pub fn pad_to_patches(pixels: &Tensor, patch: usize) -> Result<(Tensor, (usize, usize))> {
    if patch == 0 {
        return Err(Error::option("patch size", "must be at least 1"));
    }
    let (_, _, h, w) = pixels.dims4()?;
    let pad_h = h.div_ceil(patch) * patch - h;
    let pad_w = w.div_ceil(patch) * patch - w;
    let padded = pixels
        .pad_with_zeros(2, 0, pad_h)?
        .pad_with_zeros(3, 0, pad_w)?;
    Ok((padded, (h, w)))
}

/// The one feature map a discovery head reads, checked against the image size it must clip to.
/// Returns the map `(B, C, h, w)` and its grid.
pub(crate) fn single_map<'a>(
    features: &'a FeatureMaps,
    image_size: (usize, usize),
    head: &str,
) -> Result<(&'a Tensor, (usize, usize))> {
    let [map] = features.maps.as_slice() else {
        return Err(Error::input(
            "feature maps",
            format!("{head} reads exactly one map, got {}", features.maps.len()),
        ));
    };
    let (_, _, h, w) = map.dims4()?;
    let p = features.patch_size;
    let (ih, iw) = image_size;
    if p == 0 || h == 0 || w == 0 {
        return Err(Error::input(
            "feature maps",
            format!("{head} needs a non-empty grid and a patch size >= 1, got {h}x{w} patches of {p} px"),
        ));
    }
    if ih == 0 || iw == 0 || ih > h * p || iw > w * p {
        return Err(Error::input(
            "image size",
            format!("{ih}x{iw} must be non-empty and fit the {h}x{w} grid of {p} px patches"),
        ));
    }
    Ok((map, (h, w)))
}
