//! Fused f32 CPU kernels for the encoder: the fast path of [`crate::model::Dinov2Model`] and
//! [`crate::model::Dinov3Model`] on CPU in f32 (other devices and dtypes take the generic candle
//! path, which computes the same function).
//!
//! - [`simd`]: one trait over the f32 vectors of AVX-512F, AVX2 + FMA, NEON and plain scalar
//!   code; every kernel below is written once, generic over it.
//! - [`isa`]: which of those paths runs (the best the CPU has, or `DINOREG_SIMD`).
//! - [`math`]: `exp` and the activations, the same formulas on every path.
//! - [`vector`]: the per-row math (LayerNorm, softmax, bias + activation, SwiGLU).
//! - [`rows`]: those row operations spread over the rayon pool.
//! - [`matmul`]: strided f32 matrix views and the `gemm` crate's GEMM on them.
//! - `tile`: the register tile of the attention kernels.
//! - [`attention`]: softmax(q kᵀ · scale) v per (batch, head, block of query rows), reading q, k, v
//!   in place from the fused `(B·T, 3D)` projection, never holding more than a block of the
//!   `T × T` score matrix.
//! - `attention_tiled`: the register-tiled kernels of the attention.
//! - [`rope`]: DINOv3's rotary embedding applied in place to the q/k/v projection rows.
//! - [`gated`]: the gated feed-forward activation for activations other than SiLU.
//! - [`weights`]: borrowing a CPU tensor's f32 data in place.
//! - [`memory`]: the memory this process can still use (machine, cgroups, a set limit), to refuse
//!   a request whose working set cannot fit.
//! - [`profile`]: optional per-part timers for `dinoreg bench --profile`.
//!
//! All buffers are row-major `(rows, width)` slices; a token matrix is `(B·T, D)`.
//!
//! # SIMD paths and `DINOREG_SIMD`
//!
//! The kernels take the widest path the CPU has, detected once per process: `avx512` (x86-64
//! with AVX-512F), `avx2` (x86-64 with AVX2 and FMA), `neon` (aarch64), else `scalar`. The
//! environment variable `DINOREG_SIMD` forces one: `auto` (the default), `avx512`, `avx2`,
//! `neon` or `scalar`, ASCII case ignored, read on the first forward pass. Forcing a narrower
//! path serves tests and users who want the same kernel results on every machine that runs that
//! path. A path the CPU lacks, or an unknown value, falls back to the best path the CPU has,
//! with a one-time warning on stderr. Every path computes the same formulas (the `exp`
//! polynomial, the erf approximation) and agrees with the others to about 1e-6 relative; the
//! order of horizontal sums depends on the lane count. The variable covers these kernels only:
//! the matrix products go through the `gemm` crate, which picks its own kernels (AVX-512 with
//! this crate's default `gemm-avx512` feature, AVX2 + FMA without it).

pub(crate) mod attention;
mod attention_tiled;
pub(crate) mod gated;
pub(crate) mod isa;
pub(crate) mod math;
pub(crate) mod matmul;
pub mod memory;
pub mod profile;
pub(crate) mod rope;
pub(crate) mod rows;
pub(crate) mod simd;
mod tile;
pub(crate) mod vector;
pub(crate) mod weights;
