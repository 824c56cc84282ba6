//! dinov2's DPT depth head (`dinov2/hub/depth/decode_heads.py` `DPTHead`, readout "project", as
//! `dinov2/hub/depthers.py` builds it), for the published `dinov2_vit*14_{nyu,kitti}_dpt_head.pth`.
//!
//! Input: four patch maps `(B, E, h, w)` with their CLS tokens `(B, E)` (no final LayerNorm).
//! Readout: `GELU(Linear_{2E→E}([token, cls]))` per token. Reassemble: 1×1 conv `E → c_i`, then
//! transposed conv ×4, ×2, identity, stride-2 conv. 3×3 convs `c_i → C` (no bias). Fusion from the
//! coarsest level, each block ×2 (bilinear, `align_corners=True`), skips resized to the running
//! size (half-pixel) when they differ. 3×3 conv + ReLU, then the depth head: 3×3 conv `C → C/2`,
//! ×2, 3×3 conv `→ 32`, ReLU, 1×1 conv `→ 1`; depth `relu(·) + min`, clamped to `[min, max]`.
//! Output `(B, 32·⌈h/2⌉, 32·⌈w/2⌉)`, that is `(B, 16h, 16w)` for an even grid.

use candle::{Device, Module, Tensor};

use super::blocks::{FusionBlock, Reassemble, Resample, ResidualConvUnit};
use super::options::{four_layers_or_err, DepthRange, Dinov2DepthOptions};
use super::output::{resize_depth, DepthHead};
use super::{check_dinov2_inputs, decode_head_prefix, stored_dim};
use crate::checkpoint::Scope;
use crate::nn::{Conv2d, ConvSpec, Linear};
use crate::ops::upsample_bilinear;
use crate::{Error, FeatureMaps, FeatureRequest, Head, Result, TensorStore};

/// The resampling factor of each of the four reassemble levels.
const FACTORS: [f64; 4] = [4.0, 2.0, 1.0, 0.5];

/// dinov2's DPT depth head.
#[derive(Debug, Clone)]
pub struct Dinov2DptDepthHead {
    readout: Vec<Linear>,
    reassemble: Vec<Reassemble>,
    convs: Vec<Conv2d>,
    fusion: Vec<FusionBlock>,
    project: Conv2d,
    head: [Conv2d; 3],
    blocks: Vec<i64>,
    embed_dim: usize,
    range: DepthRange,
}

/// An mmcv `ConvModule`: the convolution sits under `.conv`.
fn conv_module(scope: &Scope<'_>, spec: ConvSpec) -> Result<Conv2d> {
    Conv2d::load(&scope.pp("conv"), spec)
}

fn rcu(scope: &Scope<'_>, channels: usize) -> Result<ResidualConvUnit> {
    ResidualConvUnit::load(
        &scope.pp("conv1").pp("conv"),
        &scope.pp("conv2").pp("conv"),
        channels,
        false,
    )
}

impl Dinov2DptDepthHead {
    /// Loads the head (keys under `decode_head.`, as in the published files, or at the top level)
    /// for a backbone of width `embed_dim`. Level and fusion widths are read from the tensors.
    pub fn load(
        store: &TensorStore,
        embed_dim: usize,
        options: &Dinov2DepthOptions,
        device: &Device,
    ) -> Result<Self> {
        options.range.validate()?;
        let blocks = match &options.blocks {
            Some(blocks) => blocks.clone(),
            None => four_layers_or_err(embed_dim, "DPT depth head")?,
        };
        if blocks.len() != 4 {
            return Err(Error::option(
                "layers",
                format!(
                    "the DPT depth head reads 4 blocks, {} were given",
                    blocks.len()
                ),
            ));
        }
        let prefix = decode_head_prefix(store, "convs.0.conv.weight");
        let root = store.scope(&prefix, device);
        let scope = root.pp("reassemble_blocks");
        let e = embed_dim;
        let channels = stored_dim(store, &root.path("convs.0.conv.weight"), 0)?;
        let (mut readout, mut reassemble, mut convs, mut fusion) = (vec![], vec![], vec![], vec![]);
        for (i, factor) in FACTORS.into_iter().enumerate() {
            readout.push(Linear::load(
                &scope.pp("readout_projects").pp(i).pp(0),
                2 * e,
                e,
                true,
            )?);
            let project_scope = scope.pp("projects").pp(i);
            let c = stored_dim(store, &project_scope.path("conv.weight"), 0)?;
            let project = conv_module(&project_scope, ConvSpec::new(e, c, 1))?;
            let resample = Resample::load(&scope.pp("resize_layers").pp(i), c, factor)?;
            reassemble.push(Reassemble::new(project, resample));
            let conv = ConvSpec::new(c, channels, 3).with_bias(false);
            convs.push(conv_module(&root.pp("convs").pp(i), conv)?);
            let block = root.pp("fusion_blocks").pp(i);
            let rcu1 = if i == 0 {
                None
            } else {
                Some(rcu(&block.pp("res_conv_unit1"), channels)?)
            };
            let rcu2 = rcu(&block.pp("res_conv_unit2"), channels)?;
            let project = conv_module(&block.pp("project"), ConvSpec::new(channels, channels, 1))?;
            fusion.push(FusionBlock::new(rcu1, rcu2, project));
        }
        let head = root.pp("conv_depth").pp("head");
        let half = channels / 2;
        Ok(Self {
            readout,
            reassemble,
            convs,
            fusion,
            project: conv_module(&root.pp("project"), ConvSpec::new(channels, channels, 3))?,
            head: [
                Conv2d::load(&head.pp(0), ConvSpec::new(channels, half, 3))?,
                Conv2d::load(&head.pp(2), ConvSpec::new(half, 32, 3))?,
                Conv2d::load(&head.pp(4), ConvSpec::new(32, 1, 1))?,
            ],
            blocks,
            embed_dim,
            range: options.range,
        })
    }

    /// The depth range of the offset and the clamp.
    pub fn range(&self) -> DepthRange {
        self.range
    }

    /// Readout "project": `(B, E, h, w)` and CLS `(B, E)` → `GELU(Linear([token, cls]))` `(B, E, h, w)`.
    fn read_out(&self, level: usize, map: &Tensor, cls: &Tensor) -> Result<Tensor> {
        let (b, e, h, w) = map.dims4()?;
        let tokens = map.flatten_from(2)?.transpose(1, 2)?;
        let cls = cls.reshape((b, 1, e))?.broadcast_as((b, h * w, e))?;
        let x = Tensor::cat(&[&tokens, &cls], 2)?;
        let x = self.readout[level].forward(&x)?.gelu_erf()?;
        Ok(x.transpose(1, 2)?.reshape((b, e, h, w))?)
    }
}

impl Head for Dinov2DptDepthHead {
    /// Depth in metres `(B, 32·⌈h/2⌉, 32·⌈w/2⌉)`, clamped to the range.
    type Output = Tensor;

    /// The head's four blocks, without the final LayerNorm, with CLS tokens.
    fn request(&self) -> FeatureRequest {
        FeatureRequest::blocks(self.blocks.clone())
            .with_norm(false)
            .with_cls_token(true)
    }

    fn forward(&self, features: &FeatureMaps) -> Result<Tensor> {
        let cls = check_dinov2_inputs(features, 4, self.embed_dim, "DPT depth head")?;
        let mut levels = Vec::with_capacity(4);
        for (i, (map, cls)) in features.maps.iter().zip(cls).enumerate() {
            let x = self.read_out(i, map, cls)?;
            let x = self.reassemble[i].forward(&x)?;
            levels.push(self.convs[i].forward(&x)?);
        }
        let mut out = self.fusion[0].forward(&levels[3], None, None)?;
        for (i, block) in self.fusion.iter().enumerate().skip(1) {
            out = block.forward(&out, Some(&levels[3 - i]), None)?;
        }
        let x = self.project.forward(&out)?.relu()?;
        let x = self.head[0].forward(&x)?;
        let x = upsample_bilinear(&x, 2, true)?;
        let x = self.head[1].forward(&x)?.relu()?;
        let x = self.head[2].forward(&x)?;
        let depth = (x.relu()? + self.range.min)?.clamp(self.range.min, self.range.max)?;
        Ok(depth.squeeze(1)?)
    }
}

impl DepthHead for Dinov2DptDepthHead {
    /// Bilinear with `align_corners=False`, as dinov2's `encode_decode` does (after the clamp).
    fn resize_output(&self, depth: &Tensor, size: (usize, usize)) -> Result<Tensor> {
        resize_depth(depth, size, false)
    }
}
