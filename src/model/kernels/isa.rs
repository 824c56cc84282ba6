//! Which SIMD path the fused kernels take: the best one the CPU has, detected once, unless the
//! `DINOREG_SIMD` environment variable asks for another (see [`super`] for the values). The
//! choice is cached for the life of the process; tests switch it with [`force`].
//!
//! A path the CPU lacks, or a value that names no path, is not an error: the kernels take the
//! best path the CPU has and print a one-time warning on stderr saying so, so that a setting
//! meant for testing never stops a program that would otherwise run.

use std::sync::atomic::{AtomicU8, Ordering};

use super::simd::scalar::Scalar;
use super::simd::{Kernel, Simd};

/// A SIMD path of the fused kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// AVX-512F, 16 lanes (x86-64).
    Avx512 = 1,
    /// AVX2 + FMA, 8 lanes (x86-64).
    Avx2 = 2,
    /// NEON, 4 lanes (aarch64).
    Neon = 3,
    /// Plain Rust, one lane (every CPU).
    Scalar = 4,
}

impl Isa {
    /// Every path, widest first (the order in which the default choice tries them).
    pub(crate) const ALL: [Isa; 4] = [Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Scalar];

    /// The name `DINOREG_SIMD` uses for the path.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Neon => "neon",
            Isa::Scalar => "scalar",
        }
    }

    /// The path named `name` (ASCII case ignored), if any.
    pub(crate) fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this CPU can run the path.
    pub(crate) fn supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => super::simd::avx512::Avx512::try_new().is_some(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => super::simd::avx2::Avx2::try_new().is_some(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => super::simd::neon::Neon::try_new().is_some(),
            Isa::Scalar => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Why the path cannot run here, or `None` when it can.
    pub(crate) fn missing(self) -> Option<&'static str> {
        if self.supported() {
            return None;
        }
        Some(match self {
            Isa::Avx512 if cfg!(target_arch = "x86_64") => "this CPU has no AVX-512F",
            Isa::Avx2 if cfg!(target_arch = "x86_64") => "this CPU lacks AVX2 or FMA",
            Isa::Neon if cfg!(target_arch = "aarch64") => "this CPU has no NEON",
            Isa::Avx512 | Isa::Avx2 => "not an x86-64 CPU",
            _ => "not an aarch64 CPU",
        })
    }

    /// Every path this CPU runs, widest first (scalar always among them).
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.supported()).collect()
    }

    /// Runs `k` on this path (on the scalar one should this CPU lack it, which [`active`] and
    /// [`force`] never let happen).
    pub(crate) fn run<K: Kernel>(self, k: K) -> K::Output {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => match super::simd::avx512::Avx512::try_new() {
                Some(s) => s.vectorize(k),
                None => Scalar.vectorize(k),
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => match super::simd::avx2::Avx2::try_new() {
                Some(s) => s.vectorize(k),
                None => Scalar.vectorize(k),
            },
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => match super::simd::neon::Neon::try_new() {
                Some(s) => s.vectorize(k),
                None => Scalar.vectorize(k),
            },
            _ => Scalar.vectorize(k),
        }
    }

    fn from_u8(v: u8) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| *i as u8 == v)
    }
}

/// The path chosen, as `Isa as u8`; 0 until the first kernel call.
static ACTIVE: AtomicU8 = AtomicU8::new(0);

/// The name of the environment variable that forces a path.
pub(crate) const ENV: &str = "DINOREG_SIMD";

/// The path the kernels take: chosen on the first call (from `DINOREG_SIMD` and the CPU), then
/// cached.
pub(crate) fn active() -> Isa {
    if let Some(isa) = Isa::from_u8(ACTIVE.load(Ordering::Relaxed)) {
        return isa;
    }
    let (isa, warning) = choose(std::env::var(ENV).ok().as_deref(), Isa::supported);
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    // Two threads racing here choose the same path; the second store changes nothing.
    ACTIVE.store(isa as u8, Ordering::Relaxed);
    isa
}

/// Makes the kernels take `isa` from now on, for the whole process (tests and benchmarks of one
/// path); an error names what the CPU lacks.
pub(crate) fn force(isa: Isa) -> Result<(), &'static str> {
    if let Some(why) = isa.missing() {
        return Err(why);
    }
    ACTIVE.store(isa as u8, Ordering::Relaxed);
    Ok(())
}

/// The path for the value `var` of `DINOREG_SIMD` on a CPU that runs the paths `supported`
/// accepts, and the warning to print when the value cannot be honoured.
fn choose(var: Option<&str>, supported: impl Fn(Isa) -> bool) -> (Isa, Option<String>) {
    let best = Isa::ALL
        .into_iter()
        .find(|&i| supported(i))
        .unwrap_or(Isa::Scalar);
    let var = match var.map(str::trim) {
        None | Some("") => return (best, None),
        Some(v) if v.eq_ignore_ascii_case("auto") => return (best, None),
        Some(v) => v,
    };
    match Isa::from_name(var) {
        Some(isa) if supported(isa) => (isa, None),
        Some(isa) => (
            best,
            Some(format!(
                "{ENV}={var}: this CPU cannot run the {} kernels; using {}",
                isa.name(),
                best.name()
            )),
        ),
        None => (
            best,
            Some(format!(
                "{ENV}={var} names no SIMD path (auto, avx512, avx2, neon, scalar); using {}",
                best.name()
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
            assert_eq!(Isa::from_u8(isa as u8), Some(isa));
        }
        assert_eq!(Isa::from_name(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(Isa::from_name("sse"), None);
        assert_eq!(Isa::from_u8(0), None);
    }

    #[test]
    fn env_values() {
        let x86 = |i: Isa| matches!(i, Isa::Avx2 | Isa::Scalar);
        assert_eq!(choose(None, x86), (Isa::Avx2, None));
        assert_eq!(choose(Some("auto"), x86), (Isa::Avx2, None));
        assert_eq!(choose(Some(""), x86), (Isa::Avx2, None));
        assert_eq!(choose(Some("scalar"), x86), (Isa::Scalar, None));
        assert_eq!(choose(Some("Avx2"), x86), (Isa::Avx2, None));
        let (isa, warning) = choose(Some("avx512"), x86);
        assert_eq!(isa, Isa::Avx2);
        assert!(warning
            .unwrap()
            .contains("cannot run the avx512 kernels; using avx2"));
        let (isa, warning) = choose(Some("fast"), |i| i == Isa::Scalar);
        assert_eq!(isa, Isa::Scalar);
        assert!(warning.unwrap().contains("names no SIMD path"));
    }

    #[test]
    fn this_cpu() {
        let available = Isa::available();
        assert_eq!(available[0], choose(None, Isa::supported).0);
        assert_eq!(available.last(), Some(&Isa::Scalar));
        for isa in Isa::ALL {
            assert_eq!(isa.missing().is_none(), available.contains(&isa));
            if !available.contains(&isa) {
                // Refused without touching the path the other tests run on.
                assert!(force(isa).is_err());
            }
        }
        // No CPU has both.
        assert!(!(available.contains(&Isa::Neon) && available.contains(&Isa::Avx2)));
    }
}
