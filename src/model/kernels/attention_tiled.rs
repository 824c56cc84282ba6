//! The register-tiled attention kernels behind [`super::attention::attention`], written once over
//! [`Simd`] (the panel width is `TILE_VECS · LANES`: 64 keys on AVX-512, 16 on AVX2 and NEON, 4
//! on scalar). Each (batch, head) is one parallel task: its k is packed once into zero-padded panels
//! of keys (`[panel][channel][panel width]`) and its v into rows padded to whole vectors, then its
//! blocks of 48 query rows run as nested tasks (stolen by idle threads), each:
//!
//! 1. scores: tiles of query rows × one key panel accumulated in registers over the head's
//!    channels, stored into the task's `(rows, T)` block, with the row maxima kept on the way;
//! 2. `exp(scale · (s − max))` in place, summing each row;
//! 3. values: tiles of query rows × value columns accumulated over all T keys, scaled by
//!    `head_mask / sum` on the way out into the head's columns of the context.
//!
//! The probabilities are normalised in place (a third pass) only when they are returned. Beyond
//! 4096 tokens the keys go in chunks of 512 with an online softmax (flash-attention style), so a
//! task's scratch stays in L2 however long the sequence.
//! Shapes as in [`super::attention`]: qkv `(B·T, 3D)`, ctx `(B·T, D)`, probs `(B, H, T, T)`.

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

use super::attention::{AttentionParams, AttentionShape, Shared};
use super::isa::Isa;
use super::simd::{Kernel, Simd};
use super::tile::{Out, Tile};
use super::vector::exp_shifted;

/// Query rows per task (a multiple of every tile height).
pub(super) const BLOCK: usize = 48;
/// Sequences longer than this go through the chunked (online softmax) path.
pub(super) const LONG: usize = 4096;
/// Keys per chunk on that path (a multiple of every panel width).
pub(super) const CHUNK: usize = 512;

/// Where one head's packed k and v lie, for the path `S`.
#[derive(Debug, Clone, Copy)]
struct Packing {
    /// Keys per panel.
    panel: usize,
    /// Floats per packed value row (`hd` rounded up to whole vectors).
    v_stride: usize,
    /// Floats of packed k, then of packed v.
    klen: usize,
    vlen: usize,
}

impl Packing {
    fn of<S: Simd>(t: usize, hd: usize) -> Self {
        let panel = S::TILE_VECS * S::LANES;
        let v_stride = hd.next_multiple_of(S::LANES);
        Self {
            panel,
            v_stride,
            klen: t.div_ceil(panel) * panel * hd,
            vlen: t * v_stride,
        }
    }
}

/// Floats of the packing buffer for a whole call on the path `isa`.
pub(super) fn pack_len(isa: Isa, shape: &AttentionShape) -> usize {
    struct Len(AttentionShape);
    impl Kernel for Len {
        type Output = usize;
        #[inline(always)]
        fn run<S: Simd>(self, _: S) -> usize {
            let p = Packing::of::<S>(self.0.tokens, self.0.head_dim);
            self.0.batch * self.0.heads * (p.klen + p.vlen)
        }
    }
    isa.run(Len(*shape))
}

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

/// Attention of every head (see the module doc) on the path `isa`; the caller checked the sizes.
pub(super) fn attention(
    isa: Isa,
    qkv: &[f32],
    shape: AttentionShape,
    params: AttentionParams<'_>,
    ctx: &mut [f32],
    probs: Option<&mut [f32]>,
    pack: &mut Vec<f32>,
) {
    isa.run(Attention {
        qkv,
        shape,
        params,
        ctx,
        probs,
        pack,
    })
}

struct Attention<'a> {
    qkv: &'a [f32],
    shape: AttentionShape,
    params: AttentionParams<'a>,
    ctx: &'a mut [f32],
    probs: Option<&'a mut [f32]>,
    pack: &'a mut Vec<f32>,
}

impl Kernel for Attention<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let Attention {
            qkv,
            shape,
            params,
            ctx,
            probs,
            pack,
        } = self;
        let AttentionShape {
            batch: b,
            tokens: t,
            heads: h,
            head_dim: hd,
        } = shape;
        let d = shape.dim();
        let pk = Packing::of::<S>(t, hd);
        // Every float of the packing is written below (padding with zeros): no clearing first.
        let need = b * h * (pk.klen + pk.vlen);
        if pack.len() < need {
            pack.resize(need, 0.0);
        }
        let pack = &mut pack[..need];
        let pack_head = |bh: usize, buf: &mut [f32]| {
            let (bi, hi) = (bh / h, bh % h);
            let (kp, vp) = buf.split_at_mut(pk.klen);
            let base = bi * t * 3 * d + hi * hd;
            let row = |j: usize| &qkv[base + j * 3 * d..][..2 * d + hd];
            // k: a panel at a time, each channel's run of keys written in order (the panel's
            // key rows stay in L1 while its channels are gathered).
            for (p, panel) in kp.chunks_exact_mut(hd * pk.panel).enumerate() {
                let keys = p * pk.panel..t.min((p + 1) * pk.panel);
                for (c, run) in panel.chunks_exact_mut(pk.panel).enumerate() {
                    let (used, padding) = run.split_at_mut(keys.len());
                    for (dst, j) in used.iter_mut().zip(keys.clone()) {
                        *dst = row(j)[d + c];
                    }
                    padding.fill(0.0);
                }
            }
            for (j, dst) in vp.chunks_exact_mut(pk.v_stride).enumerate() {
                let (used, padding) = dst.split_at_mut(hd);
                used.copy_from_slice(&row(j)[2 * d..2 * d + hd]);
                padding.fill(0.0);
            }
        };
        let blocks = t.div_ceil(BLOCK);
        let ctx_ptr = Shared(ctx.as_mut_ptr());
        let probs_ptr = probs.map(|p| Shared(p.as_mut_ptr()));
        // Rows blk·BLOCK.. of head bh, whose packed k and v are `head`.
        let task = |bh: usize, blk: usize, head: &[f32]| {
            let (bi, hi) = (bh / h, bh % h);
            let r0 = blk * BLOCK;
            let n = BLOCK.min(t - r0);
            let (kp, vp) = head.split_at(pk.klen);
            let job = Job {
                q: &qkv[(bi * t + r0) * 3 * d + hi * hd..],
                q_stride: 3 * d,
                kp,
                vp,
                pk,
                t,
                hd,
                n,
                scale: params.scale,
                mult: params.head_mask.map_or(1.0, |m| m[hi]),
                normalise: probs_ptr.is_some(),
            };
            // SAFETY: rows r0..r0+n of head (bi, hi) of the probabilities belong to this task.
            let probs = probs_ptr.map(|p| unsafe {
                std::slice::from_raw_parts_mut(p.get().add((bh * t + r0) * t), n * t)
            });
            // SAFETY: the context rows r0..r0+n of head hi are written by this task only and lie
            // inside `ctx` (B·T·D floats, checked by the caller).
            let out = unsafe { ctx_ptr.get().add((bi * t + r0) * d + hi * hd) };
            SCRATCH.with(|cell| {
                let scratch = &mut *cell.borrow_mut();
                s.vectorize(Task {
                    job: &job,
                    scratch,
                    probs,
                    out,
                    out_stride: d,
                })
            });
        };
        // One parallel step per call: each (batch, head) packs its k and v, then its blocks of
        // query rows run as nested tasks that idle threads steal.
        let head_task = |(bh, buf): (usize, &mut [f32])| {
            pack_head(bh, buf);
            let head = &*buf;
            if rayon::current_num_threads() <= 1 || blocks == 1 {
                (0..blocks).for_each(|blk| task(bh, blk, head));
            } else {
                (0..blocks)
                    .into_par_iter()
                    .for_each(|blk| task(bh, blk, head));
            }
        };
        if rayon::current_num_threads() <= 1 || b * h == 1 {
            pack.chunks_mut(pk.klen + pk.vlen)
                .enumerate()
                .for_each(head_task);
        } else {
            pack.par_chunks_mut(pk.klen + pk.vlen)
                .enumerate()
                .for_each(head_task);
        }
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
    pk: Packing,
    t: usize,
    hd: usize,
    n: usize,
    scale: f32,
    mult: f32,
    /// Normalise the probabilities in place (they are returned).
    normalise: bool,
}

/// A job with its scratch and outputs: `out` rows are `out_stride` apart.
struct Task<'a, 'b> {
    job: &'a Job<'b>,
    scratch: &'a mut Scratch,
    probs: Option<&'a mut [f32]>,
    out: *mut f32,
    out_stride: usize,
}

impl Kernel for Task<'_, '_> {
    type Output = ();

    /// Scores, softmax and values of the task's rows. Up to [`LONG`] keys (or when the
    /// probabilities are returned) the whole score rows are held `(n, t)`; beyond, keys go in
    /// chunks of [`CHUNK`] with an online softmax (running max and sum, the partial values
    /// rescaled when the max grows), so the scratch stays in L2.
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let Task {
            job,
            scratch,
            probs,
            out,
            out_stride,
        } = self;
        let (t, n) = (job.t, job.n);
        scratch.maxes.resize(BLOCK * S::LANES, 0.0);
        if let Some(p) = probs {
            return job.whole(s, p, &mut scratch.maxes, out, out_stride);
        }
        if t <= LONG {
            scratch.scores.resize(n * t, 0.0);
            let sc = &mut scratch.scores[..n * t];
            return job.whole(s, sc, &mut scratch.maxes, out, out_stride);
        }
        job.chunked(s, scratch, out, out_stride)
    }
}

impl Job<'_> {
    /// Softmax over whole rows held in `sc` `(n, t)`.
    #[inline(always)]
    fn whole<S: Simd>(
        &self,
        s: S,
        sc: &mut [f32],
        maxes: &mut [f32],
        out: *mut f32,
        out_stride: usize,
    ) {
        let (t, n) = (self.t, self.n);
        s.vectorize(Scores {
            job: self,
            s: sc.as_mut_ptr(),
            s_stride: t,
            keys: 0..t,
            maxes: maxes.as_mut_ptr(),
        });
        let mut factors = [0f32; BLOCK];
        for (i, f) in factors.iter_mut().enumerate().take(n) {
            let row = &mut sc[i * t..(i + 1) * t];
            // SAFETY: `maxes` holds BLOCK vectors; i < n ≤ BLOCK.
            let max = s.reduce_max(unsafe { s.load(maxes.as_ptr().add(i * S::LANES)) });
            let sum = exp_shifted(s, row, self.scale, max * self.scale);
            *f = self.mult / sum;
            if self.normalise {
                row.iter_mut().for_each(|v| *v *= *f);
                *f = 1.0;
            }
        }
        s.vectorize(Values {
            job: self,
            p: sc.as_ptr(),
            p_stride: t,
            keys: 0..t,
            dst: out,
            dst_stride: out_stride,
            out: Out::Scaled(factors.as_ptr()),
        });
    }

    /// Online softmax over chunks of keys; partial values accumulate in `scratch.acc` `(n, hd)`.
    #[inline(always)]
    fn chunked<S: Simd>(&self, s: S, scratch: &mut Scratch, out: *mut f32, out_stride: usize) {
        let (t, n, hd) = (self.t, self.n, self.hd);
        scratch.scores.resize(n * CHUNK, 0.0);
        scratch.acc.clear();
        scratch.acc.resize(n * hd, 0.0);
        let mut max = [f32::NEG_INFINITY; BLOCK];
        let mut sum = [0f32; BLOCK];
        let mut k0 = 0;
        while k0 < t {
            let len = CHUNK.min(t - k0);
            let sc = &mut scratch.scores[..n * len];
            s.vectorize(Scores {
                job: self,
                s: sc.as_mut_ptr(),
                s_stride: len,
                keys: k0..k0 + len,
                maxes: scratch.maxes.as_mut_ptr(),
            });
            for i in 0..n {
                // SAFETY: `maxes` holds BLOCK vectors; i < n ≤ BLOCK.
                let chunk_max =
                    s.reduce_max(unsafe { s.load(scratch.maxes.as_ptr().add(i * S::LANES)) });
                let m = max[i].max(chunk_max);
                let e = exp_shifted(
                    s,
                    &mut sc[i * len..(i + 1) * len],
                    self.scale,
                    m * self.scale,
                );
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
            s.vectorize(Values {
                job: self,
                p: sc.as_ptr(),
                p_stride: len,
                keys: k0..k0 + len,
                dst: scratch.acc.as_mut_ptr(),
                dst_stride: hd,
                out: Out::Add,
            });
            k0 += len;
        }
        for (i, total) in sum.iter().enumerate().take(n) {
            let f = self.mult / total;
            for (c, v) in scratch.acc[i * hd..(i + 1) * hd].iter().enumerate() {
                // SAFETY: row i < n of the task's context rows, column c < hd of its head.
                unsafe { *out.add(i * out_stride + c) = v * f };
            }
        }
    }
}

/// `s[i][j - keys.start] = q_i · k_j` for the keys in `keys` (a range starting on a panel), rows
/// `s_stride` apart, with each row's maximum in `maxes` (one vector per row).
struct Scores<'a, 'b> {
    job: &'a Job<'b>,
    s: *mut f32,
    s_stride: usize,
    keys: Range<usize>,
    maxes: *mut f32,
}

impl Kernel for Scores<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let job = self.job;
        let (n, hd, panel) = (job.n, job.hd, job.pk.panel);
        // SAFETY: `maxes` holds BLOCK ≥ n vectors; every tile reads query rows inside `q`, one
        // whole zero-padded key panel inside `kp`, and writes `valid` scores of its rows inside
        // the `(n, s_stride)` block (the caller's buffer).
        unsafe {
            for i in 0..n {
                s.store(self.maxes.add(i * S::LANES), s.splat(f32::NEG_INFINITY));
            }
            let mut j0 = self.keys.start;
            while j0 < self.keys.end {
                let tile_b = job.kp.as_ptr().add((j0 / panel) * hd * panel);
                let valid = panel.min(self.keys.end - j0);
                let mut i0 = 0;
                while i0 < n {
                    let tile = Tile {
                        a: job.q.as_ptr().add(i0 * job.q_stride),
                        a_stride: job.q_stride,
                        b: tile_b,
                        b_stride: panel,
                        depth: hd,
                        c: self.s.add(i0 * self.s_stride + (j0 - self.keys.start)),
                        c_stride: self.s_stride,
                        width: valid,
                    };
                    tile.run_rows(s, n - i0, Out::Max(self.maxes.add(i0 * S::LANES)));
                    i0 += S::TILE_ROWS;
                }
                j0 += panel;
            }
        }
    }
}

/// `dst[i][c] (+)= Σ_j p[i][j - keys.start] v[j][c]` over the keys in `keys`; `p` rows are
/// `p_stride` apart, `dst` rows `dst_stride` apart.
struct Values<'a, 'b> {
    job: &'a Job<'b>,
    p: *const f32,
    p_stride: usize,
    keys: Range<usize>,
    dst: *mut f32,
    dst_stride: usize,
    out: Out,
}

impl Kernel for Values<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let job = self.job;
        let (n, hd, vs) = (job.n, job.hd, job.pk.v_stride);
        let wide = S::TILE_VECS * S::LANES;
        let mut c0 = 0;
        while c0 < hd {
            let mut i0 = 0;
            while i0 < n {
                // SAFETY: the tile reads probability rows inside the caller's `(n, p_stride)`
                // block, value rows of the keys in `keys` (padded to whole vectors, so whole
                // vectors are readable) and writes `width` columns of its rows of `dst`.
                unsafe {
                    let tile = Tile {
                        a: self.p.add(i0 * self.p_stride),
                        a_stride: self.p_stride,
                        b: job.vp.as_ptr().add(self.keys.start * vs + c0),
                        b_stride: vs,
                        depth: self.keys.len(),
                        c: self.dst.add(i0 * self.dst_stride + c0),
                        c_stride: self.dst_stride,
                        width: wide.min(hd - c0),
                    };
                    let out = match self.out {
                        Out::Scaled(f) => Out::Scaled(f.add(i0)),
                        other => other,
                    };
                    tile.run_rows(s, n - i0, out);
                }
                i0 += S::TILE_ROWS;
            }
            c0 += wide;
        }
    }
}
