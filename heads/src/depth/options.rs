//! Options shared by dinov2's depth heads (`dinov2/hub/depthers.py`): the metric depth range and
//! which backbone blocks feed the head, with the published four-block table that Depth-Anything-V2
//! (`intermediate_layer_idx`) uses too.

use crate::{Error, Result};

/// A metric depth range in metres: bins and clamping of dinov2's heads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DepthRange {
    /// The smallest depth (dinov2's `min_depth`).
    pub min: f64,
    /// The largest depth (dinov2's `max_depth`).
    pub max: f64,
}

impl DepthRange {
    /// NYU Depth v2, as `dinov2/hub/depthers.py` sets it: 0.001 to 10 m.
    pub const NYU: DepthRange = DepthRange {
        min: 0.001,
        max: 10.0,
    };

    /// KITTI, as `dinov2/hub/depthers.py` sets it: 0.001 to 80 m.
    pub const KITTI: DepthRange = DepthRange {
        min: 0.001,
        max: 80.0,
    };

    /// A range `[min, max]`; both finite and `min < max`.
    pub fn new(min: f64, max: f64) -> Result<Self> {
        let range = DepthRange { min, max };
        range.validate()?;
        Ok(range)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.min.is_finite() && self.max.is_finite() && self.min < self.max) {
            return Err(Error::option(
                "depth range",
                format!(
                    "min {} and max {} must be finite with min < max",
                    self.min, self.max
                ),
            ));
        }
        Ok(())
    }
}

impl Default for DepthRange {
    /// [`DepthRange::NYU`].
    fn default() -> Self {
        DepthRange::NYU
    }
}

/// How one of dinov2's depth heads is built on top of a checkpoint.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dinov2DepthOptions {
    /// 0-based block indices that feed the head, one per head input. `None`: the published choice,
    /// that is the last block for a one-layer linear head and [`dinov2_four_layers`] otherwise.
    pub blocks: Option<Vec<i64>>,
    /// Depth range of the bins (linear head) and of the clamp (both heads). Default: NYU.
    pub range: DepthRange,
}

impl Dinov2DepthOptions {
    /// Sets the blocks that feed the head.
    pub fn with_blocks(mut self, blocks: impl Into<Vec<i64>>) -> Self {
        self.blocks = Some(blocks.into());
        self
    }

    /// Sets the depth range.
    pub fn with_range(mut self, range: DepthRange) -> Self {
        self.range = range;
        self
    }
}

/// The four blocks (0-based) that dinov2's depth heads and Depth-Anything-V2 read, by the backbone's
/// width: ViT-S (384) and ViT-B (768) `[2, 5, 8, 11]`, ViT-L (1024) `[4, 11, 17, 23]`, ViT-g (1536)
/// `[9, 19, 29, 39]`; `None` for any other width.
///
/// ```
/// use dinoreg_heads::depth::dinov2_four_layers;
/// assert_eq!(dinov2_four_layers(1024), Some(vec![4, 11, 17, 23]));
/// assert_eq!(dinov2_four_layers(32), None);
/// ```
pub fn dinov2_four_layers(embed_dim: usize) -> Option<Vec<i64>> {
    match embed_dim {
        384 | 768 => Some(vec![2, 5, 8, 11]),
        1024 => Some(vec![4, 11, 17, 23]),
        1536 => Some(vec![9, 19, 29, 39]),
        _ => None,
    }
}

/// The published four blocks for `embed_dim`, or an error asking for explicit blocks.
pub(crate) fn four_layers_or_err(embed_dim: usize, head: &str) -> Result<Vec<i64>> {
    dinov2_four_layers(embed_dim).ok_or_else(|| {
        Error::option(
            "layers",
            format!(
                "{head}: no published block indices for a backbone of width {embed_dim} \
                 (known: 384, 768, 1024, 1536); set the blocks explicitly"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_checked() {
        assert!(DepthRange::new(0.001, 10.0).is_ok());
        assert!(DepthRange::new(1.0, 1.0).is_err());
        assert!(DepthRange::new(f64::NAN, 1.0).is_err());
    }
}
