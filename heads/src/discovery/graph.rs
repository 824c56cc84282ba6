//! TokenCut's patch graph `W` `(N, N)`, stored compactly and applied to vectors, for the iterative
//! eigensolver.
//!
//! - Binary graph (TokenCut's default): `W_ij = 1` where the cosine similarity `A_ij > tau`, else
//!   `eps`; so `W = eps·11ᵀ + (1 − eps)·B` with `B` the 0/1 matrix of the edges, kept as bits (N²/8
//!   bytes: 13 MB at N = 10,201). `B x` reads the bits a byte at a time from per-byte tables of the
//!   256 partial sums of `x` (the "four Russians" trick): N²/8 additions per product.
//! - Weighted graph (`--no-binary-graph`): `W_ij = A_ij` where `A_ij >= tau`, else `eps`; kept as N² f32
//!   similarities (below the threshold: NaN, read as `eps`).
//!
//! `W` is built from the lower triangle of `A` ([`PatchFeatures::for_each_lower_block`]) and mirrored,
//! so it is exactly symmetric, as the eigensolver needs. Products accumulate in f64.

use rayon::prelude::*;

use crate::discovery::gram::PatchFeatures;
use crate::Result;

/// TokenCut's patch graph.
pub(crate) enum Graph {
    /// 0/1 edges as bits, `words` u64 per row; non-edges weigh `eps`.
    Binary {
        n: usize,
        words: usize,
        bits: Vec<u64>,
        eps: f64,
    },
    /// Similarities above the threshold (NaN below it, where the weight is `eps`).
    Weighted {
        n: usize,
        values: Vec<f32>,
        eps: f64,
    },
}

impl Graph {
    /// The graph of `feats` (L2-normalised) with threshold `tau` and weight `eps` below it.
    pub fn new(feats: &PatchFeatures, tau: f32, eps: f64, binary: bool) -> Result<Self> {
        let n = feats.len();
        if binary {
            let words = n.div_ceil(64);
            let mut bits = vec![0u64; n * words];
            feats.for_each_lower_block(|i0, i1, block| {
                for (i, row) in (i0..i1).zip(block.chunks(i1)) {
                    for (j, &a) in row[..=i].iter().enumerate() {
                        if a > tau {
                            bits[i * words + j / 64] |= 1 << (j % 64);
                            bits[j * words + i / 64] |= 1 << (i % 64);
                        }
                    }
                }
                Ok(())
            })?;
            return Ok(Self::Binary {
                n,
                words,
                bits,
                eps,
            });
        }
        let mut values = vec![f32::NAN; n * n];
        feats.for_each_lower_block(|i0, i1, block| {
            for (i, row) in (i0..i1).zip(block.chunks(i1)) {
                for (j, &a) in row[..=i].iter().enumerate() {
                    if a >= tau {
                        values[i * n + j] = a;
                        values[j * n + i] = a;
                    }
                }
            }
            Ok(())
        })?;
        Ok(Self::Weighted { n, values, eps })
    }

    /// The number of nodes N.
    pub fn len(&self) -> usize {
        match self {
            Self::Binary { n, .. } | Self::Weighted { n, .. } => *n,
        }
    }

    /// The weight `W_ij`.
    pub fn weight(&self, i: usize, j: usize) -> f64 {
        match self {
            Self::Binary {
                words, bits, eps, ..
            } => {
                if bits[i * words + j / 64] >> (j % 64) & 1 == 1 {
                    1.0
                } else {
                    *eps
                }
            }
            Self::Weighted { n, values, eps } => {
                let v = values[i * n + j];
                if v.is_nan() {
                    *eps
                } else {
                    v as f64
                }
            }
        }
    }

    /// `y = W x`.
    pub fn apply(&self, x: &[f64], y: &mut [f64]) {
        match self {
            Self::Binary {
                n,
                words,
                bits,
                eps,
            } => {
                let total: f64 = x.iter().sum();
                let table = byte_tables(x, *words * 8);
                y.par_iter_mut()
                    .zip(bits.par_chunks(*words))
                    .with_min_len(64)
                    .for_each(|(yi, row)| {
                        let mut acc = 0f64;
                        for (w, word) in row.iter().enumerate() {
                            for (b, byte) in word.to_le_bytes().into_iter().enumerate() {
                                acc += table[(w * 8 + b) * 256 + byte as usize];
                            }
                        }
                        *yi = eps * total + (1.0 - eps) * acc;
                    });
                debug_assert_eq!(y.len(), *n);
            }
            Self::Weighted { n, values, eps } => {
                y.par_iter_mut()
                    .zip(values.par_chunks(*n))
                    .with_min_len(16)
                    .for_each(|(yi, row)| {
                        *yi = row
                            .iter()
                            .zip(x)
                            .map(|(&v, &xj)| if v.is_nan() { eps * xj } else { v as f64 * xj })
                            .sum();
                    });
            }
        }
    }
}

/// For each byte position `p` (entries `8p..8p + 8` of `x`, zero past its end), the 256 sums of the
/// entries each byte value selects (bit `k` selects entry `8p + k`).
fn byte_tables(x: &[f64], bytes: usize) -> Vec<f64> {
    let mut table = vec![0f64; bytes * 256];
    table
        .par_chunks_mut(256)
        .enumerate()
        .with_min_len(16)
        .for_each(|(p, sums)| {
            for k in 0..8 {
                let v = x.get(p * 8 + k).copied().unwrap_or(0.0);
                let bit = 1 << k;
                for m in 0..bit {
                    sums[bit + m] = sums[m] + v;
                }
            }
        });
    table
}
