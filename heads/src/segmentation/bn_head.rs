//! dinov2's segmentation linear probe: mmseg's `BNHead` (`dinov2/eval/segmentation/models/
//! decode_heads/linear_head.py`). The patch maps of the blocks it reads (final LayerNorm applied, no
//! CLS) are concatenated on channels, batch-normalised with the running statistics (eps 1e-5) and
//! classified by a 1×1 convolution; the logits are then resized bilinearly (align_corners=False) to
//! the input size.
//!
//! "linear" heads read the last block (`C_in = E`), "ms" heads the last four (`C_in = 4E`). The
//! published mmseg `.pth` files (`state_dict` → `decode_head.bn.*`, `decode_head.conv_seg.*`) and the
//! safetensors heads written by [`BnHead::save`] load alike; the number of blocks is `C_in / E`
//! unless the file's metadata names them.
//!
//! Shapes: maps `(B, E, h, w)` each; concatenated `(B, C_in, h, w)`; logits `(B, K, h, w)` on the
//! patch grid, `(B, K, H, W)` from [`Head::forward`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle::{DType, Device, Module, Tensor};

use crate::checkpoint::{is_pth, Scope};
use crate::nn::{BatchNorm2d, Conv2d, ConvSpec};
use crate::ops::resize_bilinear;
use crate::segmentation::head_file::{
    read_head_metadata, write_safetensors, HeadMetadata, METADATA_KEY,
};
use crate::segmentation::palette::ClassSet;
use crate::{Error, FeatureMaps, FeatureRequest, Head, Result, TensorStore};

/// BatchNorm epsilon of mmseg's `SyncBN` (PyTorch's default).
pub const BN_EPS: f64 = 1e-5;

/// The prefixes the head's tensors may carry: mmseg's `decode_head.`, or none.
const PREFIXES: [&str; 2] = ["decode_head.", ""];

/// The six tensors of a BNHead, as named in mmseg checkpoints (under `decode_head.`).
#[derive(Debug, Clone)]
pub struct BnHeadParams {
    /// `bn.weight` `(C_in,)`.
    pub bn_weight: Tensor,
    /// `bn.bias` `(C_in,)`.
    pub bn_bias: Tensor,
    /// `bn.running_mean` `(C_in,)`.
    pub running_mean: Tensor,
    /// `bn.running_var` `(C_in,)`.
    pub running_var: Tensor,
    /// `conv_seg.weight` `(K, C_in, 1, 1)`.
    pub conv_weight: Tensor,
    /// `conv_seg.bias` `(K,)`.
    pub conv_bias: Tensor,
}

impl BnHeadParams {
    fn load(scope: &Scope<'_>, in_channels: usize, num_classes: usize) -> Result<Self> {
        let bn = scope.pp("bn");
        let conv = scope.pp("conv_seg");
        Ok(Self {
            bn_weight: bn.get("weight", &[in_channels])?,
            bn_bias: bn.get("bias", &[in_channels])?,
            running_mean: bn.get("running_mean", &[in_channels])?,
            running_var: bn.get("running_var", &[in_channels])?,
            conv_weight: conv.get("weight", &[num_classes, in_channels, 1, 1])?,
            conv_bias: conv.get("bias", &[num_classes])?,
        })
    }

    /// The tensors under their checkpoint names (`decode_head.bn.weight`, ...).
    pub fn named(&self) -> Vec<(&'static str, &Tensor)> {
        vec![
            ("decode_head.bn.weight", &self.bn_weight),
            ("decode_head.bn.bias", &self.bn_bias),
            ("decode_head.bn.running_mean", &self.running_mean),
            ("decode_head.bn.running_var", &self.running_var),
            ("decode_head.conv_seg.weight", &self.conv_weight),
            ("decode_head.conv_seg.bias", &self.conv_bias),
        ]
    }
}

/// dinov2's BNHead in eval mode (see the module documentation).
#[derive(Debug, Clone)]
pub struct BnHead {
    params: BnHeadParams,
    bn: BatchNorm2d,
    conv_seg: Conv2d,
    num_classes: usize,
    embed_dim: usize,
    blocks: Vec<i64>,
    classes: Option<ClassSet>,
}

impl BnHead {
    /// Loads a head from an mmseg `.pth` (or `.pt`) checkpoint or a safetensors file, for a backbone
    /// of width `embed_dim`. The head reads the last `C_in / embed_dim` blocks unless the file's
    /// metadata says otherwise.
    pub fn load(path: impl AsRef<Path>, embed_dim: usize, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let store = TensorStore::open(path)?;
        let metadata = if is_pth(path) {
            None
        } else {
            read_head_metadata(path)?
        };
        Self::from_store(&store, embed_dim, metadata.as_ref(), device)
    }

    /// Builds the head from a store holding its tensors (with or without the `decode_head.` prefix).
    pub fn from_store(
        store: &TensorStore,
        embed_dim: usize,
        metadata: Option<&HeadMetadata>,
        device: &Device,
    ) -> Result<Self> {
        let source = store.source_name();
        let prefix = PREFIXES
            .iter()
            .find(|p| store.contains(&format!("{p}conv_seg.weight")))
            .ok_or_else(|| Error::MissingTensor {
                source_name: source.to_string(),
                name: "decode_head.conv_seg.weight".into(),
                expected: None,
            })?;
        let shape = store
            .shape(&format!("{prefix}conv_seg.weight"))
            .unwrap_or_default();
        let (num_classes, in_channels) = match shape[..] {
            [k, c, 1, 1] if k > 0 && c > 0 => (k, c),
            _ => {
                return Err(Error::option(
                    "head",
                    format!(
                        "{source}: conv_seg.weight has shape {shape:?}, expected (K, C_in, 1, 1)"
                    ),
                ))
            }
        };
        if embed_dim == 0 || in_channels % embed_dim != 0 {
            return Err(Error::option(
                "head",
                format!(
                    "{source} reads {in_channels} channels, which is not a multiple of the backbone width {embed_dim}: it was trained for another backbone"
                ),
            ));
        }
        let scope = store.scope(prefix, device);
        let params = BnHeadParams::load(&scope, in_channels, num_classes)?;
        let n = in_channels / embed_dim;
        let head = Self::from_params(params, embed_dim, (-(n as i64)..0).collect())?;
        match metadata {
            None => Ok(head),
            Some(m) => head.apply_metadata(m, source),
        }
    }

    /// Builds the head from its tensors, for a backbone of width `embed_dim` reading `blocks`
    /// (`blocks.len() * embed_dim` must be the head's input channels).
    pub fn from_params(params: BnHeadParams, embed_dim: usize, blocks: Vec<i64>) -> Result<Self> {
        let (num_classes, in_channels, _, _) = params.conv_weight.dims4()?;
        if blocks.is_empty() || blocks.len() * embed_dim != in_channels {
            return Err(Error::option(
                "head blocks",
                format!(
                    "{} blocks of width {embed_dim} give {} channels, but the head reads {in_channels}",
                    blocks.len(),
                    blocks.len() * embed_dim
                ),
            ));
        }
        let params = BnHeadParams {
            bn_weight: params.bn_weight.to_dtype(DType::F32)?,
            bn_bias: params.bn_bias.to_dtype(DType::F32)?,
            running_mean: params.running_mean.to_dtype(DType::F32)?,
            running_var: params.running_var.to_dtype(DType::F32)?,
            conv_weight: params.conv_weight.to_dtype(DType::F32)?,
            conv_bias: params.conv_bias.to_dtype(DType::F32)?,
        };
        let bn = BatchNorm2d::from_parts(
            &params.bn_weight,
            &params.bn_bias,
            &params.running_mean,
            &params.running_var,
            BN_EPS,
        )?;
        let named: HashMap<String, Tensor> = params
            .named()
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        let store = TensorStore::from_map("BNHead parameters", named);
        let device = params.conv_weight.device().clone();
        let conv_seg = Conv2d::load(
            &store.scope("decode_head.conv_seg.", &device),
            ConvSpec::new(in_channels, num_classes, 1),
        )?;
        Ok(Self {
            params,
            bn,
            conv_seg,
            num_classes,
            embed_dim,
            blocks,
            classes: None,
        })
    }

    fn apply_metadata(mut self, m: &HeadMetadata, source: &str) -> Result<Self> {
        if m.embed_dim != self.embed_dim {
            return Err(Error::option(
                "head",
                format!(
                    "{source} was trained on a backbone of width {}, but this backbone's width is {}",
                    m.embed_dim, self.embed_dim
                ),
            ));
        }
        if m.num_classes != self.num_classes {
            return Err(Error::option(
                "head",
                format!(
                    "{source}: metadata says {} classes but conv_seg has {}",
                    m.num_classes, self.num_classes
                ),
            ));
        }
        self = self.with_blocks(m.blocks.clone())?;
        if !m.class_names.is_empty() {
            let classes = if m.palette.len() == m.class_names.len() {
                ClassSet::new(m.class_names.clone(), m.palette.clone())?
            } else {
                ClassSet::from_names(m.class_names.clone())?
            };
            self = self.with_classes(classes)?;
        }
        Ok(self)
    }

    /// The same head reading other blocks (as many as before: `C_in / E`).
    pub fn with_blocks(mut self, blocks: Vec<i64>) -> Result<Self> {
        if blocks.len() != self.blocks.len() {
            return Err(Error::option(
                "head blocks",
                format!(
                    "{} blocks given, but the head reads {} maps of width {}",
                    blocks.len(),
                    self.blocks.len(),
                    self.embed_dim
                ),
            ));
        }
        self.blocks = blocks;
        Ok(self)
    }

    /// The same head with class names and colours (one per class).
    pub fn with_classes(mut self, classes: ClassSet) -> Result<Self> {
        classes.check_len(self.num_classes)?;
        self.classes = Some(classes);
        Ok(self)
    }

    /// The number of classes `K`.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The backbone width `E` per layer.
    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    /// The input channels `C_in` (blocks × width).
    pub fn in_channels(&self) -> usize {
        self.blocks.len() * self.embed_dim
    }

    /// The blocks read.
    pub fn blocks(&self) -> &[i64] {
        &self.blocks
    }

    /// The class names and colours saved with the head, if any.
    pub fn classes(&self) -> Option<&ClassSet> {
        self.classes.as_ref()
    }

    /// The head's tensors.
    pub fn params(&self) -> &BnHeadParams {
        &self.params
    }

    /// Concatenates the maps the head reads into `(B, C_in, h, w)`, each resized to the first one's
    /// grid (mmseg's `resize_concat`).
    pub fn concat_features(&self, features: &FeatureMaps) -> Result<Tensor> {
        if features.maps.len() != self.blocks.len() {
            return Err(Error::input(
                "feature maps",
                format!(
                    "{} maps were given, the head reads {} (blocks {:?})",
                    features.maps.len(),
                    self.blocks.len(),
                    self.blocks
                ),
            ));
        }
        let (_, _, h, w) = features.maps[0].dims4()?;
        let mut maps = Vec::with_capacity(features.maps.len());
        for (i, m) in features.maps.iter().enumerate() {
            let c = m.dim(1)?;
            if c != self.embed_dim {
                return Err(Error::input(
                    "feature maps",
                    format!(
                        "map {i} has {c} channels but the head expects the backbone width {}",
                        self.embed_dim
                    ),
                ));
            }
            maps.push(resize_bilinear(&m.to_dtype(DType::F32)?, (h, w), false)?);
        }
        Ok(Tensor::cat(&maps, 1)?)
    }

    /// Logits `(B, K, h, w)` on the patch grid, from concatenated features `(B, C_in, h, w)`.
    pub fn forward_concat(&self, x: &Tensor) -> Result<Tensor> {
        let c = x.dim(1)?;
        if c != self.in_channels() {
            return Err(Error::input(
                "features",
                format!("{c} channels given, the head reads {}", self.in_channels()),
            ));
        }
        let y = self.bn.forward(&x.to_dtype(DType::F32)?)?;
        Ok(self.conv_seg.forward(&y)?)
    }

    /// Logits `(B, K, h, w)` on the patch grid.
    pub fn grid_logits(&self, features: &FeatureMaps) -> Result<Tensor> {
        self.forward_concat(&self.concat_features(features)?)
    }

    /// Logits resized bilinearly (align_corners=False) to `size`, for example the unpadded input.
    pub fn logits(&self, features: &FeatureMaps, size: (usize, usize)) -> Result<Tensor> {
        resize_bilinear(&self.grid_logits(features)?, size, false)
    }

    /// The metadata [`BnHead::save`] writes by default.
    pub fn metadata(&self) -> HeadMetadata {
        HeadMetadata {
            kind: "bn_head".into(),
            num_classes: self.num_classes,
            embed_dim: self.embed_dim,
            blocks: self.blocks.clone(),
            class_names: self
                .classes
                .as_ref()
                .map(|c| c.names().to_vec())
                .unwrap_or_default(),
            palette: self
                .classes
                .as_ref()
                .map(|c| c.colors().to_vec())
                .unwrap_or_default(),
            backbone: None,
            val_miou: None,
        }
    }

    /// Saves the head as safetensors with `metadata` (start from [`BnHead::metadata`]).
    pub fn save(&self, path: impl AsRef<Path>, metadata: &HeadMetadata) -> Result<()> {
        let own = self.metadata();
        if (metadata.num_classes, metadata.embed_dim, &metadata.blocks)
            != (own.num_classes, own.embed_dim, &own.blocks)
        {
            return Err(Error::option(
                "head metadata",
                "num_classes, embed_dim and blocks must be the head's own (use BnHead::metadata)",
            ));
        }
        let json = serde_json::to_string(metadata)
            .map_err(|e| Error::option("head metadata", e.to_string()))?;
        let map = BTreeMap::from([(METADATA_KEY.to_string(), json)]);
        write_safetensors(path.as_ref(), &self.params.named(), &map)
    }
}

impl Head for BnHead {
    type Output = Tensor;

    fn request(&self) -> FeatureRequest {
        FeatureRequest::blocks(self.blocks.clone())
    }

    /// Logits `(B, K, H, W)` at `features.input_size`.
    fn forward(&self, features: &FeatureMaps) -> Result<Tensor> {
        self.logits(features, features.input_size)
    }
}
