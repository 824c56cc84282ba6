//! Fused multi-head attention on f32 buffers: for each (batch, head, block of query rows),
//! `S = q kᵀ` into a scratch block `(rows, T)`, `P = softmax(scale · S) · head_mask[h]` in place,
//! `ctx = P v` written straight into the head's columns of the `(B·T, D)` context. q, k and v are
//! read where the fused projection left them (`(B·T, 3D)`, `[q | k | v]`, heads in order inside
//! each), so no head is ever copied out, and at most one `(rows, T)` block per thread exists at a
//! time: memory grows as `T`, not `T²`, unless the probabilities are requested.
//!
//! Shapes: qkv `(B·T, 3D)`; ctx `(B·T, D)`; probs, when requested, `(B, H, T, T)`.

use std::cell::RefCell;

use rayon::prelude::*;

use super::matmul::{matmul_raw, Layout, Product};
use super::vector;

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttentionShape {
    /// Batch size B.
    pub batch: usize,
    /// Tokens per image T.
    pub tokens: usize,
    /// Heads H.
    pub heads: usize,
    /// Width of one head (D / H).
    pub head_dim: usize,
}

impl AttentionShape {
    /// Width D.
    pub fn dim(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Query rows per task: a score block of about 1 MiB (it stays in L2 through softmax and
    /// `P v`), at least 64 rows so the packing of `k` and `v` per block stays small next to the
    /// products, and fewer when there would be too few tasks to feed every thread.
    pub fn rows_per_block(&self, threads: usize) -> usize {
        let t = self.tokens.max(1);
        let mut rows = ((256 * 1024) / t).clamp(64, 256);
        while rows > 16 && self.batch * self.heads * t.div_ceil(rows) < 4 * threads {
            rows /= 2;
        }
        rows.min(t)
    }

    /// Floats of scratch one thread needs.
    pub fn scratch_per_thread(&self, threads: usize) -> usize {
        self.rows_per_block(threads) * self.tokens
    }
}

/// Options of one attention call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttentionParams<'a> {
    /// Multiplier of the scores before the softmax (`head_dim^-0.5`).
    pub scale: f32,
    /// Per-head multipliers of the probabilities `(H,)`.
    pub head_mask: Option<&'a [f32]>,
}

thread_local! {
    /// The score block of this thread, kept between calls.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A pointer shared by tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: every task writes a disjoint set of elements (its own rows of its own head).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Attention of every head: reads `qkv`, writes `ctx` (and the probabilities into `probs`).
pub(crate) fn attention(
    qkv: &[f32],
    shape: AttentionShape,
    params: AttentionParams<'_>,
    ctx: &mut [f32],
    probs: Option<&mut [f32]>,
) {
    let AttentionShape {
        batch: b,
        tokens: t,
        heads: h,
        head_dim: hd,
    } = shape;
    let d = shape.dim();
    assert!(
        qkv.len() >= b * t * 3 * d && ctx.len() >= b * t * d,
        "attention buffers too small"
    );
    if let Some(p) = &probs {
        assert!(
            p.len() >= b * h * t * t,
            "attention probability buffer too small"
        );
    }
    let rows = shape.rows_per_block(rayon::current_num_threads());
    let blocks = t.div_ceil(rows);
    let ctx_ptr = Shared(ctx.as_mut_ptr());
    let probs_ptr = probs.map(|p| Shared(p.as_mut_ptr()));
    let qkv_ptr = qkv.as_ptr() as usize;
    let task = move |i: usize| {
        let (bh, blk) = (i / blocks, i % blocks);
        let (bi, hi) = (bh / h, bh % h);
        let r0 = blk * rows;
        let n = rows.min(t - r0);
        let base = bi * t * 3 * d + hi * hd;
        let q = Layout::block(base + r0 * 3 * d, n, hd, 3 * d);
        let k = Layout::block(base + d, t, hd, 3 * d);
        let v = Layout::block(base + 2 * d, t, hd, 3 * d);
        let out = Layout::block((bi * t + r0) * d + hi * hd, n, hd, d);
        let mult = params.head_mask.map_or(1.0, |m| m[hi]);
        let qkv = qkv_ptr as *const f32;
        let one = Product::overwrite().single_threaded();
        let run = |scores: &mut [f32]| {
            let s = Layout::row_major(n, t);
            // SAFETY: q, k, v lie inside `qkv` (checked above); `scores` is this task's own buffer;
            // the ctx block (rows r0..r0+n of head hi) is written by this task only.
            unsafe {
                matmul_raw(scores.as_mut_ptr(), s, qkv, q, qkv, k.t(), one);
                vector::softmax(scores, t, params.scale, mult);
                matmul_raw(ctx_ptr.get(), out, scores.as_ptr(), s, qkv, v, one);
            }
        };
        match probs_ptr {
            Some(p) => {
                // SAFETY: rows r0..r0+n of head (bi, hi) of the probabilities belong to this task.
                let block = unsafe {
                    std::slice::from_raw_parts_mut(p.get().add((bh * t + r0) * t), n * t)
                };
                run(block);
            }
            None => SCRATCH.with(|cell| {
                let mut scratch = cell.borrow_mut();
                if scratch.len() < n * t {
                    scratch.resize(n * t, 0.0);
                }
                run(&mut scratch[..n * t]);
            }),
        }
    };
    let tasks = b * h * blocks;
    if rayon::current_num_threads() <= 1 || tasks == 1 {
        (0..tasks).for_each(task);
    } else {
        (0..tasks).into_par_iter().for_each(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_attention() {
        let shape = AttentionShape {
            batch: 2,
            tokens: 37,
            heads: 3,
            head_dim: 5,
        };
        let (b, t, h, hd, d) = (2, 37, 3, 5, 15);
        let qkv: Vec<f32> = (0..b * t * 3 * d)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let mask = [1.0, 0.5, 2.0];
        let params = AttentionParams {
            scale: 0.4,
            head_mask: Some(&mask),
        };
        let mut ctx = vec![0.0; b * t * d];
        let mut probs = vec![0.0; b * h * t * t];
        attention(&qkv, shape, params, &mut ctx, Some(&mut probs));
        let mut ctx2 = vec![0.0; b * t * d];
        attention(&qkv, shape, params, &mut ctx2, None);
        for bi in 0..b {
            for hi in 0..h {
                for i in 0..t {
                    let at = |r: usize, part: usize, c: usize| {
                        qkv[(bi * t + r) * 3 * d + part * d + hi * hd + c]
                    };
                    let s: Vec<f64> = (0..t)
                        .map(|j| {
                            (0..hd)
                                .map(|c| at(i, 0, c) as f64 * at(j, 1, c) as f64)
                                .sum::<f64>()
                                * 0.4
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = s.iter().map(|v| (v - max).exp()).sum();
                    let p: Vec<f64> = s
                        .iter()
                        .map(|v| (v - max).exp() / z * mask[hi] as f64)
                        .collect();
                    for j in 0..t {
                        let got = probs[((bi * h + hi) * t + i) * t + j] as f64;
                        assert!((got - p[j]).abs() < 1e-5);
                    }
                    for c in 0..hd {
                        let want: f64 = (0..t).map(|j| p[j] * at(j, 2, c) as f64).sum();
                        let got = ctx[(bi * t + i) * d + hi * hd + c] as f64;
                        assert!(
                            (got - want).abs() < 1e-4,
                            "ctx {bi} {hi} {i} {c}: {got} vs {want}"
                        );
                        assert_eq!(
                            ctx[(bi * t + i) * d + hi * hd + c],
                            ctx2[(bi * t + i) * d + hi * hd + c]
                        );
                    }
                }
            }
        }
    }
}
