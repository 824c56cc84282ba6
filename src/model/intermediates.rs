//! The types of the typed intermediate-layers API ([`Vit::forward_intermediates`]), in the style of
//! timm's `forward_intermediates` and dinov2's `get_intermediate_layers`: which blocks, with or
//! without the final norm, in which layout, and whether each layer's CLS and register tokens come
//! back too.
//!
//! Blocks are numbered as in dinov2: block `j` (0-based) is HF backbone stage `stage{j+1}`.
//!
//! [`Vit::forward_intermediates`]: crate::Vit::forward_intermediates

use candle::Tensor;

/// Which blocks to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSelection {
    /// The last `n` blocks (dinov2's `n` as an int).
    Last(usize),
    /// These blocks, 0-based, negative counting from the end, in increasing order.
    Blocks(Vec<i64>),
}

impl Default for LayerSelection {
    fn default() -> Self {
        Self::Last(1)
    }
}

/// How patch tokens are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenLayout {
    /// `(B, D, h, w)`.
    #[default]
    Nchw,
    /// `(B, h, w, D)`.
    Nhwc,
    /// `(B, h·w, D)`.
    Nlc,
}

/// Options of [`Vit::forward_intermediates`](crate::Vit::forward_intermediates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntermediatesOptions {
    /// Which blocks.
    pub layers: LayerSelection,
    /// Apply the final LayerNorm to each block's output.
    pub norm: bool,
    /// Layout of the patch tokens.
    pub layout: TokenLayout,
    /// Also return each layer's CLS token `(B, D)` and register tokens `(B, R, D)`.
    pub prefix_tokens: bool,
    /// Stop after the last requested block instead of running the whole encoder.
    pub stop_early: bool,
}

impl Default for IntermediatesOptions {
    fn default() -> Self {
        Self {
            layers: LayerSelection::default(),
            norm: true,
            layout: TokenLayout::Nchw,
            prefix_tokens: false,
            stop_early: true,
        }
    }
}

impl IntermediatesOptions {
    /// Sets the blocks.
    pub fn with_blocks(mut self, layers: LayerSelection) -> Self {
        self.layers = layers;
        self
    }

    /// Sets whether the final norm is applied.
    pub fn with_norm(mut self, norm: bool) -> Self {
        self.norm = norm;
        self
    }

    /// Sets the layout.
    pub fn with_layout(mut self, layout: TokenLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Sets whether CLS and register tokens are returned.
    pub fn with_prefix_tokens(mut self, yes: bool) -> Self {
        self.prefix_tokens = yes;
        self
    }

    /// Sets whether the pass stops after the last requested block.
    pub fn with_stop_early(mut self, yes: bool) -> Self {
        self.stop_early = yes;
        self
    }
}

/// One block's features.
#[derive(Debug, Clone)]
pub struct LayerFeatures {
    /// The block index (0-based).
    pub block: usize,
    /// Patch tokens in the requested layout.
    pub patches: Tensor,
    /// The CLS token `(B, D)`, when requested.
    pub cls: Option<Tensor>,
    /// The register tokens `(B, R, D)`, when requested.
    pub registers: Option<Tensor>,
}

/// What [`Vit::forward_intermediates`](crate::Vit::forward_intermediates) returns.
#[derive(Debug, Clone)]
pub struct Intermediates {
    /// One entry per requested block, in block order.
    pub layers: Vec<LayerFeatures>,
    /// The patch grid `(h, w)`.
    pub grid: (usize, usize),
}
