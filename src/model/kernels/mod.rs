//! Fused f32 CPU kernels for the encoder: the fast path of [`crate::model::Dinov2Model`] on CPU in
//! f32 (other devices and dtypes take the generic candle path, which computes the same function).
//!
//! - [`vector`]: the per-row math (LayerNorm, softmax, bias + activation, SwiGLU), AVX-512 when the
//!   CPU has it (detected at run time), plain Rust otherwise.
//! - [`rows`]: those row operations spread over the rayon pool.
//! - [`matmul`]: strided f32 matrix views and the `gemm` crate's GEMM on them.
//! - `tile`: the AVX-512 register tile of the attention kernels.
//! - [`attention`]: softmax(q kᵀ · scale) v per (batch, head, block of query rows), reading q, k, v
//!   in place from the fused `(B·T, 3D)` projection, never holding more than a block of the
//!   `T × T` score matrix.
//! - `attention_avx512`: the register-tiled AVX-512 kernels of the attention.
//! - [`weights`]: borrowing a CPU tensor's f32 data in place.
//! - [`memory`]: the memory this process can still use (machine, cgroups, a set limit), to refuse
//!   a request whose working set cannot fit.
//! - [`profile`]: optional per-part timers for `dinoreg bench --profile`.
//!
//! All buffers are row-major `(rows, width)` slices; a token matrix is `(B·T, D)`.

pub(crate) mod attention;
#[cfg(target_arch = "x86_64")]
mod attention_avx512;
pub(crate) mod matmul;
pub mod memory;
pub mod profile;
pub(crate) mod rows;
#[cfg(target_arch = "x86_64")]
mod tile;
pub(crate) mod vector;
pub(crate) mod weights;
