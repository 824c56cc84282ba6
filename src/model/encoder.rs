//! The encoder both generations share: HF's `Dinov2WithRegistersEncoder` + final `layernorm` and
//! `DINOv3ViTEncoder` + final `norm`, around a generation's token embedding. One pass
//! ([`Encoder::encode`]) checks the input, refuses it when its working set cannot fit in memory,
//! embeds it, runs the blocks (through the fused f32 CPU kernels or candle's ops) with DINOv3's
//! RoPE table when the model has one, and keeps what the [`EncodeRequest`] asks for.
//!
//! Shapes: pixels `(B, C, H, W)`; tokens `(B, 1 + R + h·w, D)`, `[CLS, registers, patches]`;
//! attention probabilities `(B, H, T, T)`.

use std::path::PathBuf;

use candle::{DType, Device, Tensor};
use dinoreg_heads::Scope;

use crate::model::backbone::BackboneOptions;
use crate::model::kernels::attention::{pack_len, AttentionShape};
use crate::model::kernels::memory;
use crate::model::kernels::profile::{time, Part};
use crate::model::layers::fused::{wide_width, Workspace};
use crate::model::layers::{Block, BlockOptions, LayerNorm};
use crate::model::rope::{Rope, RopeTable};
use crate::model::vit::{EncodeRequest, Encoded, VitInfo};
use crate::{Error, Result};

/// A generation's token embedding: pixels to `[CLS, registers, patches]`.
pub(crate) trait TokenEmbedding: Send + Sync + std::fmt::Debug {
    /// The patch grid `(h, w)` of `pixels`, or an error for a bad shape.
    fn grid(&self, pixels: &Tensor) -> Result<(usize, usize)>;

    /// The tokens `(B, 1 + R + h·w, D)` of `pixels`; `bool_masked_pos` `(B, h·w)` replaces the
    /// masked patches by the mask token.
    fn forward(&self, pixels: &Tensor, bool_masked_pos: Option<&Tensor>) -> Result<Tensor>;
}

/// The parts of an encoder, built by a generation's loader.
#[derive(Debug)]
pub(crate) struct EncoderParts<E> {
    /// The token embedding.
    pub embeddings: E,
    /// The blocks, in order.
    pub blocks: Vec<Block>,
    /// The final norm.
    pub norm: LayerNorm,
    /// DINOv3's rotary embedding; `None` for a model with a position table.
    pub rope: Option<Rope>,
    /// The architecture facts.
    pub info: VitInfo,
    /// The HF backbone settings of the config.
    pub backbone_defaults: BackboneOptions,
}

/// Loads the `num_layers` blocks `layers.{i}` with `load`, refusing a checkpoint that holds one
/// more (`layers.{num_layers}.norm1.weight`): a config that contradicts its weights.
pub(crate) fn load_blocks(
    layers: &Scope<'_>,
    num_layers: usize,
    load: impl Fn(&Scope<'_>) -> Result<Block>,
) -> Result<Vec<Block>> {
    let extra = format!("{num_layers}.norm1.weight");
    if layers.contains(&extra) {
        return Err(Error::Config {
            path: PathBuf::from("<config>"),
            reason: format!(
                "num_hidden_layers is {num_layers} but the checkpoint {} has more layers (found `{}`)",
                layers.store().source_name(),
                layers.path(&extra)
            ),
        });
    }
    (0..num_layers).map(|i| load(&layers.pp(i))).collect()
}

/// Embeddings, blocks and final norm, on one device in one dtype.
#[derive(Debug)]
pub(crate) struct Encoder<E> {
    parts: EncoderParts<E>,
    device: Device,
    dtype: DType,
    /// Whether passes take the fused f32 CPU path.
    fused: bool,
}

impl<E: TokenEmbedding> Encoder<E> {
    /// An encoder of `parts` whose weights live on `device` in `dtype`; `fused` lets f32 CPU passes
    /// take the fused kernels.
    pub fn new(parts: EncoderParts<E>, device: &Device, dtype: DType, fused: bool) -> Self {
        Self {
            parts,
            fused: fused && device.is_cpu() && dtype == DType::F32,
            device: device.clone(),
            dtype,
        }
    }

    /// The token embedding.
    pub fn embeddings(&self) -> &E {
        &self.parts.embeddings
    }

    /// The rotary embedding, when the model has one.
    pub fn rope(&self) -> Option<&Rope> {
        self.parts.rope.as_ref()
    }

    /// The architecture facts.
    pub fn info(&self) -> &VitInfo {
        &self.parts.info
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The HF backbone settings of the config.
    pub fn backbone_defaults(&self) -> BackboneOptions {
        self.parts.backbone_defaults.clone()
    }

    /// The final norm of `x` `(…, D)`.
    pub fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        self.parts.norm.forward(x)
    }

    /// Checks and moves `pixels` to the model's device and dtype.
    fn prepare(&self, pixels: &Tensor) -> Result<Tensor> {
        self.parts.embeddings.grid(pixels)?;
        Ok(pixels.to_device(&self.device)?.to_dtype(self.dtype)?)
    }

    fn head_mask_for(&self, mask: &Tensor) -> Result<Tensor> {
        let (l, h) = (self.parts.blocks.len(), self.parts.info.num_attention_heads);
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

    /// Runs one encoder pass over `pixels` as `plan` asks.
    pub fn encode(&self, pixels: &Tensor, plan: &EncodeRequest<'_>) -> Result<Encoded> {
        let pixels = self.prepare(pixels)?;
        let grid = self.parts.embeddings.grid(&pixels)?;
        self.check_memory(&pixels, grid, plan)?;
        let mask = plan
            .bool_masked_pos
            .map(|m| m.to_device(&self.device))
            .transpose()?;
        let x = time(Part::Embeddings, || {
            self.parts.embeddings.forward(&pixels, mask.as_ref())
        })?;
        let rope = self
            .parts
            .rope
            .as_ref()
            .map(|r| r.table(grid))
            .transpose()?;
        let head_mask = plan.head_mask.map(|m| self.head_mask_for(m)).transpose()?;
        let mut enc = Encoded {
            hidden: vec![None; self.parts.blocks.len() + 1],
            last: x.clone(),
            attentions: Vec::new(),
            qkv: None,
            grid,
        };
        let keep = |i: usize| plan.keep.get(i).copied().unwrap_or(false);
        if keep(0) {
            enc.hidden[0] = Some(x.clone());
        }
        let blocks = self.parts.blocks.iter().take(plan.blocks).enumerate();
        if self.fused {
            let mut ws = Workspace::new(&x, self.ffn_width())?;
            drop(x);
            for (i, block) in blocks {
                let layer_mask = head_mask.as_ref().map(|m| m.get(i)).transpose()?;
                let opts = block_options(plan, i, layer_mask.as_ref(), rope.as_deref());
                let out = block.forward_fused(&mut ws, opts)?;
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
            let opts = block_options(plan, i, layer_mask.as_ref(), rope.as_deref());
            let out = block.forward(&x, opts)?;
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

    /// The width of the feed-forward hidden layer as the fused path stores it (2h when gated).
    fn ffn_width(&self) -> usize {
        self.parts.blocks.first().map_or(0, |b| b.parts().3.width())
    }

    /// Bytes a pass over `batch` images of `tokens` tokens needs besides the weights (an upper
    /// estimate: buffers, transient copies, the outputs kept by `plan`).
    pub fn working_set(&self, batch: usize, tokens: usize, plan: &EncodeRequest<'_>) -> u64 {
        let info = &self.parts.info;
        let (n, d, h) = (batch * tokens, info.hidden_size, info.num_attention_heads);
        let patches = n * info.num_channels * info.patch_size * info.patch_size;
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
        let Some(available) = memory::available_memory() else {
            return Ok(());
        };
        let info = &self.parts.info;
        let (b, _, height, width) = pixels.dims4()?;
        let tokens = info.prefix_tokens() + grid.0 * grid.1;
        let need = self.working_set(b, tokens, plan);
        if need <= available {
            return Ok(());
        }
        Err(Error::input(
            "pixel_values",
            format!(
                "{b} image(s) of {height}x{width} ({tokens} tokens of width {}, {} heads{}) need about {} of \
                 working memory but only {} is available; use a smaller batch or image",
                info.hidden_size,
                info.num_attention_heads,
                if plan.attentions { ", with attention maps" } else { "" },
                memory::human(need),
                memory::human(available)
            ),
        ))
    }
}

/// The options of block `i` of a pass with its head mask and RoPE table.
fn block_options<'m>(
    plan: &EncodeRequest<'_>,
    i: usize,
    head_mask: Option<&'m Tensor>,
    rope: Option<&'m RopeTable>,
) -> BlockOptions<'m> {
    BlockOptions {
        head_mask,
        attention: plan.attentions,
        qkv: plan.qkv_block == Some(i),
        rope,
    }
}

/// Implements [`Vit`](crate::Vit) for a model type holding an `encoder: Encoder<_>` field; every
/// method forwards to the encoder.
macro_rules! vit_via_encoder {
    ($model:ty) => {
        impl $crate::model::vit::Vit for $model {
            fn info(&self) -> &$crate::model::vit::VitInfo {
                self.encoder.info()
            }

            fn device(&self) -> &candle::Device {
                self.encoder.device()
            }

            fn dtype(&self) -> candle::DType {
                self.encoder.dtype()
            }

            fn encode(
                &self,
                pixels: &candle::Tensor,
                request: &$crate::model::vit::EncodeRequest<'_>,
            ) -> $crate::Result<$crate::model::vit::Encoded> {
                self.encoder.encode(pixels, request)
            }

            fn final_norm(&self, x: &candle::Tensor) -> $crate::Result<candle::Tensor> {
                self.encoder.final_norm(x)
            }

            fn backbone_defaults(&self) -> $crate::model::backbone::BackboneOptions {
                self.encoder.backbone_defaults()
            }
        }
    };
}

pub(crate) use vit_via_encoder;
