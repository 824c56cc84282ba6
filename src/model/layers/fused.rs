//! The fused f32 CPU forward of a [`Block`], on plain buffers reused by every block of a pass:
//!
//! 1. `normed = LN1(x + pending)`: the previous block's last bias is added here, not in a pass
//!    of its own.
//! 2. `qkv = normed W_qkv + b` (the bias added by each thread to its columns after their product); with
//!    DINOv3's RoPE, the q and k of the patch tokens are then rotated in place, in one pass.
//! 3. `ctx = attention(qkv)`, per head and block of query rows, into the `normed` buffer.
//! 4. `x += ctx W_o'` (layer scale folded into `W_o'`), GEMM accumulating into the residual.
//! 5. `normed = LN2(x + b_o')`.
//! 6. `hidden = act(normed W_1 + b_1)` (bias and activation applied by each thread to its share
//!    of the columns right after their product), or the gated `act(gate) · up` (SwiGLU for SiLU).
//! 7. `x += hidden W_2'`, leaving `b_2'` pending for the next norm.
//!
//! Shapes: residual `x` `(B·T, D)`; `normed` `(B·T, D)`; `wide` `(B·T, max(3D, ffn width))`.

use candle::{Device, Tensor};

use super::{Block, BlockOptions, FeedForwardKind, Qkv};
use crate::model::config::HiddenAct;
use crate::model::kernels::attention::{attention, AttentionParams, AttentionShape};
use crate::model::kernels::gated::gated_act;
use crate::model::kernels::matmul::{matmul, matmul_then, Columns, Layout, Product};
use crate::model::kernels::profile::{time, Part};
use crate::model::kernels::rope::{rotate_qk, RopeShape};
use crate::model::kernels::rows;
use crate::model::kernels::vector::{self, Act};
use crate::model::kernels::weights::f32_slice;
use crate::{Error, Result};

/// The buffers of one fused forward pass.
#[derive(Debug)]
pub(crate) struct Workspace {
    /// The residual stream `(B·T, D)` (without `pending`).
    x: Vec<f32>,
    /// Norm output, then attention context `(B·T, D)`.
    normed: Vec<f32>,
    /// The q/k/v projection, then the feed-forward hidden layer.
    wide: Vec<f32>,
    /// A bias `(D,)` still to be added to every row of `x`.
    pending: Option<Vec<f32>>,
    /// Attention scratch (packed keys and values).
    pack: Vec<f32>,
    batch: usize,
    tokens: usize,
    dim: usize,
}

/// Floats per token of the `wide` buffer for blocks of width `dim` and feed-forward width
/// `ffn_width` (h for an MLP, 2h for SwiGLU).
pub(crate) fn wide_width(dim: usize, ffn_width: usize) -> usize {
    (3 * dim).max(ffn_width)
}

impl Workspace {
    /// Takes the tokens `(B, T, D)` of an f32 CPU tensor.
    pub fn new(x: &Tensor, ffn_width: usize) -> Result<Self> {
        let (batch, tokens, dim) = x.dims3()?;
        let n = batch * tokens;
        Ok(Self {
            x: x.flatten_all()?.to_vec1::<f32>()?,
            normed: vec![0.0; n * dim],
            wide: vec![0.0; n * wide_width(dim, ffn_width)],
            pending: None,
            pack: Vec::new(),
            batch,
            tokens,
            dim,
        })
    }

    /// The residual stream as a tensor `(B, T, D)` (a copy; the pending bias added first).
    pub fn hidden(&mut self) -> Result<Tensor> {
        self.settle();
        Ok(Tensor::from_vec(
            self.x.clone(),
            (self.batch, self.tokens, self.dim),
            &Device::Cpu,
        )?)
    }

    /// The residual stream as a tensor `(B, T, D)`, consuming the workspace.
    pub fn into_hidden(mut self) -> Result<Tensor> {
        self.settle();
        Ok(Tensor::from_vec(
            self.x,
            (self.batch, self.tokens, self.dim),
            &Device::Cpu,
        )?)
    }

    fn settle(&mut self) {
        if let Some(p) = self.pending.take() {
            rows::add_rows(&mut self.x, &p);
        }
    }
}

fn slice(t: &Tensor) -> Result<impl std::ops::Deref<Target = [f32]> + '_> {
    f32_slice(t).ok_or_else(|| {
        Error::input(
            "weights",
            "the fused CPU path needs contiguous f32 CPU weights",
        )
    })
}

fn act(a: HiddenAct) -> Act {
    match a {
        HiddenAct::Gelu => Act::GeluErf,
        HiddenAct::GeluTanh => Act::GeluTanh,
        HiddenAct::Relu => Act::Relu,
        HiddenAct::Silu => Act::Silu,
    }
}

/// What the fused block returns besides the updated workspace.
#[derive(Debug, Default)]
pub(crate) struct FusedExtras {
    /// `(B, H, T, T)`, when requested.
    pub attention: Option<Tensor>,
    /// q, k, v, when requested.
    pub qkv: Option<Qkv>,
}

impl Block {
    /// Runs the block on the workspace (f32 CPU weights only).
    pub(crate) fn forward_fused(
        &self,
        ws: &mut Workspace,
        opts: BlockOptions<'_>,
    ) -> Result<FusedExtras> {
        let (norm1, attn, norm2, ffn) = self.parts();
        let (b, t, d) = (ws.batch, ws.tokens, ws.dim);
        let n = b * t;
        let heads = attn.heads();
        let mut extras = FusedExtras::default();

        // 1. LN1, with the previous block's pending bias.
        let (w1, b1) = norm1
            .slices()
            .ok_or_else(|| Error::input("norm1", "not f32 CPU"))?;
        let pending = ws.pending.take();
        time(Part::Norm, || {
            rows::layer_norm(
                &mut ws.x,
                pending.as_deref(),
                &w1,
                &b1,
                norm1.eps(),
                &mut ws.normed,
            )
        });

        // 2. q, k, v.
        let (wqkv, bqkv, wo, bo) = attn.tensors();
        let (wqkv, wo, bo) = (slice(wqkv)?, slice(wo)?, slice(bo)?);
        let qkv = &mut ws.wide[..n * 3 * d];
        let bqkv = bqkv.map(slice).transpose()?;
        time(Part::QkvProjection, || -> Result<()> {
            let (dst, lhs, rhs) = (
                Layout::row_major(n, 3 * d),
                Layout::row_major(n, d),
                Layout::row_major(d, 3 * d),
            );
            let p = Product::overwrite();
            match &bqkv {
                Some(b) => {
                    matmul_then(qkv, dst, &ws.normed, lhs, &wqkv, rhs, p, &add_bias(b, None))
                }
                None => matmul(qkv, dst, &ws.normed, lhs, &wqkv, rhs, p),
            }
            if let Some(rope) = opts.rope {
                let (cos, sin) = rope.slices();
                let shape = RopeShape {
                    tokens: t,
                    heads,
                    head_dim: d / heads,
                };
                rotate_qk(qkv, shape, cos, sin);
            }
            Ok(())
        })?;
        if opts.qkv {
            extras.qkv = Some(time(Part::Other, || split_qkv(qkv, (b, t, d)))?);
        }

        // 3. Attention into `normed` (free again).
        let mask = opts
            .head_mask
            .map(|m| {
                m.to_dtype(candle::DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()
            })
            .transpose()?;
        let mut probs = opts.attention.then(|| vec![0f32; b * heads * t * t]);
        let shape = AttentionShape {
            batch: b,
            tokens: t,
            heads,
            head_dim: d / heads,
        };
        let params = AttentionParams {
            scale: attn.scale() as f32,
            head_mask: mask.as_deref(),
        };
        time(Part::Attention, || {
            attention(
                qkv,
                shape,
                params,
                &mut ws.normed,
                probs.as_deref_mut(),
                &mut ws.pack,
            )
        });
        if let Some(p) = probs {
            extras.attention = Some(Tensor::from_vec(p, (b, heads, t, t), &Device::Cpu)?);
        }

        // 4. x += ctx W_o'.
        time(Part::OutProjection, || {
            let l = Layout::row_major(n, d);
            matmul(
                &mut ws.x,
                l,
                &ws.normed,
                l,
                &wo,
                Layout::row_major(d, d),
                Product::accumulate(),
            )
        });

        // 5. LN2 with the output projection's bias.
        let (w2, b2) = norm2
            .slices()
            .ok_or_else(|| Error::input("norm2", "not f32 CPU"))?;
        time(Part::Norm, || {
            rows::layer_norm(&mut ws.x, Some(&bo), &w2, &b2, norm2.eps(), &mut ws.normed)
        });

        // 6. The hidden layer.
        let ([wa, ba, wb, bb], h) = ffn.tensors();
        let (wa, ba, wb) = (slice(wa)?, slice(ba)?, slice(wb)?);
        let width = ba.len();
        let hidden = &mut ws.wide[..n * width];
        let (dst, lhs, rhs) = (
            Layout::row_major(n, width),
            Layout::row_major(n, d),
            Layout::row_major(d, width),
        );
        let activation = act(ffn.activation());
        match ffn.kind() {
            // Bias and activation by each thread on its columns, right after their product.
            FeedForwardKind::Mlp => time(Part::FfnIn, || {
                let after = add_bias(&ba, Some(activation));
                let p = Product::overwrite();
                matmul_then(hidden, dst, &ws.normed, lhs, &wa, rhs, p, &after)
            }),
            // The gate and its partner lie in different columns: a pass of its own.
            FeedForwardKind::Gated => {
                time(Part::FfnIn, || {
                    matmul(hidden, dst, &ws.normed, lhs, &wa, rhs, Product::overwrite())
                });
                time(Part::Activation, || gated_act(hidden, &ba, activation));
            }
        }

        // 7. x += hidden W_2', bias pending.
        time(Part::FfnOut, || {
            matmul(
                &mut ws.x,
                Layout::row_major(n, d),
                hidden,
                Layout::block(0, n, h, width),
                &wb,
                Layout::row_major(h, d),
                Product::accumulate(),
            )
        });
        ws.pending = Some(slice(bb)?.to_vec());
        Ok(extras)
    }
}

/// The epilogue of a product whose output row is `bias` wide: each block of columns gets its part
/// of `bias` added, then `act` applied when given, by the thread that computed the block.
fn add_bias(bias: &[f32], act: Option<Act>) -> impl Fn(Columns<'_>) + Sync + '_ {
    move |mut block| {
        let bias = &bias[block.first..];
        block.for_each_row(|row| {
            let bias = &bias[..row.len()];
            match act {
                Some(act) => vector::bias_act(row, bias, act),
                None => vector::add_rows(row, bias),
            }
        })
    }
}

/// Copies q, k, v `(B, T, D)` out of the fused projection `(B·T, 3D)`.
fn split_qkv(qkv: &[f32], (b, t, d): (usize, usize, usize)) -> Result<Qkv> {
    let part = |i: usize| -> Result<Tensor> {
        let data: Vec<f32> = qkv
            .chunks_exact(3 * d)
            .flat_map(|r| r[i * d..(i + 1) * d].iter().copied())
            .collect();
        Ok(Tensor::from_vec(data, (b, t, d), &Device::Cpu)?)
    };
    Ok(Qkv {
        q: part(0)?,
        k: part(1)?,
        v: part(2)?,
    })
}
