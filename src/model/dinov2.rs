//! The DINOv2-with-registers encoder: HF `Dinov2WithRegistersModel` (and `Dinov2Model`).
//! Embeddings → L pre-norm blocks → final LayerNorm on every token; `pooler_output` is the normed CLS.
//!
//! Shapes: pixels `(B, C, H, W)`; `last_hidden_state` `(B, 1 + R + h·w, D)`; `pooler_output`
//! `(B, D)`; `hidden_states` L+1 tensors `(B, 1 + R + h·w, D)` before the final norm (index 0 is the
//! embedding output, "stem"); `attentions` L tensors `(B, H, T, T)`.

use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor};
use dinoreg_heads::Scope;

use crate::model::backbone::BackboneOptions;
use crate::model::config::Dinov2Config;
use crate::model::embeddings::Embeddings;
use crate::model::kernels::attention::{pack_len, AttentionShape};
use crate::model::kernels::memory;
use crate::model::kernels::profile::{time, Part};
use crate::model::layers::fused::{wide_width, Workspace};
use crate::model::layers::{Block, BlockOptions, LayerNorm};
use crate::model::load::LoadOptions;
use crate::model::pretrained::{DinoModel, ModelSource, Pretrained};
use crate::model::vit::{EncodeRequest, Encoded, Family, Vit, VitInfo};
use crate::model::weights::{open_backbone, BackboneWeights};
use crate::{Error, Result};

/// The encoder with its weights.
#[derive(Debug)]
pub struct Dinov2Model {
    config: Dinov2Config,
    info: VitInfo,
    embeddings: Embeddings,
    blocks: Vec<Block>,
    layernorm: LayerNorm,
    device: Device,
    dtype: DType,
    /// Whether passes take the fused f32 CPU path.
    fused: bool,
}

impl Dinov2Model {
    /// Loads a model from a `config.json` and its checkpoint file(s).
    pub fn load(
        config: impl AsRef<Path>,
        weights: &[impl AsRef<Path>],
        opts: &LoadOptions,
    ) -> Result<Self> {
        let config = Dinov2Config::from_file(config)?;
        let weights = open_backbone(weights)?;
        Self::from_weights(config, &weights, opts)
    }

    /// Loads a DINOv2 model from a Hub id (downloaded once into the Hugging Face cache), a local
    /// folder or a bare original `.pth`, with the image processor its checkpoint was made for.
    ///
    /// ```
    /// # fn main() -> dinoreg::Result<()> {
    /// use dinoreg::{Dinov2Model, LoadOptions, Vit};
    /// let pretrained = Dinov2Model::from_pretrained("tests/fixtures/model/reg4", &LoadOptions::default())?;
    /// let pixels = pretrained.processor.pixels("examples/images/chelsea.png", &candle::Device::Cpu)?;
    /// let out = pretrained.model.forward(&pixels)?;
    /// assert_eq!(out.pooler_output.dims(), &[1, 32]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_pretrained(source: &str, opts: &LoadOptions) -> Result<Pretrained<Self>> {
        let source = ModelSource::resolve(source)?;
        #[allow(unreachable_patterns)]
        match source.load(opts)? {
            DinoModel::Dinov2(model) => Ok(Pretrained {
                model,
                processor: source.processor,
                files: source.files,
            }),
            _ => Err(Error::Config {
                path: source.files.config.clone(),
                reason: "not a DINOv2 model; load it with DinoModel::from_pretrained".into(),
            }),
        }
    }

    /// Builds the model from a config and an opened checkpoint.
    pub fn from_weights(
        config: Dinov2Config,
        weights: &BackboneWeights,
        opts: &LoadOptions,
    ) -> Result<Self> {
        let scope = weights
            .store
            .scope(&weights.prefix, &opts.device)
            .with_dtype(opts.dtype);
        Self::build(config, &scope, opts.fused_kernels)
    }

    /// Builds the model from a config and a scope holding `embeddings.*`, `encoder.*`, `layernorm.*`.
    pub fn from_scope(config: Dinov2Config, scope: &Scope<'_>) -> Result<Self> {
        Self::build(config, scope, true)
    }

    /// Builds the model; `fused` lets f32 CPU passes take the fused kernels.
    fn build(config: Dinov2Config, scope: &Scope<'_>, fused: bool) -> Result<Self> {
        config.validate()?;
        let extra = format!("encoder.layer.{}.norm1.weight", config.num_hidden_layers);
        if scope.contains(&extra) {
            return Err(Error::Config {
                path: PathBuf::from("<config>"),
                reason: format!(
                    "num_hidden_layers is {} but the checkpoint {} has more layers (found `{}`)",
                    config.num_hidden_layers,
                    scope.store().source_name(),
                    scope.path(&extra)
                ),
            });
        }
        let embeddings = Embeddings::load(&scope.pp("embeddings"), &config)?;
        let layers = scope.pp("encoder").pp("layer");
        let blocks = (0..config.num_hidden_layers)
            .map(|i| Block::load(&layers.pp(i), &config))
            .collect::<Result<Vec<_>>>()?;
        let layernorm = LayerNorm::load(
            &scope.pp("layernorm"),
            config.hidden_size,
            config.layer_norm_eps,
        )?;
        let info = VitInfo::new(
            Family::Dinov2,
            config.patch_size,
            config.hidden_size,
            config.num_hidden_layers,
            config.num_attention_heads,
        )
        .with_register_tokens(config.num_register_tokens)
        .with_channels(config.num_channels);
        Ok(Self {
            info,
            config,
            embeddings,
            blocks,
            layernorm,
            fused: fused && scope.device().is_cpu() && scope.dtype() == DType::F32,
            device: scope.device().clone(),
            dtype: scope.dtype(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Dinov2Config {
        &self.config
    }

    /// The embedding layer.
    pub fn embeddings(&self) -> &Embeddings {
        &self.embeddings
    }

    /// Checks and moves `pixels` to the model's device and dtype.
    pub(crate) fn prepare(&self, pixels: &Tensor) -> Result<Tensor> {
        self.embeddings.grid(pixels)?;
        Ok(pixels.to_device(&self.device)?.to_dtype(self.dtype)?)
    }

    fn head_mask_for(&self, mask: &Tensor) -> Result<Tensor> {
        let (l, h) = (self.blocks.len(), self.config.num_attention_heads);
        let mask = mask.to_device(&self.device)?.to_dtype(self.dtype)?;
        match mask.dims() {
            [n] if *n == h => Ok(mask.unsqueeze(0)?.broadcast_as((l, h))?.contiguous()?),
            [a, b] if *a == l && *b == h => Ok(mask),
            other => Err(Error::input(
                "head_mask",
                format!("expected shape [{h}] or [{l}, {h}], got {other:?}"),
            )),
        }
    }

    /// Runs the encoder according to `plan`.
    fn encode_pass(&self, pixels: &Tensor, plan: &EncodeRequest<'_>) -> Result<Encoded> {
        let pixels = self.prepare(pixels)?;
        let grid = self.embeddings.grid(&pixels)?;
        self.check_memory(&pixels, grid, plan)?;
        let mask = plan
            .bool_masked_pos
            .map(|m| m.to_device(&self.device))
            .transpose()?;
        let x = time(Part::Embeddings, || {
            self.embeddings.forward(&pixels, mask.as_ref())
        })?;
        let head_mask = plan.head_mask.map(|m| self.head_mask_for(m)).transpose()?;
        let mut enc = Encoded {
            hidden: vec![None; self.blocks.len() + 1],
            last: x.clone(),
            attentions: Vec::new(),
            qkv: None,
            grid,
        };
        let keep = |i: usize| plan.keep.get(i).copied().unwrap_or(false);
        if keep(0) {
            enc.hidden[0] = Some(x.clone());
        }
        let blocks = self.blocks.iter().take(plan.blocks).enumerate();
        if self.fused {
            let mut ws = Workspace::new(&x, self.ffn_width())?;
            drop(x);
            for (i, block) in blocks {
                let layer_mask = head_mask.as_ref().map(|m| m.get(i)).transpose()?;
                let out =
                    block.forward_fused(&mut ws, block_options(plan, i, layer_mask.as_ref()))?;
                enc.attentions.extend(out.attention);
                enc.qkv = out.qkv.or(enc.qkv);
                if keep(i + 1) {
                    enc.hidden[i + 1] = Some(time(Part::Other, || ws.hidden())?);
                }
            }
            enc.last = time(Part::Other, || ws.into_hidden())?;
            return Ok(enc);
        }
        let mut x = x;
        for (i, block) in blocks {
            let layer_mask = head_mask.as_ref().map(|m| m.get(i)).transpose()?;
            let out = block.forward(&x, block_options(plan, i, layer_mask.as_ref()))?;
            x = out.hidden;
            enc.attentions.extend(out.attention);
            enc.qkv = out.qkv.or(enc.qkv);
            if keep(i + 1) {
                enc.hidden[i + 1] = Some(x.clone());
            }
        }
        enc.last = x;
        Ok(enc)
    }

    /// The width of the feed-forward hidden layer as the fused path stores it (2h for SwiGLU).
    fn ffn_width(&self) -> usize {
        if self.config.use_swiglu_ffn {
            2 * self.config.swiglu_hidden_size()
        } else {
            self.config.mlp_hidden_size()
        }
    }

    /// Bytes a pass over `batch` images of `tokens` tokens needs besides the weights (an upper
    /// estimate: buffers, transient copies, the outputs kept by `plan`).
    pub(crate) fn working_set(&self, batch: usize, tokens: usize, plan: &EncodeRequest<'_>) -> u64 {
        let c = &self.config;
        let (n, d, h) = (batch * tokens, c.hidden_size, c.num_attention_heads);
        let patches = n * c.num_channels * c.patch_size * c.patch_size;
        let scores = batch * h * tokens * tokens;
        let floats = if self.fused {
            let threads = rayon::current_num_threads().max(1);
            let shape = AttentionShape {
                batch,
                tokens,
                heads: h,
                head_dim: d / h.max(1),
            };
            2 * patches
                + 6 * n * d
                + n * wide_width(d, self.ffn_width())
                + pack_len(&shape)
                + threads * shape.scratch_per_thread(threads)
        } else {
            2 * patches + 12 * n * d + 2 * n * self.ffn_width() + 3 * scores
        };
        let kept = plan.keep.iter().filter(|k| **k).count() * n * d;
        let attentions = if plan.attentions {
            plan.blocks * scores
        } else {
            0
        };
        ((floats + kept + attentions) * self.dtype.size_in_bytes()) as u64
    }

    /// Refuses a CPU pass whose working set exceeds the memory available now.
    fn check_memory(
        &self,
        pixels: &Tensor,
        grid: (usize, usize),
        plan: &EncodeRequest<'_>,
    ) -> Result<()> {
        if !self.device.is_cpu() {
            return Ok(());
        }
        let Some(available) = memory::available_bytes() else {
            return Ok(());
        };
        let (b, _, height, width) = pixels.dims4()?;
        let tokens = 1 + self.config.num_register_tokens + grid.0 * grid.1;
        let need = self.working_set(b, tokens, plan);
        if need <= available {
            return Ok(());
        }
        Err(Error::input(
            "pixel_values",
            format!(
                "{b} image(s) of {height}x{width} ({tokens} tokens of width {}, {} heads{}) need about {} of \
                 working memory but only {} is available; use a smaller batch or image",
                self.config.hidden_size,
                self.config.num_attention_heads,
                if plan.attentions { ", with attention maps" } else { "" },
                memory::human(need),
                memory::human(available)
            ),
        ))
    }
}

/// The options of block `i` of a pass with its head mask.
fn block_options<'m>(
    plan: &EncodeRequest<'_>,
    i: usize,
    head_mask: Option<&'m Tensor>,
) -> BlockOptions<'m> {
    BlockOptions {
        head_mask,
        attention: plan.attentions,
        qkv: plan.qkv_block == Some(i),
    }
}

impl Vit for Dinov2Model {
    fn info(&self) -> &VitInfo {
        &self.info
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn encode(&self, pixels: &Tensor, request: &EncodeRequest<'_>) -> Result<Encoded> {
        self.encode_pass(pixels, request)
    }

    fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        self.layernorm.forward(x)
    }

    fn backbone_defaults(&self) -> BackboneOptions {
        let c = &self.config;
        BackboneOptions {
            out_features: c.out_features.clone(),
            out_indices: c.out_indices.clone(),
            apply_layernorm: Some(c.apply_layernorm),
            reshape_hidden_states: Some(c.reshape_hidden_states),
        }
    }
}
