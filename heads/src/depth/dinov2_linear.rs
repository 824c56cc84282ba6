//! dinov2's linear depth head (`dinov2/hub/depth/decode_heads.py` `BNHead` with `classify=True`,
//! as `dinov2/hub/depthers.py` builds it: 256 uniform bins, "linear" normalisation, ×4 upsampling,
//! `resize_concat`), for the published `dinov2_vit*14_{nyu,kitti}_linear{,4}_head.pth` files.
//!
//! Input: `L` patch maps `(B, E, h, w)` with their CLS tokens `(B, E)` (no final LayerNorm).
//! Each map is concatenated with its broadcast CLS token (`(B, 2E, h, w)`, patch first), resized
//! to `(4h, 4w)` (bilinear, `align_corners=False`) and all are concatenated (`(B, 2E·L, 4h, 4w)`);
//! a 1×1 conv gives `K` bin logits; `p = relu(logit) + 0.1`, normalised over the bins; depth is
//! `Σ p_k · bin_k` with `bin = linspace(min, max, K)`, clamped to `[min, max]`: `(B, 4h, 4w)`.

use candle::{Device, Module, Tensor};

use super::options::{four_layers_or_err, DepthRange, Dinov2DepthOptions};
use super::output::{resize_depth, DepthHead};
use super::{check_dinov2_inputs, decode_head_prefix, stored_dim};
use crate::nn::{Conv2d, ConvSpec};
use crate::ops::resize_bilinear;
use crate::{Error, FeatureMaps, FeatureRequest, Head, Result, TensorStore};

/// The spatial upsampling before the 1×1 conv.
const UPSAMPLE: usize = 4;

/// dinov2's linear depth head ("lin. 1" with one block, "lin. 4" with four).
#[derive(Debug, Clone)]
pub struct Dinov2LinearDepthHead {
    conv_depth: Conv2d,
    bins: Tensor,
    blocks: Vec<i64>,
    embed_dim: usize,
    range: DepthRange,
}

/// `torch.linspace(start, end, steps)` in f32, with PyTorch's two-sided formula.
fn linspace(start: f32, end: f32, steps: usize) -> Vec<f32> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    let half = steps / 2;
    (0..steps)
        .map(|i| {
            if i < half {
                start + step * i as f32
            } else {
                end - step * (steps - 1 - i) as f32
            }
        })
        .collect()
}

impl Dinov2LinearDepthHead {
    /// Loads `conv_depth` (under `decode_head.`, as in the published files, or at the top level) for
    /// a backbone of width `embed_dim`. The number of blocks and bins is read from the weight
    /// `(K, 2E·L, 1, 1)` unless `options.blocks` fixes `L`.
    pub fn load(
        store: &TensorStore,
        embed_dim: usize,
        options: &Dinov2DepthOptions,
        device: &Device,
    ) -> Result<Self> {
        options.range.validate()?;
        let prefix = decode_head_prefix(store, "conv_depth.weight");
        let name = format!("{prefix}conv_depth.weight");
        let bins = stored_dim(store, &name, 0)?;
        let blocks = match &options.blocks {
            Some(blocks) => blocks.clone(),
            None => match stored_dim(store, &name, 1)? {
                c if c == 8 * embed_dim => {
                    four_layers_or_err(embed_dim, "linear depth head (4 blocks)")?
                }
                _ => vec![-1],
            },
        };
        if blocks.is_empty() {
            return Err(Error::option(
                "layers",
                "the linear depth head needs at least one block",
            ));
        }
        let spec = ConvSpec::new(2 * embed_dim * blocks.len(), bins, 1);
        let conv_depth = Conv2d::load(&store.scope(&prefix, device).pp("conv_depth"), spec)?;
        let centres = linspace(options.range.min as f32, options.range.max as f32, bins);
        Ok(Self {
            conv_depth,
            bins: Tensor::from_vec(centres, (1, bins, 1, 1), device)?,
            blocks,
            embed_dim,
            range: options.range,
        })
    }

    /// The depth range of the bins and of the clamp.
    pub fn range(&self) -> DepthRange {
        self.range
    }
}

impl Head for Dinov2LinearDepthHead {
    /// Depth in metres `(B, 4h, 4w)`, clamped to the range.
    type Output = Tensor;

    /// The head's blocks, without the final LayerNorm, with CLS tokens.
    fn request(&self) -> FeatureRequest {
        FeatureRequest::blocks(self.blocks.clone())
            .with_norm(false)
            .with_cls_token(true)
    }

    fn forward(&self, features: &FeatureMaps) -> Result<Tensor> {
        let cls = check_dinov2_inputs(
            features,
            self.blocks.len(),
            self.embed_dim,
            "linear depth head",
        )?;
        let (h, w) = features.grid()?;
        let size = (UPSAMPLE * h, UPSAMPLE * w);
        let mut inputs = Vec::with_capacity(features.maps.len());
        for (map, cls) in features.maps.iter().zip(cls) {
            let (b, e, mh, mw) = map.dims4()?;
            let cls = cls.reshape((b, e, 1, 1))?.broadcast_as((b, e, mh, mw))?;
            let x = Tensor::cat(&[map, &cls], 1)?;
            inputs.push(resize_bilinear(&x, size, false)?);
        }
        let logits = self.conv_depth.forward(&Tensor::cat(&inputs, 1)?)?;
        let p = (logits.relu()? + 0.1)?;
        let total = p.sum_keepdim(1)?;
        let weighted = p
            .broadcast_mul(&self.bins.to_dtype(p.dtype())?)?
            .sum_keepdim(1)?;
        let depth = (weighted / total)?;
        let depth = depth.clamp(self.range.min, self.range.max)?;
        Ok(depth.squeeze(1)?)
    }
}

impl DepthHead for Dinov2LinearDepthHead {
    /// Bilinear with `align_corners=False`, as dinov2's `encode_decode` does (after the clamp).
    fn resize_output(&self, depth: &Tensor, size: (usize, usize)) -> Result<Tensor> {
        resize_depth(depth, size, false)
    }
}

#[cfg(test)]
mod tests {
    use super::linspace;

    #[test]
    fn linspace_matches_torch_endpoints() {
        let v = linspace(0.001, 10.0, 256);
        assert_eq!(v.len(), 256);
        assert_eq!(v[0], 0.001);
        assert_eq!(v[255], 10.0);
        assert!((v[128] - (0.001 + 128.0 * (9.999 / 255.0))).abs() < 1e-5);
    }
}
