//! The AVX-512 attention kernels behind [`super::attention::attention`]. Per (batch, head), k is
//! packed once into panels of 64 keys (`[panel][channel][64]`) and v into contiguous rows; then
//! each task takes 48 query rows:
//!
//! 1. scores: tiles of 6 query rows × 64 keys accumulated in registers over the head's channels,
//!    stored into the task's `(rows, T)` block, with the row maxima kept on the way;
//! 2. `exp(scale · (s − max))` in place, summing each row;
//! 3. values: tiles of 6 query rows × 64 channels accumulated over all T keys, scaled by
//!    `head_mask / sum` on the way out into the head's columns of the context.
//!
//! The probabilities are normalised in place (a third pass) only when they are returned.
//! Shapes as in [`super::attention`]: qkv `(B·T, 3D)`, ctx `(B·T, D)`, probs `(B, H, T, T)`.

use std::arch::x86_64::*;
use std::cell::RefCell;

use rayon::prelude::*;

use super::attention::{AttentionParams, AttentionShape};
use super::tile::{Out, Tile, ROWS, WIDTH as WIDE};
use super::vector;

/// Query rows per task.
pub(super) const BLOCK: usize = 48;

/// Floats of packed k and v of one head.
fn head_len(t: usize, hd: usize) -> (usize, usize) {
    (t.div_ceil(WIDE) * WIDE * hd, t * hd)
}

/// Floats of the packing buffer for a whole call.
pub(super) fn pack_len(shape: &AttentionShape) -> usize {
    let (k, v) = head_len(shape.tokens, shape.head_dim);
    shape.batch * shape.heads * (k + v)
}

thread_local! {
    /// The score block of this thread and its per-row maxima, kept between calls.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: tasks write disjoint elements (their own rows of their own head).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Attention of every head (see the module doc); the caller checked AVX-512F and the sizes.
pub(super) fn attention(
    qkv: &[f32],
    shape: AttentionShape,
    params: AttentionParams<'_>,
    ctx: &mut [f32],
    probs: Option<&mut [f32]>,
    pack: &mut Vec<f32>,
) {
    let AttentionShape {
        batch: b,
        tokens: t,
        heads: h,
        head_dim: hd,
    } = shape;
    let d = shape.dim();
    let (klen, vlen) = head_len(t, hd);
    pack.clear();
    pack.resize(pack_len(&shape), 0.0);
    pack.par_chunks_mut(klen + vlen)
        .enumerate()
        .for_each(|(bh, buf)| {
            let (bi, hi) = (bh / h, bh % h);
            let (kp, vp) = buf.split_at_mut(klen);
            let base = bi * t * 3 * d + hi * hd;
            for j in 0..t {
                let row = &qkv[base + j * 3 * d..];
                let (k, v) = (&row[d..d + hd], &row[2 * d..2 * d + hd]);
                let panel = (j / WIDE) * hd * WIDE;
                for (c, &x) in k.iter().enumerate() {
                    kp[panel + c * WIDE + j % WIDE] = x;
                }
                vp[j * hd..(j + 1) * hd].copy_from_slice(v);
            }
        });
    let pack = &pack[..];
    let blocks = t.div_ceil(BLOCK);
    let ctx_ptr = Shared(ctx.as_mut_ptr());
    let probs_ptr = probs.map(|p| Shared(p.as_mut_ptr()));
    let task = |i: usize| {
        let (bh, blk) = (i / blocks, i % blocks);
        let (bi, hi) = (bh / h, bh % h);
        let r0 = blk * BLOCK;
        let n = BLOCK.min(t - r0);
        let kp = &pack[bh * (klen + vlen)..][..klen];
        let vp = &pack[bh * (klen + vlen) + klen..][..vlen];
        let q = &qkv[(bi * t + r0) * 3 * d + hi * hd..];
        let mult = params.head_mask.map_or(1.0, |m| m[hi]);
        let out_offset = (bi * t + r0) * d + hi * hd;
        let run = |scores: &mut [f32], maxes: &mut [f32]| {
            let job = Job {
                q,
                q_stride: 3 * d,
                kp,
                vp,
                t,
                hd,
                n,
                scale: params.scale,
                mult,
                normalise: probs_ptr.is_some(),
            };
            // SAFETY: AVX-512F was checked by the caller; the context rows r0..r0+n of head hi
            // are written by this task only and lie inside `ctx` (B·T·D floats).
            unsafe { job.run(scores, maxes, ctx_ptr.get().add(out_offset), d) };
        };
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (scores, maxes) = &mut *guard;
            if maxes.len() < BLOCK * 16 {
                maxes.resize(BLOCK * 16, 0.0);
            }
            match probs_ptr {
                Some(p) => {
                    // SAFETY: rows r0..r0+n of head (bi, hi) of the probabilities belong to this task.
                    let block = unsafe {
                        std::slice::from_raw_parts_mut(p.get().add((bh * t + r0) * t), n * t)
                    };
                    run(block, maxes);
                }
                None => {
                    if scores.len() < n * t {
                        scores.resize(n * t, 0.0);
                    }
                    run(&mut scores[..n * t], maxes);
                }
            }
        });
    };
    let tasks = b * h * blocks;
    if rayon::current_num_threads() <= 1 || tasks == 1 {
        (0..tasks).for_each(task);
    } else {
        (0..tasks).into_par_iter().for_each(task);
    }
}

/// One task: `n` query rows of one head.
struct Job<'a> {
    /// Row 0 of the task's queries (row stride `q_stride`).
    q: &'a [f32],
    q_stride: usize,
    /// Packed k and v of the head.
    kp: &'a [f32],
    vp: &'a [f32],
    t: usize,
    hd: usize,
    n: usize,
    scale: f32,
    mult: f32,
    /// Normalise the probabilities in place (they are returned).
    normalise: bool,
}

impl Job<'_> {
    /// Scores into `s` `(n, t)`, softmax, values into `out` (row stride `out_stride`).
    #[target_feature(enable = "avx512f")]
    unsafe fn run(&self, s: &mut [f32], maxes: &mut [f32], out: *mut f32, out_stride: usize) {
        let (t, n, hd) = (self.t, self.n, self.hd);
        // Row maxima as one vector per row.
        let maxv = maxes.as_mut_ptr() as *mut __m512;
        for i in 0..n {
            maxv.add(i)
                .write_unaligned(_mm512_set1_ps(f32::NEG_INFINITY));
        }
        for p in 0..t.div_ceil(WIDE) {
            let panel = self.kp.as_ptr().add(p * hd * WIDE);
            let valid = WIDE.min(t - p * WIDE);
            let mut i0 = 0;
            while i0 < n {
                let a = self.q.as_ptr().add(i0 * self.q_stride);
                let c = s.as_mut_ptr().add(i0 * t + p * WIDE);
                let tile = Tile {
                    a,
                    a_stride: self.q_stride,
                    b: panel,
                    b_stride: WIDE,
                    depth: hd,
                    c,
                    c_stride: t,
                    width: valid,
                };
                tile.run_rows(n - i0, Out::Max(maxv.add(i0)));
                i0 += ROWS;
            }
        }
        let mut factors = [0f32; BLOCK];
        for (i, f) in factors.iter_mut().enumerate().take(n) {
            let row = &mut s[i * t..(i + 1) * t];
            let max = _mm512_reduce_max_ps(maxv.add(i).read_unaligned());
            let sum = vector::exp_shifted(row, self.scale, max * self.scale);
            *f = self.mult / sum;
            if self.normalise {
                row.iter_mut().for_each(|v| *v *= *f);
                *f = 1.0;
            }
        }
        let mut c0 = 0;
        while c0 < hd {
            let mut i0 = 0;
            while i0 < n {
                let tile = Tile {
                    a: s.as_ptr().add(i0 * t),
                    a_stride: t,
                    b: self.vp.as_ptr().add(c0),
                    b_stride: hd,
                    depth: t,
                    c: out.add(i0 * out_stride + c0),
                    c_stride: out_stride,
                    width: WIDE.min(hd - c0),
                };
                tile.run_rows(n - i0, Out::Scaled(factors.as_ptr().add(i0)));
                i0 += ROWS;
            }
            c0 += WIDE;
        }
    }
}
