//! HF `Dinov2WithRegistersBackbone` and `DINOv3ViTBackbone` over any [`Vit`]: the stages `stem,
//! stage1 … stageL`, `out_features` / `out_indices` resolved and validated by HF's rules
//! (`get_aligned_output_features_output_indices`), `apply_layernorm` (the final norm on each
//! selected stage; DINOv3 norms the last stage always) and `reshape_hidden_states` (CLS and
//! registers dropped, `(B, D, H/p, W/p)` maps; without it DINOv2 returns every token, DINOv3 the
//! patch tokens only).
//!
//! Shapes: feature maps `(B, D, h, w)` when reshaping, else `(B, 1 + R + h·w, D)` (DINOv2) or
//! `(B, h·w, D)` (DINOv3).

use candle::Tensor;

use crate::model::intermediates::TokenLayout;
use crate::model::load::LoadOptions;
use crate::model::pretrained::{DinoModel, Pretrained};
use crate::model::vit::{EncodeRequest, Vit};
use crate::{Error, Result};

/// Resolves `out_features` / `out_indices` against `stage_names` exactly as HF does: neither set →
/// the last stage; one set → the other derived; both set → checked for agreement. Names must be
/// known, unique and in stage order; indices (negative allowed) in range, unique and ascending.
/// Returns `(out_features, out_indices)` with negative indices kept as given, like HF.
pub fn align_out_stages(
    stage_names: &[String],
    out_features: Option<&[String]>,
    out_indices: Option<&[i64]>,
) -> Result<(Vec<String>, Vec<i64>)> {
    let n = stage_names.len() as i64;
    if n == 0 {
        return Err(Error::option("stage_names", "must not be empty"));
    }
    if let Some(features) = out_features {
        for f in features {
            if !stage_names.contains(f) {
                return Err(Error::option(
                    "out_features",
                    format!("must be a subset of stage_names {stage_names:?}, got {features:?} (unknown {f:?})"),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        if !features.iter().all(|f| seen.insert(f)) {
            return Err(Error::option(
                "out_features",
                format!("must not contain duplicates, got {features:?}"),
            ));
        }
        let positions: Vec<usize> = features
            .iter()
            .filter_map(|f| stage_names.iter().position(|s| s == f))
            .collect();
        if positions.windows(2).any(|w| w[0] >= w[1]) {
            let mut sorted = features.to_vec();
            sorted.sort_by_key(|f| stage_names.iter().position(|s| s == f));
            return Err(Error::option(
                "out_features",
                format!("must be in the same order as stage_names, expected {sorted:?} got {features:?}"),
            ));
        }
    }
    if let Some(indices) = out_indices {
        let mapped: Vec<i64> = indices.iter().map(|i| i.rem_euclid(n)).collect();
        if let Some(bad) = indices.iter().find(|&&i| i >= n || i < -n) {
            return Err(Error::option(
                "out_indices",
                format!(
                    "must be valid indices for stage_names (0..{n} or -{n}..-1), got {indices:?} ({bad} is out of range)"
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if !mapped.iter().all(|i| seen.insert(*i)) {
            return Err(Error::option(
                "out_indices",
                format!("must not contain duplicates, got {indices:?} (equivalent to {mapped:?})"),
            ));
        }
        if mapped.windows(2).any(|w| w[0] >= w[1]) {
            let mut sorted = mapped.clone();
            sorted.sort();
            return Err(Error::option(
                "out_indices",
                format!(
                    "must be in the same order as stage_names, expected {sorted:?} got {indices:?}"
                ),
            ));
        }
    }
    match (out_features, out_indices) {
        (None, None) => Ok((vec![stage_names[(n - 1) as usize].clone()], vec![n - 1])),
        (Some(f), None) => Ok((
            f.to_vec(),
            f.iter()
                .filter_map(|x| stage_names.iter().position(|s| s == x).map(|p| p as i64))
                .collect(),
        )),
        (None, Some(i)) => Ok((
            i.iter()
                .map(|x| stage_names[x.rem_euclid(n) as usize].clone())
                .collect(),
            i.to_vec(),
        )),
        (Some(f), Some(i)) => {
            if f.len() != i.len() {
                return Err(Error::option(
                    "out_features/out_indices",
                    format!("should have the same length if both are set, got {f:?} and {i:?}"),
                ));
            }
            let from_indices: Vec<&String> = i
                .iter()
                .map(|x| &stage_names[x.rem_euclid(n) as usize])
                .collect();
            if f.iter().collect::<Vec<_>>() != from_indices {
                return Err(Error::option(
                    "out_features/out_indices",
                    format!(
                        "should correspond to the same stages if both are set, got {f:?} and {i:?}"
                    ),
                ));
            }
            Ok((f.to_vec(), i.to_vec()))
        }
    }
}

/// Options of a [`Backbone`]; `None` takes the value stored with the model (its config).
#[derive(Debug, Clone, Default)]
pub struct BackboneOptions {
    /// Stages by name (`stem`, `stage1`, …).
    pub out_features: Option<Vec<String>>,
    /// Stages by index into `stage_names` (negative counts from the end).
    pub out_indices: Option<Vec<i64>>,
    /// Apply the final LayerNorm to each stage.
    pub apply_layernorm: Option<bool>,
    /// Return `(B, D, h, w)` maps without CLS and registers.
    pub reshape_hidden_states: Option<bool>,
}

impl BackboneOptions {
    /// Selects stages by name (clears indices).
    pub fn with_out_features(mut self, names: Vec<String>) -> Self {
        self.out_features = Some(names);
        self.out_indices = None;
        self
    }

    /// Selects stages by index (clears names).
    pub fn with_out_indices(mut self, indices: Vec<i64>) -> Self {
        self.out_indices = Some(indices);
        self.out_features = None;
        self
    }

    /// Sets `apply_layernorm`.
    pub fn with_layernorm(mut self, yes: bool) -> Self {
        self.apply_layernorm = Some(yes);
        self
    }

    /// Sets `reshape_hidden_states`.
    pub fn with_reshape(mut self, yes: bool) -> Self {
        self.reshape_hidden_states = Some(yes);
        self
    }
}

/// Optional outputs of [`Backbone::forward_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackboneForwardOptions {
    /// Also return the `L + 1` hidden states (before the final norm).
    pub output_hidden_states: bool,
    /// Also return the `L` attention probability tensors.
    pub output_attentions: bool,
    /// Also return each selected stage's CLS token (HF's `return_class_token`).
    pub return_class_token: bool,
}

impl BackboneForwardOptions {
    /// Sets whether hidden states are returned.
    pub fn with_hidden_states(mut self, yes: bool) -> Self {
        self.output_hidden_states = yes;
        self
    }

    /// Sets whether attention probabilities are returned.
    pub fn with_attentions(mut self, yes: bool) -> Self {
        self.output_attentions = yes;
        self
    }

    /// Sets whether each stage's CLS token is returned.
    pub fn with_class_token(mut self, yes: bool) -> Self {
        self.return_class_token = yes;
        self
    }
}

/// What [`Backbone::forward`] returns.
#[derive(Debug, Clone)]
pub struct BackboneOutput {
    /// One tensor per selected stage, in stage order.
    pub feature_maps: Vec<Tensor>,
    /// The CLS token `(B, D)` of each selected stage (normed as its map), when requested.
    pub cls_tokens: Option<Vec<Tensor>>,
    /// The `L + 1` hidden states, when requested.
    pub hidden_states: Option<Vec<Tensor>>,
    /// The `L` attention probability tensors, when requested.
    pub attentions: Option<Vec<Tensor>>,
}

/// HF's `Backbone` over any [`Vit`]: a model plus a resolved stage selection.
///
/// ```
/// # fn main() -> dinoreg::Result<()> {
/// use dinoreg::{Backbone, BackboneOptions, Dinov2Model, LoadOptions};
///
/// let model = Dinov2Model::from_pretrained("tests/fixtures/model/reg4", &LoadOptions::default())?.model;
/// // Borrowed here; pass the model by value to own it, or an `Arc` to share it.
/// let backbone = Backbone::new(&model, &BackboneOptions::default().with_out_indices(vec![0, -1]))?;
/// assert_eq!(backbone.out_features(), ["stem", "stage3"]);
/// let pixels = candle::Tensor::zeros((1, 3, 28, 28), candle::DType::F32, &candle::Device::Cpu)?;
/// let maps = backbone.forward(&pixels)?.feature_maps;
/// assert_eq!(maps[1].dims(), &[1, 32, 7, 7]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Backbone<M> {
    model: M,
    stage_names: Vec<String>,
    out_features: Vec<String>,
    out_indices: Vec<i64>,
    apply_layernorm: bool,
    reshape_hidden_states: bool,
}

impl Backbone<DinoModel> {
    /// Loads a model of either generation (Hub id, folder or bare `.pth`) as a backbone with
    /// `opts`, with its image processor.
    pub fn from_pretrained(
        source: &str,
        opts: &BackboneOptions,
        load: &LoadOptions,
    ) -> Result<Pretrained<Self>> {
        let pretrained = DinoModel::from_pretrained(source, load)?;
        let backbone = Self::new(pretrained.model, opts)?;
        Ok(Pretrained {
            model: backbone,
            processor: pretrained.processor,
            files: pretrained.files,
        })
    }
}

impl<M: Vit> Backbone<M> {
    /// Wraps `model` with `opts`; where `opts` leaves a field `None`, the model's stored settings
    /// ([`Vit::backbone_defaults`]) apply, then HF's defaults (last stage, norm, reshape).
    pub fn new(model: M, opts: &BackboneOptions) -> Result<Self> {
        let defaults = model.backbone_defaults();
        let stage_names = model.info().stage_names();
        let (features, indices) = if opts.out_features.is_some() || opts.out_indices.is_some() {
            (opts.out_features.clone(), opts.out_indices.clone())
        } else {
            (defaults.out_features.clone(), defaults.out_indices.clone())
        };
        let (out_features, out_indices) =
            align_out_stages(&stage_names, features.as_deref(), indices.as_deref())?;
        Ok(Self {
            apply_layernorm: opts
                .apply_layernorm
                .or(defaults.apply_layernorm)
                .unwrap_or(true),
            reshape_hidden_states: opts
                .reshape_hidden_states
                .or(defaults.reshape_hidden_states)
                .unwrap_or(true),
            model,
            stage_names,
            out_features,
            out_indices,
        })
    }

    /// The model behind the backbone.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// `["stem", "stage1", …]`.
    pub fn stage_names(&self) -> &[String] {
        &self.stage_names
    }

    /// The selected stages by name.
    pub fn out_features(&self) -> &[String] {
        &self.out_features
    }

    /// The selected stages by index, as given (negative indices kept).
    pub fn out_indices(&self) -> &[i64] {
        &self.out_indices
    }

    /// Channels of each returned map (`D` each).
    pub fn channels(&self) -> Vec<usize> {
        vec![self.model.info().hidden_size; self.out_features.len()]
    }

    /// Feature maps of `pixels` `(B, C, H, W)`.
    pub fn forward(&self, pixels: &Tensor) -> Result<BackboneOutput> {
        self.forward_with(pixels, &BackboneForwardOptions::default())
    }

    /// Feature maps, plus hidden states, attentions and CLS tokens when asked for.
    pub fn forward_with(
        &self,
        pixels: &Tensor,
        opts: &BackboneForwardOptions,
    ) -> Result<BackboneOutput> {
        let info = self.model.info();
        let l = self.stage_names.len() - 1;
        let mut keep = vec![opts.output_hidden_states; l + 1];
        let selected: Vec<usize> = self
            .out_features
            .iter()
            .filter_map(|f| self.stage_names.iter().position(|s| s == f))
            .collect();
        for &s in &selected {
            keep[s] = true;
        }
        let last_needed = if opts.output_hidden_states || opts.output_attentions {
            l
        } else {
            selected.iter().copied().max().unwrap_or(l)
        };
        let request = EncodeRequest {
            keep,
            attentions: opts.output_attentions,
            blocks: last_needed,
            ..EncodeRequest::default()
        };
        let enc = self.model.encode(pixels, &request)?;
        let mut feature_maps = Vec::with_capacity(selected.len());
        let mut cls_tokens = Vec::with_capacity(selected.len());
        for (stage, hs) in enc.hidden.iter().enumerate() {
            if !selected.contains(&stage) {
                continue;
            }
            let mut hs = hs
                .clone()
                .ok_or_else(|| Error::option("out_features", "stage was not computed"))?;
            if self.apply_layernorm || (stage == l && info.always_norm_last_stage) {
                hs = self.model.final_norm(&hs)?;
            }
            if opts.return_class_token {
                cls_tokens.push(hs.narrow(1, 0, 1)?.squeeze(1)?);
            }
            if self.reshape_hidden_states {
                hs = info.patch_tokens(&hs, enc.grid, TokenLayout::Nchw)?;
            } else if !info.keep_prefix_unreshaped {
                hs = info.patch_tokens(&hs, enc.grid, TokenLayout::Nlc)?;
            }
            feature_maps.push(hs);
        }
        Ok(BackboneOutput {
            feature_maps,
            cls_tokens: opts.return_class_token.then_some(cls_tokens),
            hidden_states: opts
                .output_hidden_states
                .then(|| enc.hidden.into_iter().flatten().collect()),
            attentions: opts.output_attentions.then_some(enc.attentions),
        })
    }
}
