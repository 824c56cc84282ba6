//! RoPE on the fused q/k/v projection, in place: for every patch token (the last `h·w` of each
//! image's `T` tokens) and every head, the q and k columns are rotated,
//! `x · cos + rotate_half(x) · sin` with `rotate_half(x) = [−x[hd/2:], x[:hd/2]]`, in one pass
//! over the rows right after the q/k/v GEMM. The same products and sums as HF in f32
//! (`x₁·c − x₂·s`, `x₂·c + x₁·s`, no fused multiply-add), so both paths agree.
//!
//! Shapes: qkv `(B·T, 3D)` rows `[q | k | v]`, heads in order inside each; cos, sin `(h·w,
//! head_dim)`.

use rayon::prelude::*;

/// Sizes of one rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RopeShape {
    /// Tokens per image T.
    pub tokens: usize,
    /// Heads H.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

/// Rows per task below which one thread does the work.
const MIN_ROWS: usize = 64;

/// Rotates the q and k of the patch tokens of every image in `qkv` (`B·T` rows of width `3D`);
/// `cos`, `sin` hold `h·w` rows of `head_dim` and the first `T − h·w` tokens of each image are
/// left as they are.
pub(crate) fn rotate_qk(qkv: &mut [f32], shape: RopeShape, cos: &[f32], sin: &[f32]) {
    let RopeShape {
        tokens,
        heads,
        head_dim,
    } = shape;
    let d = heads * head_dim;
    let patches = cos.len() / head_dim.max(1);
    assert!(
        patches <= tokens && qkv.len().is_multiple_of(tokens * 3 * d) && sin.len() == cos.len(),
        "rotate_qk: buffers do not match {shape:?}"
    );
    let prefix = tokens - patches;
    let rotate_row = |(i, row): (usize, &mut [f32])| {
        let t = i % tokens;
        if t < prefix {
            return;
        }
        let p = (t - prefix) * head_dim;
        let (c, s) = (&cos[p..p + head_dim], &sin[p..p + head_dim]);
        for head in row[..2 * d].chunks_exact_mut(head_dim) {
            rotate_head(head, c, s);
        }
    };
    let width = 3 * d;
    if qkv.len() / width < 2 * MIN_ROWS {
        qkv.chunks_exact_mut(width).enumerate().for_each(rotate_row);
    } else {
        qkv.par_chunks_exact_mut(width)
            .enumerate()
            .with_min_len(MIN_ROWS)
            .for_each(rotate_row);
    }
}

/// One head's `x ← x · cos + rotate_half(x) · sin`.
fn rotate_head(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = x.len() / 2;
    let (lo, hi) = x.split_at_mut(half);
    for j in 0..half {
        let (a, b) = (lo[j], hi[j]);
        lo[j] = a * cos[j] + -b * sin[j];
        hi[j] = b * cos[half + j] + a * sin[half + j];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_patch_tokens_of_q_and_k_only() {
        // B 1, T 3 (1 prefix + 2 patches), 1 head of width 4, D 4.
        let shape = RopeShape {
            tokens: 3,
            heads: 1,
            head_dim: 4,
        };
        let mut qkv: Vec<f32> = (0..3 * 12).map(|x| x as f32).collect();
        let before = qkv.clone();
        let (c, s) = (0.6f32, 0.8f32);
        let cos = vec![c; 2 * 4];
        let sin = vec![s; 2 * 4];
        rotate_qk(&mut qkv, shape, &cos, &sin);
        assert_eq!(&qkv[..12], &before[..12], "the prefix token is not rotated");
        let row = &before[12..24];
        assert_eq!(qkv[12], row[0] * c - row[2] * s);
        assert_eq!(qkv[14], row[2] * c + row[0] * s);
        assert_eq!(qkv[16], row[4] * c - row[6] * s, "k is rotated");
        assert_eq!(&qkv[20..24], &row[8..12], "v is not rotated");
    }
}
