//! The contract between a backbone and a dense head: what a head asks for ([`FeatureRequest`]) and
//! what it gets ([`FeatureMaps`]). A head never sees the backbone, so any ViT can feed it.
//!
//! Shapes: patch maps `(B, C, h, w)` with `h = H / p`, `w = W / p`; CLS tokens `(B, C)`.

use candle::Tensor;

use crate::Result;

/// Which tensor of a layer a head reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeatureSource {
    /// The block's output tokens (the residual stream), as `get_intermediate_layers` returns them.
    #[default]
    Output,
    /// The attention keys of the block, all heads concatenated (LOST's and TokenCut's default).
    Keys,
    /// The attention queries of the block, all heads concatenated.
    Queries,
    /// The attention values of the block, all heads concatenated.
    Values,
}

/// What a head needs from the backbone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureRequest {
    /// 0-based block indices, in increasing order; negative values count from the end (-1 is the last
    /// block). Block `j` is HF backbone stage `stage{j+1}`.
    pub blocks: Vec<i64>,
    /// Apply the backbone's final LayerNorm to each map (ignored for keys, queries and values).
    pub norm: bool,
    /// Also return each layer's CLS token.
    pub cls_token: bool,
    /// Which tensor of the layer to read.
    pub source: FeatureSource,
}

impl FeatureRequest {
    /// Output tokens of the given blocks, final LayerNorm applied, no CLS token.
    pub fn blocks(blocks: impl Into<Vec<i64>>) -> Self {
        Self {
            blocks: blocks.into(),
            norm: true,
            cls_token: false,
            source: FeatureSource::Output,
        }
    }

    /// Sets whether the final LayerNorm is applied.
    pub fn with_norm(mut self, norm: bool) -> Self {
        self.norm = norm;
        self
    }

    /// Sets whether each layer's CLS token is returned.
    pub fn with_cls_token(mut self, cls_token: bool) -> Self {
        self.cls_token = cls_token;
        self
    }

    /// Sets which tensor of the layer is read.
    pub fn with_source(mut self, source: FeatureSource) -> Self {
        self.source = source;
        self
    }
}

/// Feature maps of one batch, as a backbone hands them to a head.
#[derive(Debug, Clone)]
pub struct FeatureMaps {
    /// One patch map per requested layer, in request order, each `(B, C, h, w)`; CLS and register
    /// tokens removed.
    pub maps: Vec<Tensor>,
    /// The CLS token `(B, C)` of each requested layer, when the request asked for it.
    pub cls_tokens: Option<Vec<Tensor>>,
    /// The backbone's patch size `p`, in pixels.
    pub patch_size: usize,
    /// `(H, W)` of the pixel tensor the backbone saw, in pixels.
    pub input_size: (usize, usize),
}

impl FeatureMaps {
    /// The patch grid `(h, w)` of the maps.
    pub fn grid(&self) -> Result<(usize, usize)> {
        let first = self
            .maps
            .first()
            .ok_or_else(|| crate::Error::input("feature maps", "no map was given"))?;
        let (_, _, h, w) = first.dims4()?;
        Ok((h, w))
    }

    /// The batch size of the maps.
    pub fn batch(&self) -> Result<usize> {
        let first = self
            .maps
            .first()
            .ok_or_else(|| crate::Error::input("feature maps", "no map was given"))?;
        Ok(first.dim(0)?)
    }

    /// The CLS tokens, or an error naming `head` when the backbone did not provide them.
    pub fn require_cls(&self, head: &str) -> Result<&[Tensor]> {
        self.cls_tokens.as_deref().ok_or_else(|| {
            crate::Error::input(
                "feature maps",
                format!(
                    "{head} needs the CLS token of each layer; request it with cls_token = true"
                ),
            )
        })
    }
}

/// A dense head: it states what it needs from a backbone and turns those feature maps into its output.
pub trait Head {
    /// What the head returns, for example logits `(B, K, H, W)` or depth `(B, H, W)`.
    type Output;

    /// The blocks and tensors the head reads.
    fn request(&self) -> FeatureRequest;

    /// Runs the head on feature maps produced for [`Head::request`].
    fn forward(&self, features: &FeatureMaps) -> Result<Self::Output>;
}
