//! Optional timing of the parts of the fused CPU encoder (`dinoreg bench --profile`): when
//! enabled, each part adds its wall time to a counter; off by default, where it costs one relaxed
//! atomic load per part. Also which SIMD path the kernels take ([`simd_path`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The timed parts of a forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Patch embedding, tokens and position table.
    Embeddings,
    /// LayerNorms (with the deferred residual bias).
    Norm,
    /// The fused q/k/v projection.
    QkvProjection,
    /// Scores, softmax and the weighted sum of values.
    Attention,
    /// The attention output projection (accumulated into the residual).
    OutProjection,
    /// The first feed-forward layer; for a plain MLP with its bias and activation, which each
    /// thread applies to its columns right after their product.
    FfnIn,
    /// The gate of a gated feed-forward layer (SwiGLU), a pass of its own.
    Activation,
    /// The second feed-forward layer (accumulated into the residual).
    FfnOut,
    /// Copies in and out of tensors, kept outputs, the final norm.
    Other,
}

impl Part {
    /// Every part, in pipeline order.
    pub const ALL: [Part; 9] = [
        Part::Embeddings,
        Part::Norm,
        Part::QkvProjection,
        Part::Attention,
        Part::OutProjection,
        Part::FfnIn,
        Part::Activation,
        Part::FfnOut,
        Part::Other,
    ];

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Part::Embeddings => "embeddings",
            Part::Norm => "layernorm",
            Part::QkvProjection => "qkv projection",
            Part::Attention => "attention",
            Part::OutProjection => "out projection",
            Part::FfnIn => "ffn in",
            Part::Activation => "activation",
            Part::FfnOut => "ffn out",
            Part::Other => "other",
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 9] = [const { AtomicU64::new(0) }; 9];

/// Turns the timers on or off.
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Zeroes the counters.
pub fn reset() {
    NANOS.iter().for_each(|n| n.store(0, Ordering::Relaxed));
}

/// The time spent in each part since the last [`reset`].
pub fn report() -> Vec<(Part, Duration)> {
    Part::ALL
        .iter()
        .map(|&p| {
            (
                p,
                Duration::from_nanos(NANOS[p as usize].load(Ordering::Relaxed)),
            )
        })
        .collect()
}

/// Runs `f`, adding its wall time to `part` when timing is on.
pub(crate) fn time<R>(part: Part, f: impl FnOnce() -> R) -> R {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    let start = Instant::now();
    let r = f();
    NANOS[part as usize].fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    r
}

/// The SIMD path the fused kernels take in this process (`"avx512"`, `"avx2"`, `"neon"` or
/// `"scalar"`, as `DINOREG_SIMD` spells them): the widest the CPU has unless `DINOREG_SIMD` asks
/// for another (see the crate README). The first call (or the first forward pass) makes the choice,
/// which then holds for the life of the process.
pub fn simd_path() -> &'static str {
    super::isa::active().name()
}

/// The widest kernels the `gemm` crate takes for the f32 matrix products on this CPU in this
/// build (`"avx512"` only with the `gemm-avx512` feature, `"avx2"` for AVX2 + FMA, `"neon"`, or
/// `"scalar"`). `DINOREG_SIMD` does not reach them: build without `gemm-avx512` to keep them to
/// AVX2 on an AVX-512 CPU.
pub fn gemm_path() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if cfg!(feature = "gemm-avx512") && std::is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return "avx2";
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            return "neon";
        }
    }
    "scalar"
}

/// Makes the fused kernels take the SIMD path `name` from now on, in the whole process; an error
/// says why this CPU cannot (or that the name is unknown). For tests that cover every path in one
/// process, not a stable API.
#[doc(hidden)]
pub fn force_simd_path(name: &str) -> Result<(), String> {
    let isa = super::isa::Isa::from_name(name)
        .ok_or_else(|| format!("{name:?} names no SIMD path (avx512, avx2, neon, scalar)"))?;
    super::isa::force(isa).map_err(|why| format!("{}: {why}", isa.name()))
}

/// Every SIMD path the fused kernels have, widest first.
#[doc(hidden)]
pub fn simd_paths() -> [&'static str; 4] {
    super::isa::Isa::ALL.map(super::isa::Isa::name)
}
