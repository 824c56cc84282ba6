//! The DINOv2-with-registers encoder: HF `Dinov2WithRegistersModel` (and `Dinov2Model`).
//! Embeddings → L pre-norm blocks → final LayerNorm on every token; `pooler_output` is the normed CLS.
//!
//! Shapes: pixels `(B, C, H, W)`; `last_hidden_state` `(B, 1 + R + h·w, D)`; `pooler_output`
//! `(B, D)`; `hidden_states` L+1 tensors `(B, 1 + R + h·w, D)` before the final norm (index 0 is the
//! embedding output, "stem"); `attentions` L tensors `(B, H, T, T)`.

use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor};
use dinoreg_heads::Scope;

use crate::model::config::Dinov2Config;
use crate::model::embeddings::Embeddings;
use crate::model::kernels::attention::{pack_len, AttentionShape};
use crate::model::kernels::memory;
use crate::model::kernels::profile::{time, Part};
use crate::model::layers::fused::{wide_width, Workspace};
use crate::model::layers::{Block, BlockOptions, LayerNorm, Qkv};
use crate::model::weights::{open_backbone, BackboneWeights};
use crate::{Error, Result};

/// Where and in which precision a model runs.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The device the weights are loaded on.
    pub device: Device,
    /// The dtype of the weights and activations (f32 on CPU; f16/bf16 checkpoints are converted).
    pub dtype: DType,
    /// Run f32 CPU passes through the fused kernels (default); `false` forces the generic candle
    /// ops, which compute the same function more slowly (kept for comparison and debugging).
    pub fused_kernels: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            dtype: DType::F32,
            fused_kernels: true,
        }
    }
}

impl LoadOptions {
    /// Sets the device.
    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Sets the dtype.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Sets whether f32 CPU passes use the fused kernels.
    pub fn with_fused_kernels(mut self, yes: bool) -> Self {
        self.fused_kernels = yes;
        self
    }
}

/// Optional inputs and outputs of [`Dinov2Model::forward_with`], mirroring HF's forward signature.
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    /// Also return the L+1 hidden states.
    pub output_hidden_states: bool,
    /// Also return the L attention probability tensors.
    pub output_attentions: bool,
    /// `(B, h·w)`, non-zero where a patch is replaced by the mask token.
    pub bool_masked_pos: Option<Tensor>,
    /// Multipliers of the attention probabilities: `(H,)` for every layer or `(L, H)` per layer.
    pub head_mask: Option<Tensor>,
    /// Also return the q, k, v of this block (0-based; negative counts from the end).
    pub output_qkv: Option<isize>,
}

impl ForwardOptions {
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

    /// Sets the mask of patches replaced by the mask token.
    pub fn with_bool_masked_pos(mut self, mask: Tensor) -> Self {
        self.bool_masked_pos = Some(mask);
        self
    }

    /// Sets the head mask.
    pub fn with_head_mask(mut self, mask: Tensor) -> Self {
        self.head_mask = Some(mask);
        self
    }

    /// Sets the block whose q, k, v are returned.
    pub fn with_qkv_of_block(mut self, block: isize) -> Self {
        self.output_qkv = Some(block);
        self
    }
}

/// What [`Dinov2Model::forward_with`] returns.
#[derive(Debug, Clone)]
pub struct ModelOutput {
    /// `(B, 1 + R + h·w, D)` after the final LayerNorm.
    pub last_hidden_state: Tensor,
    /// The normed CLS token `(B, D)`.
    pub pooler_output: Tensor,
    /// L+1 hidden states before the final norm, when requested.
    pub hidden_states: Option<Vec<Tensor>>,
    /// L attention probability tensors `(B, H, T, T)`, when requested.
    pub attentions: Option<Vec<Tensor>>,
    /// q, k, v `(B, T, D)` of the requested block.
    pub qkv: Option<Qkv>,
    /// The patch grid `(h, w)`.
    pub grid: (usize, usize),
}

/// The internal plan of one encoder pass.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    /// Which of the L+1 hidden states to keep.
    pub keep: Vec<bool>,
    pub attentions: bool,
    pub qkv_block: Option<usize>,
    pub head_mask: Option<&'a Tensor>,
    pub bool_masked_pos: Option<&'a Tensor>,
    /// Number of blocks to run (L unless stopping early).
    pub blocks: usize,
}

impl Plan<'_> {
    /// The options of block `i` with its head mask.
    fn block_options<'m>(&self, i: usize, head_mask: Option<&'m Tensor>) -> BlockOptions<'m> {
        BlockOptions {
            head_mask,
            attention: self.attentions,
            qkv: self.qkv_block == Some(i),
        }
    }
}

/// What one encoder pass produced.
#[derive(Debug)]
pub(crate) struct Encoded {
    /// L+1 entries, `Some` where kept.
    pub hidden: Vec<Option<Tensor>>,
    /// The output of the last block run.
    pub last: Tensor,
    pub attentions: Vec<Tensor>,
    pub qkv: Option<Qkv>,
    pub grid: (usize, usize),
}

/// The encoder with its weights.
#[derive(Debug)]
pub struct Dinov2Model {
    config: Dinov2Config,
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
    pub fn load(config: impl AsRef<Path>, weights: &[PathBuf], opts: &LoadOptions) -> Result<Self> {
        let config = Dinov2Config::from_file(config)?;
        let weights = open_backbone(weights)?;
        Self::from_weights(config, &weights, opts)
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
        Ok(Self {
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

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The final LayerNorm, applied to `x` `(…, D)`.
    pub fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        self.layernorm.forward(x)
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

    /// Maps a block index (negative counts from the end) to `0..L`.
    pub fn block_index(&self, index: isize) -> Result<usize> {
        let l = self.blocks.len() as isize;
        let i = if index < 0 { l + index } else { index };
        if !(0..l).contains(&i) {
            return Err(Error::option(
                "layer index",
                format!("block {index} is out of range for a model with {l} blocks (use 0..{l} or -{l}..-1)"),
            ));
        }
        Ok(i as usize)
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
    pub(crate) fn encode(&self, pixels: &Tensor, plan: &Plan<'_>) -> Result<Encoded> {
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
                    block.forward_fused(&mut ws, plan.block_options(i, layer_mask.as_ref()))?;
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
            let out = block.forward(&x, plan.block_options(i, layer_mask.as_ref()))?;
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
    pub(crate) fn working_set(&self, batch: usize, tokens: usize, plan: &Plan<'_>) -> u64 {
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
    fn check_memory(&self, pixels: &Tensor, grid: (usize, usize), plan: &Plan<'_>) -> Result<()> {
        if !self.device.is_cpu() {
            return Ok(());
        }
        let Some(available) = memory::available_memory() else {
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

    /// `last_hidden_state` and `pooler_output` of `pixels` `(B, C, H, W)`.
    pub fn forward(&self, pixels: &Tensor) -> Result<ModelOutput> {
        self.forward_with(pixels, &ForwardOptions::default())
    }

    /// The forward pass with HF's optional inputs and outputs.
    pub fn forward_with(&self, pixels: &Tensor, opts: &ForwardOptions) -> Result<ModelOutput> {
        let l = self.blocks.len();
        let qkv_block = opts.output_qkv.map(|b| self.block_index(b)).transpose()?;
        let plan = Plan {
            keep: vec![opts.output_hidden_states; l + 1],
            attentions: opts.output_attentions,
            qkv_block,
            head_mask: opts.head_mask.as_ref(),
            bool_masked_pos: opts.bool_masked_pos.as_ref(),
            blocks: l,
        };
        let enc = self.encode(pixels, &plan)?;
        let last_hidden_state = self.layernorm.forward(&enc.last)?;
        let pooler_output = last_hidden_state.narrow(1, 0, 1)?.squeeze(1)?;
        Ok(ModelOutput {
            last_hidden_state,
            pooler_output,
            hidden_states: opts
                .output_hidden_states
                .then(|| enc.hidden.into_iter().flatten().collect()),
            attentions: opts.output_attentions.then_some(enc.attentions),
            qkv: enc.qkv,
            grid: enc.grid,
        })
    }
}
