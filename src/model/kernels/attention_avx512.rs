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
//! The probabilities are normalised in place (a third pass) only when they are returned. Beyond
//! 4096 tokens the keys go in chunks of 512 with an online softmax (flash-attention style), so a
//! task's scratch stays in L2 however long the sequence.
//! Shapes as in [`super::attention`]: qkv `(B·T, 3D)`, ctx `(B·T, D)`, probs `(B, H, T, T)`.

use std::arch::x86_64::*;
use std::cell::RefCell;

use rayon::prelude::*;

use super::attention::{AttentionParams, AttentionShape, Shared};
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

/// Sequences longer than this go through the chunked (online softmax) path.
const LONG: usize = 4096;
/// Keys per chunk on that path (a multiple of the panel width).
const CHUNK: usize = 512;

/// The scratch of one thread, kept between calls.
struct Scratch {
    /// Scores `(n, t)` or `(n, CHUNK)`.
    scores: Vec<f32>,
    /// Per-row maxima, one vector per row.
    maxes: Vec<f32>,
    /// Partial values `(n, hd)` of the chunked path.
    acc: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            scores: Vec::new(),
            maxes: Vec::new(),
            acc: Vec::new(),
        })
    };
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
        // SAFETY: rows r0..r0+n of head (bi, hi) of the probabilities belong to this task.
        let probs = probs_ptr.map(|p| unsafe {
            std::slice::from_raw_parts_mut(p.get().add((bh * t + r0) * t), n * t)
        });
        SCRATCH.with(|cell| {
            let scratch = &mut *cell.borrow_mut();
            scratch.maxes.resize(BLOCK * 16, 0.0);
            // SAFETY: AVX-512F was checked by the caller; the context rows r0..r0+n of head hi
            // are written by this task only and lie inside `ctx` (B·T·D floats).
            unsafe { job.run(scratch, probs, ctx_ptr.get().add(out_offset), d) };
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
    /// Scores, softmax and values of the task's rows; `out` rows are `out_stride` apart. Up to
    /// [`LONG`] keys (or when the probabilities are returned) the whole score rows are held in
    /// `s` `(n, t)`; beyond, keys go in chunks of [`CHUNK`] with an online softmax (running max
    /// and sum, the partial values rescaled when the max grows), so the scratch stays in L2.
    #[target_feature(enable = "avx512f")]
    unsafe fn run(
        &self,
        scratch: &mut Scratch,
        probs: Option<&mut [f32]>,
        out: *mut f32,
        out_stride: usize,
    ) {
        let (t, n) = (self.t, self.n);
        let maxv = scratch.maxes.as_mut_ptr() as *mut __m512;
        if let Some(s) = probs {
            return self.whole(s, maxv, out, out_stride);
        }
        if t <= LONG {
            scratch.scores.resize(n * t, 0.0);
            return self.whole(&mut scratch.scores[..n * t], maxv, out, out_stride);
        }
        self.chunked(scratch, out, out_stride)
    }

    /// Softmax over whole rows held in `s` `(n, t)`.
    #[target_feature(enable = "avx512f")]
    unsafe fn whole(&self, s: &mut [f32], maxv: *mut __m512, out: *mut f32, out_stride: usize) {
        let (t, n) = (self.t, self.n);
        self.scores(s.as_mut_ptr(), t, 0..t, maxv);
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
        self.values(
            s.as_ptr(),
            t,
            0..t,
            out,
            out_stride,
            Out::Scaled(factors.as_ptr()),
        );
    }

    /// Online softmax over chunks of keys; partial values accumulate in `scratch.acc` `(n, hd)`.
    #[target_feature(enable = "avx512f")]
    unsafe fn chunked(&self, scratch: &mut Scratch, out: *mut f32, out_stride: usize) {
        let (t, n, hd) = (self.t, self.n, self.hd);
        let maxv = scratch.maxes.as_mut_ptr() as *mut __m512;
        scratch.scores.resize(n * CHUNK, 0.0);
        scratch.acc.clear();
        scratch.acc.resize(n * hd, 0.0);
        let mut max = [f32::NEG_INFINITY; BLOCK];
        let mut sum = [0f32; BLOCK];
        let mut k0 = 0;
        while k0 < t {
            let len = CHUNK.min(t - k0);
            let s = &mut scratch.scores[..n * len];
            self.scores(s.as_mut_ptr(), len, k0..k0 + len, maxv);
            for i in 0..n {
                let m = max[i].max(_mm512_reduce_max_ps(maxv.add(i).read_unaligned()));
                let e =
                    vector::exp_shifted(&mut s[i * len..(i + 1) * len], self.scale, m * self.scale);
                if m > max[i] && sum[i] > 0.0 {
                    let alpha = (self.scale * (max[i] - m)).exp();
                    sum[i] *= alpha;
                    scratch.acc[i * hd..(i + 1) * hd]
                        .iter_mut()
                        .for_each(|v| *v *= alpha);
                }
                max[i] = m;
                sum[i] += e;
            }
            self.values(
                s.as_ptr(),
                len,
                k0..k0 + len,
                scratch.acc.as_mut_ptr(),
                hd,
                Out::Add,
            );
            k0 += len;
        }
        for (i, total) in sum.iter().enumerate().take(n) {
            let f = self.mult / total;
            let row = out.add(i * out_stride);
            for (c, v) in scratch.acc[i * hd..(i + 1) * hd].iter().enumerate() {
                *row.add(c) = v * f;
            }
        }
    }

    /// `s[i][j - keys.start] = q_i · k_j` for the keys in `keys` (a range starting on a panel),
    /// rows `s_stride` apart, with each row's maximum in `maxv`.
    #[target_feature(enable = "avx512f")]
    unsafe fn scores(
        &self,
        s: *mut f32,
        s_stride: usize,
        keys: std::ops::Range<usize>,
        maxv: *mut __m512,
    ) {
        let (n, hd) = (self.n, self.hd);
        for i in 0..n {
            maxv.add(i)
                .write_unaligned(_mm512_set1_ps(f32::NEG_INFINITY));
        }
        let mut j0 = keys.start;
        while j0 < keys.end {
            let panel = self.kp.as_ptr().add((j0 / WIDE) * hd * WIDE);
            let valid = WIDE.min(keys.end - j0);
            let mut i0 = 0;
            while i0 < n {
                let tile = Tile {
                    a: self.q.as_ptr().add(i0 * self.q_stride),
                    a_stride: self.q_stride,
                    b: panel,
                    b_stride: WIDE,
                    depth: hd,
                    c: s.add(i0 * s_stride + (j0 - keys.start)),
                    c_stride: s_stride,
                    width: valid,
                };
                tile.run_rows(n - i0, Out::Max(maxv.add(i0)));
                i0 += ROWS;
            }
            j0 += WIDE;
        }
    }

    /// `dst[i][c] (+)= Σ_j p[i][j - keys.start] v[j][c]` over the keys in `keys`; `p` rows are
    /// `p_stride` apart, `dst` rows `dst_stride` apart.
    #[target_feature(enable = "avx512f")]
    unsafe fn values(
        &self,
        p: *const f32,
        p_stride: usize,
        keys: std::ops::Range<usize>,
        dst: *mut f32,
        dst_stride: usize,
        out: Out,
    ) {
        let (n, hd) = (self.n, self.hd);
        let mut c0 = 0;
        while c0 < hd {
            let mut i0 = 0;
            while i0 < n {
                let tile = Tile {
                    a: p.add(i0 * p_stride),
                    a_stride: p_stride,
                    b: self.vp.as_ptr().add(keys.start * hd + c0),
                    b_stride: hd,
                    depth: keys.len(),
                    c: dst.add(i0 * dst_stride + c0),
                    c_stride: dst_stride,
                    width: WIDE.min(hd - c0),
                };
                let out = match out {
                    Out::Scaled(f) => Out::Scaled(f.add(i0)),
                    other => other,
                };
                tile.run_rows(n - i0, out);
                i0 += ROWS;
            }
            c0 += WIDE;
        }
    }
}
