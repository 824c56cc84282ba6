//! Fused multi-head attention on f32 buffers: for each (batch, head, block of query rows),
//! `S = q kᵀ`, `P = softmax(scale · S) · head_mask[h]`, `ctx = P v` written straight into the
//! head's columns of the `(B·T, D)` context. q, k and v are read from the fused projection
//! (`(B·T, 3D)`, `[q | k | v]`, heads in order inside each), and at most one block of score rows
//! per thread exists at a time: memory grows as `T`, not `T²`, unless the probabilities are
//! requested.
//!
//! The work is done by the register-tiled kernels of [`super::attention_tiled`], on the SIMD path
//! [`isa::active`] picks (k and v packed once per head for that path).
//!
//! Shapes: qkv `(B·T, 3D)`; ctx `(B·T, D)`; probs, when requested, `(B, H, T, T)`.

use super::attention_tiled::{self, BLOCK, CHUNK, LONG};
use super::isa::{self, Isa};

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

    /// Floats of scratch one thread needs: a block of score rows (whole rows up to 4096 tokens,
    /// chunks of 512 keys beyond), the row maxima and the partial values of the chunked path.
    pub fn scratch_per_thread(&self, threads: usize) -> usize {
        let _ = threads;
        let keys = if self.tokens <= LONG {
            self.tokens
        } else {
            CHUNK
        };
        BLOCK * (keys + 16 + self.head_dim)
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

/// A pointer shared by tasks that write disjoint parts of one buffer.
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
    attention_on(isa::active(), qkv, shape, params, ctx, probs, pack)
}

/// [`attention`] on the path `isa`.
pub(crate) fn attention_on(
    isa: Isa,
    qkv: &[f32],
    shape: AttentionShape,
    params: AttentionParams<'_>,
    ctx: &mut [f32],
    probs: Option<&mut [f32]>,
    pack: &mut Vec<f32>,
) {
    check(qkv, shape, params, ctx, probs.as_deref());
    if shape.batch * shape.tokens * shape.heads * shape.head_dim == 0 {
        return;
    }
    attention_tiled::attention(isa, qkv, shape, params, ctx, probs, pack)
}

/// Floats of the `pack` scratch a call needs on the active path.
pub(crate) fn pack_len(shape: &AttentionShape) -> usize {
    attention_tiled::pack_len(isa::active(), shape)
}

/// Panics (an internal bug) when a buffer is too small for `shape`.
fn check(
    qkv: &[f32],
    shape: AttentionShape,
    params: AttentionParams<'_>,
    ctx: &[f32],
    probs: Option<&[f32]>,
) {
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
    assert!(
        params.head_mask.is_none_or(|m| m.len() >= h),
        "attention head mask too short"
    );
    if let Some(p) = probs {
        assert!(
            p.len() >= shape.batch * h * t * t,
            "attention probability buffer too small"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qkv_of(len: usize, ramp: f32, width: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0 + (i / width) as f32 * ramp)
            .collect()
    }

    /// `(ctx, probs)` of one call on `isa`.
    fn run(
        isa: Isa,
        qkv: &[f32],
        shape: AttentionShape,
        params: AttentionParams<'_>,
        with_probs: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        let (b, t, h) = (shape.batch, shape.tokens, shape.heads);
        let mut ctx = vec![0f32; b * t * shape.dim()];
        let mut probs = vec![0f32; if with_probs { b * h * t * t } else { 0 }];
        let p = with_probs.then_some(&mut probs[..]);
        attention_on(isa, qkv, shape, params, &mut ctx, p, &mut Vec::new());
        (ctx, probs)
    }

    #[track_caller]
    fn close(got: &[f32], want: impl IntoIterator<Item = f64>, tol: f64, what: &str) {
        let mut count = 0;
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (*g as f64 - w).abs() < tol * w.abs().max(1.0),
                "{what} [{k}]: {g} vs {w}"
            );
            count += 1;
        }
        assert_eq!(count, got.len(), "{what}: lengths");
    }

    fn f64s(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&x| x as f64).collect()
    }

    /// Every path against an f64 reference and against the scalar path, with and without
    /// probabilities.
    fn check_shape(shape: AttentionShape) {
        let AttentionShape {
            batch: b,
            tokens: t,
            heads: h,
            head_dim: hd,
        } = shape;
        let d = h * hd;
        let qkv = qkv_of(b * t * 3 * d, 0.0, 1);
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
        let (scalar_ctx, scalar_p) = run(Isa::Scalar, &qkv, shape, params, true);
        for isa in Isa::available() {
            let what = |w: &str| format!("{isa:?} {w} {shape:?}");
            let (ctx, probs) = run(isa, &qkv, shape, params, true);
            close(&ctx, want_ctx.iter().copied(), 2e-5, &what("ctx"));
            close(&probs, want_p.iter().copied(), 2e-5, &what("probs"));
            close(&ctx, f64s(&scalar_ctx), 2e-6, &what("ctx vs scalar"));
            close(&probs, f64s(&scalar_p), 2e-6, &what("probs vs scalar"));
            let (ctx, _) = run(isa, &qkv, shape, params, false);
            close(
                &ctx,
                want_ctx.iter().copied(),
                2e-5,
                &what("ctx without probs"),
            );
        }
    }

    #[test]
    fn matches_naive_attention_on_every_path() {
        for (batch, tokens, heads, head_dim) in [
            (2, 37, 3, 5),
            (1, 70, 2, 64),
            (2, 33, 1, 16),
            (1, 101, 2, 72),
            (1, 5, 1, 8),
            (1, 130, 1, 17),
        ] {
            check_shape(AttentionShape {
                batch,
                tokens,
                heads,
                head_dim,
            });
        }
    }

    /// Long sequences (the chunked online softmax) on every path: context against the
    /// whole-row path (taken when probabilities are requested), against the scalar path and, for
    /// a few rows, against f64.
    #[test]
    fn long_sequences_match_whole_rows_on_every_path() {
        let shape = AttentionShape {
            batch: 1,
            tokens: 4203,
            heads: 1,
            head_dim: 8,
        };
        let (t, d) = (shape.tokens, 8);
        // A ramp in the keys makes the running maximum grow from chunk to chunk.
        let qkv = qkv_of(t * 3 * d, 1e-3, 3 * d);
        let params = AttentionParams {
            scale: 0.7,
            head_mask: None,
        };
        let at = |r: usize, part: usize, c: usize| qkv[r * 3 * d + part * d + c] as f64;
        let rows = [0, 5, 47, 48, 2000, t - 1];
        let want: Vec<Vec<f64>> = rows
            .iter()
            .map(|&i| {
                let s: Vec<f64> = (0..t)
                    .map(|j| (0..d).map(|c| at(i, 0, c) * at(j, 1, c)).sum::<f64>() * 0.7)
                    .collect();
                let max = s.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = s.iter().map(|v| (v - max).exp()).sum();
                (0..d)
                    .map(|c| (0..t).map(|j| (s[j] - max).exp() / z * at(j, 2, c)).sum())
                    .collect()
            })
            .collect();
        let (scalar, _) = run(Isa::Scalar, &qkv, shape, params, false);
        for isa in Isa::available() {
            let (chunked, _) = run(isa, &qkv, shape, params, false);
            let (whole, _) = run(isa, &qkv, shape, params, true);
            close(
                &chunked,
                f64s(&whole),
                1e-5,
                &format!("{isa:?} chunked vs whole"),
            );
            // 4203 keys: sums of that length differ by about √T ulp between summation orders.
            close(
                &chunked,
                f64s(&scalar),
                1e-5,
                &format!("{isa:?} chunked vs scalar"),
            );
            for (&i, want) in rows.iter().zip(&want) {
                let got = &chunked[i * d..(i + 1) * d];
                close(got, want.iter().copied(), 2e-5, &format!("{isa:?} row {i}"));
            }
        }
    }
}
