//! TokenCut (Wang et al., CVPR 2022), as YangtaoWANG95/TokenCut `object_discovery.py` (`ncut`) computes it.
//!
//! On one image's patch features `F` `(N, C)` (N = h·w; last-layer keys by default):
//! 1. L2-normalise each patch feature; `A = F Fᵀ` (cosine similarity);
//! 2. `W_ij = 1` where `A_ij > tau`, else `eps` (binary graph, the default); or `W = A` with entries
//!    `< tau` set to `eps`;
//! 3. `d = W 1`; the second-smallest generalised eigenvector `y` of `(D − W) y = λ D y`. TokenCut calls
//!    scipy's dense `eigh(D − W, D)`, O(N³). Here `z` is the eigenvector of the second-largest
//!    eigenvalue of `M = D^-1/2 W D^-1/2` (the second-smallest of `L_sym = I − M`), found by Lanczos
//!    (`lanczos`) on the complement of the largest one, `D^1/2 1` (eigenvalue 1), and
//!    `y = D^-1/2 z` (same normalisation, `yᵀ D y = 1`). `W` is never dense (`Graph`): memory
//!    N²/8 bytes for the binary graph, time the N²·C/2 multiply-adds of the gram's triangle plus N²/8
//!    additions per Lanczos step (a few hundred steps). Below 64 patches, or should Lanczos not
//!    converge on a graph of at most 4,000 patches, faer's dense eigendecomposition of `L_sym` is used
//!    instead;
//! 4. foreground = `y > mean(y)`; seed = `argmax |y|` (first on ties); if the seed is background, flip `y`
//!    and the partition;
//! 5. the 4-connected foreground component holding the seed, its box, ×patch size, clipped to the
//!    unpadded image.

use faer::{Mat, Side};

use crate::discovery::gram::PatchFeatures;
use crate::discovery::graph::Graph;
use crate::discovery::lanczos::{largest_eigenpair, LanczosOptions};
use crate::discovery::{seed_component, single_map, Discovery};
use crate::segmentation::SplitMix64;
use crate::{Error, FeatureMaps, FeatureRequest, FeatureSource, Head, Result};

/// Options of [`TokenCut`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenCutOptions {
    /// Similarity threshold of the graph (default 0.2).
    pub tau: f32,
    /// Weight of the edges below the threshold (default 1e-5).
    pub eps: f64,
    /// Binary edge weights (default); `false` keeps the similarity itself above the threshold (TokenCut's
    /// `--no-binary-graph`).
    pub binary_graph: bool,
    /// Which tensor of the last block to read (default: the attention keys).
    pub source: FeatureSource,
}

impl Default for TokenCutOptions {
    fn default() -> Self {
        Self {
            tau: 0.2,
            eps: 1e-5,
            binary_graph: true,
            source: FeatureSource::Keys,
        }
    }
}

impl TokenCutOptions {
    /// Sets [`TokenCutOptions::tau`].
    pub fn with_tau(mut self, tau: f32) -> Self {
        self.tau = tau;
        self
    }

    /// Sets [`TokenCutOptions::eps`].
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// Sets [`TokenCutOptions::binary_graph`].
    pub fn with_binary_graph(mut self, binary_graph: bool) -> Self {
        self.binary_graph = binary_graph;
        self
    }

    /// Sets [`TokenCutOptions::source`].
    pub fn with_source(mut self, source: FeatureSource) -> Self {
        self.source = source;
        self
    }
}

/// The TokenCut object-discovery head.
#[derive(Debug, Clone)]
pub struct TokenCut {
    options: TokenCutOptions,
}

impl TokenCut {
    /// A TokenCut head; errors when `tau` is not finite or `eps` is not a positive number.
    pub fn new(options: TokenCutOptions) -> Result<Self> {
        if !options.tau.is_finite() {
            return Err(Error::option(
                "tau",
                format!("must be a finite number, got {}", options.tau),
            ));
        }
        if !(options.eps.is_finite() && options.eps > 0.0) {
            return Err(Error::option(
                "eps",
                format!("must be a positive number, got {}", options.eps),
            ));
        }
        Ok(Self { options })
    }

    /// The options.
    pub fn options(&self) -> &TokenCutOptions {
        &self.options
    }

    /// One [`Discovery`] per image of the batch, with its eigenvector map; boxes clipped to `image_size`
    /// `(H, W)`, the image size before padding to the patch size.
    pub fn discover(
        &self,
        features: &FeatureMaps,
        image_size: (usize, usize),
    ) -> Result<Vec<Discovery>> {
        let (map, grid) = single_map(features, image_size, "TokenCut")?;
        (0..map.dim(0)?)
            .map(|b| {
                let feats = PatchFeatures::new(&map.get(b)?, true)?;
                self.on_features(&feats, grid, features.patch_size, image_size)
            })
            .collect()
    }

    /// TokenCut on one image's L2-normalised patch features.
    fn on_features(
        &self,
        feats: &PatchFeatures,
        grid: (usize, usize),
        patch: usize,
        image_size: (usize, usize),
    ) -> Result<Discovery> {
        let n = grid.0 * grid.1;
        if n < 2 {
            return Err(Error::input(
                "TokenCut",
                "needs at least 2 patches for a cut",
            ));
        }
        let o = &self.options;
        let graph = Graph::new(feats, o.tau, o.eps, o.binary_graph)?;
        let mut y = second_eigenvector(&graph)?;
        let mean = y.iter().sum::<f64>() / n as f64;
        let mut foreground: Vec<bool> = y.iter().map(|&v| v > mean).collect();
        let seed = (0..n).fold(
            0,
            |best, i| if y[i].abs() > y[best].abs() { i } else { best },
        );
        if !foreground[seed] {
            y.iter_mut().for_each(|v| *v = -*v);
            foreground.iter_mut().for_each(|f| *f = !*f);
        }
        let component = seed_component(&foreground, grid, seed)?;
        let mut found = Discovery::new(component, seed, grid, patch, image_size);
        found.eigenvector = Some(y.iter().map(|&v| v as f32).collect());
        Ok(found)
    }
}

/// Below this many patches the dense eigendecomposition is cheaper than setting up Lanczos.
const DENSE_BELOW: usize = 64;

/// At most this many patches fall back to the dense eigendecomposition when Lanczos does not
/// converge (N³: about 10 s at 4,000).
const DENSE_FALLBACK_MAX: usize = 4000;

/// `y = D^-1/2 z`, `z` the unit eigenvector of the second-largest eigenvalue of `D^-1/2 W D^-1/2`
/// (the second-smallest generalised eigenvector of `(D − W) y = λ D y`).
fn second_eigenvector(graph: &Graph) -> Result<Vec<f64>> {
    let n = graph.len();
    let mut degree = vec![0f64; n];
    graph.apply(&vec![1.0; n], &mut degree);
    let inv_sqrt_d: Vec<f64> = degree.iter().map(|d| 1.0 / d.sqrt()).collect();
    let z = if n < DENSE_BELOW {
        dense_second_eigenvector(graph, &inv_sqrt_d)?
    } else {
        match lanczos_second_eigenvector(graph, &degree, &inv_sqrt_d) {
            Ok(z) => z,
            Err(_) if n <= DENSE_FALLBACK_MAX => dense_second_eigenvector(graph, &inv_sqrt_d)?,
            Err(e) => return Err(e),
        }
    };
    Ok(z.iter().zip(&inv_sqrt_d).map(|(z, s)| z * s).collect())
}

/// `z` by Lanczos on `M = D^-1/2 W D^-1/2`, with its top eigenvector `D^1/2 1 / ‖·‖` deflated.
fn lanczos_second_eigenvector(
    graph: &Graph,
    degree: &[f64],
    inv_sqrt_d: &[f64],
) -> Result<Vec<f64>> {
    let n = graph.len();
    let norm = degree.iter().sum::<f64>().sqrt();
    let top: Vec<f64> = degree.iter().map(|d| d.sqrt() / norm).collect();
    let apply = |x: &[f64], y: &mut [f64]| {
        let scaled: Vec<f64> = x.iter().zip(inv_sqrt_d).map(|(x, s)| x * s).collect();
        graph.apply(&scaled, y);
        y.iter_mut().zip(inv_sqrt_d).for_each(|(y, s)| *y *= s);
    };
    // A fixed pseudo-random start: the same answer on every run.
    let mut rng = SplitMix64::new(0x070c_3c07);
    let start: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let found = largest_eigenpair(apply, &[&top], start, LanczosOptions::default())
        .map_err(|e| Error::input("TokenCut", e.to_string()))?;
    Ok(found.vector)
}

/// `z` by faer's dense self-adjoint eigendecomposition of `L_sym = I − D^-1/2 W D^-1/2`: O(N³).
fn dense_second_eigenvector(graph: &Graph, inv_sqrt_d: &[f64]) -> Result<Vec<f64>> {
    let n = graph.len();
    let laplacian = Mat::<f64>::from_fn(n, n, |i, j| {
        let identity = if i == j { 1.0 } else { 0.0 };
        identity - inv_sqrt_d[i] * graph.weight(i, j) * inv_sqrt_d[j]
    });
    let evd = laplacian
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::input("TokenCut", format!("the eigendecomposition failed: {e:?}")))?;
    let z = evd.U().col(1);
    Ok((0..n).map(|i| z[i]).collect())
}

impl Head for TokenCut {
    type Output = Vec<Discovery>;

    /// The last block's tensor named by [`TokenCutOptions::source`], without final LayerNorm or CLS token.
    fn request(&self) -> FeatureRequest {
        FeatureRequest {
            blocks: vec![-1],
            norm: false,
            cls_token: false,
            source: self.options.source,
        }
    }

    /// [`TokenCut::discover`] with boxes clipped to the size of the (padded) input the backbone saw.
    fn forward(&self, features: &FeatureMaps) -> Result<Vec<Discovery>> {
        self.discover(features, features.input_size)
    }
}

#[cfg(test)]
mod tests {
    use candle::{Device, Tensor};

    use super::*;

    /// Features `(C, h, w)` of a blob (a disc of one random direction) on a background of another,
    /// with noise.
    fn blob(h: usize, w: usize, seed: u64) -> Result<Tensor> {
        let c = 16;
        let mut rng = SplitMix64::new(seed);
        let fg: Vec<f64> = (0..c).map(|_| rng.normal()).collect();
        let bg: Vec<f64> = (0..c).map(|_| rng.normal()).collect();
        let mut values = vec![0f32; c * h * w];
        for y in 0..h {
            for x in 0..w {
                let (dy, dx) = (y as f64 - h as f64 / 3.0, x as f64 - w as f64 / 2.0);
                let inside = dy * dy + dx * dx < (h.min(w) as f64 / 4.0).powi(2);
                for k in 0..c {
                    let base = if inside { fg[k] } else { bg[k] };
                    values[(k * h + y) * w + x] = (base + 0.8 * rng.normal()) as f32;
                }
            }
        }
        Ok(Tensor::from_vec(values, (c, h, w), &Device::Cpu)?)
    }

    #[test]
    fn lanczos_equals_the_dense_eigendecomposition() -> Result<()> {
        for (h, w, binary) in [(12, 20, true), (17, 23, true), (15, 16, false)] {
            let feats = PatchFeatures::new(&blob(h, w, (h * w) as u64)?, true)?;
            let graph = Graph::new(&feats, 0.2, 1e-5, binary)?;
            let n = graph.len();
            let mut degree = vec![0f64; n];
            graph.apply(&vec![1.0; n], &mut degree);
            let inv_sqrt_d: Vec<f64> = degree.iter().map(|d| 1.0 / d.sqrt()).collect();
            let dense = dense_second_eigenvector(&graph, &inv_sqrt_d)?;
            let lanczos = lanczos_second_eigenvector(&graph, &degree, &inv_sqrt_d)?;
            let sign = dense
                .iter()
                .zip(&lanczos)
                .map(|(a, b)| a * b)
                .sum::<f64>()
                .signum();
            let err = dense
                .iter()
                .zip(&lanczos)
                .fold(0f64, |m, (a, b)| m.max((a - sign * b).abs()));
            assert!(err < 1e-8, "{h}x{w} binary={binary}: {err}");
        }
        Ok(())
    }

    #[test]
    fn graph_products_match_the_weights() -> Result<()> {
        let feats = PatchFeatures::new(&blob(9, 11, 5)?, true)?;
        for binary in [true, false] {
            let graph = Graph::new(&feats, 0.2, 1e-3, binary)?;
            let n = graph.len();
            let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let mut y = vec![0f64; n];
            graph.apply(&x, &mut y);
            for (i, yi) in y.iter().enumerate() {
                let want: f64 = (0..n).map(|j| graph.weight(i, j) * x[j]).sum();
                assert!((yi - want).abs() < 1e-12, "binary={binary}: row {i}");
                // Symmetric.
                assert!((0..n).all(|j| graph.weight(i, j) == graph.weight(j, i)));
            }
        }
        Ok(())
    }
}
