//! Fused multi-head attention on f32 buffers: for each (batch, head, block of query rows),
//! `S = q kᵀ` into a scratch block `(rows, T)`, `P = softmax(scale · S) · head_mask[h]` in place,
//! `ctx = P v` written straight into the head's columns of the `(B·T, D)` context. q, k and v are
//! read from the fused projection (`(B·T, 3D)`, `[q | k | v]`, heads in order inside each), and
//! at most one `(rows, T)` block per thread exists at a time: memory grows as `T`, not `T²`,
//! unless the probabilities are requested.
//!
//! Two implementations: register-tiled AVX-512 kernels ([`super::attention_avx512`], k and v
//! packed once per head) when the CPU has AVX-512F, else the `gemm` crate on strided views.
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

    /// Floats of scratch one thread needs (the larger of the two implementations').
    pub fn scratch_per_thread(&self, threads: usize) -> usize {
        self.rows_per_block(threads).max(64) * self.tokens
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

/// A pointer shared by tasks that write disjoint parts of one buffer (also used by the AVX-512
/// kernels).
#[derive(Clone, Copy)]
pub(super) struct Shared(pub(super) *mut f32);
// SAFETY: every task writes a disjoint set of elements (its own rows of its own head).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Attention of every head: reads `qkv`, writes `ctx` (and the probabilities into `probs`);
/// `pack` is scratch kept by the caller between calls.
pub(crate) fn attention(
    qkv: &[f32],
    shape: AttentionShape,
    params: AttentionParams<'_>,
    ctx: &mut [f32],
    probs: Option<&mut [f32]>,
    pack: &mut Vec<f32>,
) {
    check(qkv, shape, ctx, probs.as_deref());
    #[cfg(target_arch = "x86_64")]
    if vector::use_avx512() {
        return super::attention_avx512::attention(qkv, shape, params, ctx, probs, pack);
    }
    let _ = pack;
    attention_gemm(qkv, shape, params, ctx, probs)
}

/// Floats of the `pack` scratch a call needs (0 without AVX-512).
pub(crate) fn pack_len(shape: &AttentionShape) -> usize {
    #[cfg(target_arch = "x86_64")]
    if vector::use_avx512() {
        return super::attention_avx512::pack_len(shape);
    }
    let _ = shape;
    0
}

/// Panics (an internal bug) when a buffer is too small for `shape`.
fn check(qkv: &[f32], shape: AttentionShape, ctx: &[f32], probs: Option<&[f32]>) {
    let (n, d, h, t) = (
        shape.batch * shape.tokens,
        shape.dim(),
        shape.heads,
        shape.tokens,
    );
    assert!(
        qkv.len() >= n * 3 * d && ctx.len() >= n * d,
        "attention buffers too small"
    );
    if let Some(p) = probs {
        assert!(
            p.len() >= shape.batch * h * t * t,
            "attention probability buffer too small"
        );
    }
}

/// The `gemm`-crate implementation.
fn attention_gemm(
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

    /// Both implementations against an f64 reference, with and without probabilities.
    fn check_shape(shape: AttentionShape) {
        let AttentionShape {
            batch: b,
            tokens: t,
            heads: h,
            head_dim: hd,
        } = shape;
        let d = h * hd;
        let qkv: Vec<f32> = (0..b * t * 3 * d)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let mask: Vec<f32> = (0..h).map(|i| 0.5 + i as f32).collect();
        let params = AttentionParams {
            scale: 0.4,
            head_mask: Some(&mask),
        };
        let mut want_ctx = vec![0f64; b * t * d];
        let mut want_p = vec![0f64; b * h * t * t];
        for bi in 0..b {
            for hi in 0..h {
                let at = |r: usize, part: usize, c: usize| {
                    qkv[(bi * t + r) * 3 * d + part * d + hi * hd + c] as f64
                };
                for i in 0..t {
                    let s: Vec<f64> = (0..t)
                        .map(|j| (0..hd).map(|c| at(i, 0, c) * at(j, 1, c)).sum::<f64>() * 0.4)
                        .collect();
                    let max = s.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = s.iter().map(|v| (v - max).exp()).sum();
                    for j in 0..t {
                        want_p[((bi * h + hi) * t + i) * t + j] =
                            (s[j] - max).exp() / z * mask[hi] as f64;
                    }
                    for c in 0..hd {
                        want_ctx[(bi * t + i) * d + hi * hd + c] = (0..t)
                            .map(|j| want_p[((bi * h + hi) * t + i) * t + j] * at(j, 2, c))
                            .sum();
                    }
                }
            }
        }
        let close = |got: &[f32], want: &[f64], what: &str| {
            for (k, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (*g as f64 - w).abs() < 2e-5 * w.abs().max(1.0),
                    "{what} {shape:?} [{k}]: {g} vs {w}"
                );
            }
        };
        let run = |gemm_only: bool, with_probs: bool| {
            let mut ctx = vec![0f32; b * t * d];
            let mut probs = vec![0f32; b * h * t * t];
            let p = with_probs.then_some(&mut probs[..]);
            if gemm_only {
                attention_gemm(&qkv, shape, params, &mut ctx, p);
            } else {
                attention(&qkv, shape, params, &mut ctx, p, &mut Vec::new());
            }
            (ctx, probs)
        };
        for gemm_only in [true, false] {
            let (ctx, probs) = run(gemm_only, true);
            close(&ctx, &want_ctx, "ctx");
            close(&probs, &want_p, "probs");
            let (ctx, _) = run(gemm_only, false);
            close(&ctx, &want_ctx, "ctx without probs");
        }
    }

    #[test]
    fn matches_naive_attention() {
        for (batch, tokens, heads, head_dim) in [
            (2, 37, 3, 5),
            (1, 70, 2, 64),
            (2, 33, 1, 16),
            (1, 101, 2, 72),
            (1, 5, 1, 8),
        ] {
            check_shape(AttentionShape {
                batch,
                tokens,
                heads,
                head_dim,
            });
        }
    }

    /// Long sequences (the AVX-512 path's chunked online softmax): context against the
    /// whole-row path (taken when probabilities are requested) and, for a few rows, f64.
    #[test]
    fn long_sequences_match_whole_rows() {
        let shape = AttentionShape {
            batch: 1,
            tokens: 4203,
            heads: 1,
            head_dim: 16,
        };
        let (t, d) = (shape.tokens, 16);
        // A ramp in the keys makes the running maximum grow from chunk to chunk.
        let qkv: Vec<f32> = (0..t * 3 * d)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0 + (i / (3 * d)) as f32 * 1e-3)
            .collect();
        let params = AttentionParams {
            scale: 0.7,
            head_mask: None,
        };
        let mut chunked = vec![0f32; t * d];
        attention(&qkv, shape, params, &mut chunked, None, &mut Vec::new());
        let mut whole = vec![0f32; t * d];
        let mut probs = vec![0f32; t * t];
        attention(
            &qkv,
            shape,
            params,
            &mut whole,
            Some(&mut probs),
            &mut Vec::new(),
        );
        for (k, (a, b)) in chunked.iter().zip(&whole).enumerate() {
            assert!((a - b).abs() < 1e-5 * b.abs().max(1.0), "[{k}] {a} vs {b}");
        }
        let at = |r: usize, part: usize, c: usize| qkv[r * 3 * d + part * d + c] as f64;
        for i in [0, 5, 47, 48, 2000, t - 1] {
            let s: Vec<f64> = (0..t)
                .map(|j| (0..d).map(|c| at(i, 0, c) * at(j, 1, c)).sum::<f64>() * 0.7)
                .collect();
            let max = s.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = s.iter().map(|v| (v - max).exp()).sum();
            for c in 0..d {
                let want: f64 = (0..t).map(|j| (s[j] - max).exp() / z * at(j, 2, c)).sum();
                let got = chunked[i * d + c] as f64;
                assert!(
                    (got - want).abs() < 2e-5 * want.abs().max(1.0),
                    "row {i} col {c}: {got} vs {want}"
                );
            }
        }
    }
}
