//! Depth-Anything's DPT neck and head, as HF `DepthAnythingForDepthEstimation` computes them
//! (`modeling_depth_anything.py`: `DepthAnythingNeck`, `DepthAnythingDepthEstimationHead`), which is
//! Depth-Anything-V2's `depth_anything_v2/dpt.py` `DPTHead` with `use_clstoken=False`.
//!
//! Input: one patch map `(B, E, h, w)` per requested block (final LayerNorm applied, CLS and
//! registers removed, so registers backbones work too). Output: depth `(B, h·p, w·p)`.
//!
//! Neck: per level, 1×1 projection `E → c_i` and resampling (transposed conv ×4, ×2, identity,
//! stride-2 conv); 3×3 conv `c_i → F` without bias; fusion from the coarsest level up, each block
//! resized (bilinear, `align_corners=True`) to the next level's size, the last one ×2.
//! Head: 3×3 conv `F → F/2`, bilinear resize to `(h·p, w·p)` (`align_corners=True`), 3×3 conv
//! `F/2 → head_hidden_size`, ReLU, 1×1 conv `→ 1`, then ReLU (relative) or sigmoid (metric), times
//! `max_depth`.

use std::path::Path;

use candle::{Device, Module, Tensor};

use super::blocks::{FusionBlock, Reassemble, Resample, ResidualConvUnit};
use super::config::{DepthAnythingConfig, DepthKind};
use super::keys::{original_config, rename_original, OriginalDepthAnythingOptions};
use super::output::{resize_depth, DepthHead};
use crate::checkpoint::Scope;
use crate::nn::{Conv2d, ConvSpec};
use crate::ops::resize_bilinear;
use crate::{Error, FeatureMaps, FeatureRequest, Head, Result, TensorStore};

/// Depth-Anything's neck and depth head (HF key space: `neck.*`, `head.*`).
#[derive(Debug, Clone)]
pub struct DepthAnythingHead {
    config: DepthAnythingConfig,
    reassemble: Vec<Reassemble>,
    convs: Vec<Conv2d>,
    fusion: Vec<FusionBlock>,
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
}

fn rcu(scope: &Scope<'_>, channels: usize) -> Result<ResidualConvUnit> {
    ResidualConvUnit::load(
        &scope.pp("convolution1"),
        &scope.pp("convolution2"),
        channels,
        true,
    )
}

impl DepthAnythingHead {
    /// Loads the neck and head from an HF checkpoint (`neck.*`, `head.*`, as in the published
    /// `depth-anything/Depth-Anything-V2-*-hf` `model.safetensors`) described by `config`.
    pub fn load(
        store: &TensorStore,
        config: &DepthAnythingConfig,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let root = store.scope("", device);
        let neck = root.pp("neck");
        let e = config.reassemble_hidden_size;
        let f = config.fusion_hidden_size;
        let mut reassemble = Vec::new();
        let mut convs = Vec::new();
        let mut fusion = Vec::new();
        let levels = config
            .neck_hidden_sizes
            .iter()
            .zip(&config.reassemble_factors)
            .enumerate();
        for (i, (&c, &factor)) in levels {
            let layer = neck.pp("reassemble_stage").pp("layers").pp(i);
            let project = Conv2d::load(&layer.pp("projection"), ConvSpec::new(e, c, 1))?;
            let resample = Resample::load(&layer.pp("resize"), c, factor)?;
            reassemble.push(Reassemble::new(project, resample));
            let conv = ConvSpec::new(c, f, 3).with_bias(false);
            convs.push(Conv2d::load(&neck.pp("convs").pp(i), conv)?);
            let block = neck.pp("fusion_stage").pp("layers").pp(i);
            // HF builds `residual_layer1` in every block; the first one never uses it.
            let rcu1 = if i == 0 {
                None
            } else {
                Some(rcu(&block.pp("residual_layer1"), f)?)
            };
            let rcu2 = rcu(&block.pp("residual_layer2"), f)?;
            let project = Conv2d::load(&block.pp("projection"), ConvSpec::new(f, f, 1))?;
            fusion.push(FusionBlock::new(rcu1, rcu2, project));
        }
        let head = root.pp("head");
        Ok(Self {
            config: config.clone(),
            reassemble,
            convs,
            fusion,
            conv1: Conv2d::load(&head.pp("conv1"), ConvSpec::new(f, f / 2, 3))?,
            conv2: Conv2d::load(
                &head.pp("conv2"),
                ConvSpec::new(f / 2, config.head_hidden_size, 3),
            )?,
            conv3: Conv2d::load(
                &head.pp("conv3"),
                ConvSpec::new(config.head_hidden_size, 1, 1),
            )?,
        })
    }

    /// Loads a checkpoint in Depth-Anything-V2's own layout (`depth_anything_v2_vit{s,b,l,g}.pth`,
    /// head under `depth_head.*`): sizes are read from the tensors, the rest from `options`.
    pub fn load_original(
        path: impl AsRef<Path>,
        options: &OriginalDepthAnythingOptions,
        device: &Device,
    ) -> Result<Self> {
        let store = TensorStore::open(path)?;
        Self::from_original_store(&store, options, device)
    }

    /// [`DepthAnythingHead::load_original`] on a store already open.
    pub fn from_original_store(
        store: &TensorStore,
        options: &OriginalDepthAnythingOptions,
        device: &Device,
    ) -> Result<Self> {
        let config = original_config(store, options)?;
        let renamed = rename_original(store, device)?;
        Self::load(&renamed, &config, device)
    }

    /// The configuration the head was built from.
    pub fn config(&self) -> &DepthAnythingConfig {
        &self.config
    }

    fn check_inputs(&self, features: &FeatureMaps) -> Result<(usize, usize)> {
        let n = self.reassemble.len();
        if features.maps.len() != n {
            return Err(Error::input(
                "feature maps",
                format!(
                    "the Depth-Anything head needs {n} maps (one per block {:?}), got {}",
                    self.config.blocks,
                    features.maps.len()
                ),
            ));
        }
        let (b, _, h, w) = features.maps[0].dims4()?;
        for (i, map) in features.maps.iter().enumerate() {
            let (mb, c, mh, mw) = map.dims4()?;
            if (mb, c, mh, mw) != (b, self.config.reassemble_hidden_size, h, w) {
                return Err(Error::input(
                    format!("feature map {i}"),
                    format!(
                        "shape ({mb}, {c}, {mh}, {mw}), expected ({b}, {}, {h}, {w}) \
                         (channels = reassemble_hidden_size, same batch and grid for every map)",
                        self.config.reassemble_hidden_size
                    ),
                ));
            }
        }
        Ok((h, w))
    }
}

impl Head for DepthAnythingHead {
    /// Depth `(B, h·p, w·p)`: relative inverse depth, or metres for a metric model.
    type Output = Tensor;

    /// The config's blocks, final LayerNorm applied (unless the backbone config says otherwise), no CLS.
    fn request(&self) -> FeatureRequest {
        FeatureRequest::blocks(self.config.blocks.clone()).with_norm(self.config.norm)
    }

    fn forward(&self, features: &FeatureMaps) -> Result<Tensor> {
        let (h, w) = self.check_inputs(features)?;
        let mut levels = Vec::with_capacity(self.convs.len());
        for ((map, reassemble), conv) in features.maps.iter().zip(&self.reassemble).zip(&self.convs)
        {
            levels.push(conv.forward(&reassemble.forward(map)?)?);
        }
        // Fusion from the coarsest level to the finest, each output sized like the next skip.
        let n = levels.len();
        let mut fused: Vec<Tensor> = Vec::with_capacity(n);
        for (k, block) in self.fusion.iter().enumerate() {
            let level = &levels[n - 1 - k];
            let size = match k + 1 < n {
                true => {
                    let (_, _, sh, sw) = levels[n - 2 - k].dims4()?;
                    Some((sh, sw))
                }
                false => None,
            };
            let out = match fused.last() {
                None => block.forward(level, None, size)?,
                Some(prev) => block.forward(prev, Some(level), size)?,
            };
            fused.push(out);
        }
        let index = self.config.head_in_index;
        let pick = if index < 0 { n as i64 + index } else { index } as usize;
        let x = self.conv1.forward(&fused[pick])?;
        let p = self.config.patch_size;
        let x = resize_bilinear(&x, (h * p, w * p), true)?;
        let x = self.conv2.forward(&x)?.relu()?;
        let x = self.conv3.forward(&x)?;
        let x = match self.config.depth_estimation_type {
            DepthKind::Relative => x.relu()?,
            DepthKind::Metric => candle_nn::ops::sigmoid(&x)?,
        };
        Ok((x * self.config.max_depth)?.squeeze(1)?)
    }
}

impl DepthHead for DepthAnythingHead {
    /// Bilinear with `align_corners=True`, as Depth-Anything-V2's `infer_image` does.
    fn resize_output(&self, depth: &Tensor, size: (usize, usize)) -> Result<Tensor> {
        resize_depth(depth, size, true)
    }
}
