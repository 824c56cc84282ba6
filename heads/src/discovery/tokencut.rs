//! TokenCut (Wang et al., CVPR 2022), as YangtaoWANG95/TokenCut `object_discovery.py` (`ncut`) computes it.
//!
//! On one image's patch features `F` `(N, C)` (N = h·w; last-layer keys by default):
//! 1. L2-normalise each patch feature; `A = F Fᵀ` (cosine similarity);
//! 2. `W_ij = 1` where `A_ij > tau`, else `eps` (binary graph, the default); or `W = A` with entries
//!    `< tau` set to `eps`;
//! 3. `d = W 1`; the second-smallest generalised eigenvector `y` of `(D − W) y = λ D y`. TokenCut calls
//!    scipy's `eigh(D − W, D)`; here faer's self-adjoint eigendecomposition of
//!    `L_sym = I − D^-1/2 W D^-1/2` gives `z`, and `y = D^-1/2 z` (same normalisation, `yᵀ D y = 1`);
//! 4. foreground = `y > mean(y)`; seed = `argmax |y|` (first on ties); if the seed is background, flip `y`
//!    and the partition;
//! 5. the 4-connected foreground component holding the seed, its box, ×patch size, clipped to the
//!    unpadded image.

use faer::{Mat, Side};

use crate::discovery::{patch_gram, seed_component, single_map, Discovery};
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
                let gram = patch_gram(&map.get(b)?, true)?;
                self.on_gram(&gram, grid, features.patch_size, image_size)
            })
            .collect()
    }

    /// The edge weight of a cosine similarity.
    fn weight(&self, a: f32) -> f64 {
        let o = &self.options;
        if o.binary_graph {
            if a > o.tau {
                1.0
            } else {
                o.eps
            }
        } else if a < o.tau {
            o.eps
        } else {
            a as f64
        }
    }

    /// TokenCut on one image's cosine gram matrix `(N, N)`, row-major.
    fn on_gram(
        &self,
        gram: &[f32],
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
        let w = Mat::<f64>::from_fn(n, n, |i, j| self.weight(gram[i * n + j]));
        let inv_sqrt_d: Vec<f64> = (0..n)
            .map(|i| 1.0 / (0..n).map(|j| w[(i, j)]).sum::<f64>().sqrt())
            .collect();
        let laplacian = Mat::<f64>::from_fn(n, n, |i, j| {
            let identity = if i == j { 1.0 } else { 0.0 };
            identity - inv_sqrt_d[i] * w[(i, j)] * inv_sqrt_d[j]
        });
        let evd = laplacian.self_adjoint_eigen(Side::Lower).map_err(|e| {
            Error::input("TokenCut", format!("the eigendecomposition failed: {e:?}"))
        })?;
        let z = evd.U().col(1);
        let mut y: Vec<f64> = (0..n).map(|i| inv_sqrt_d[i] * z[i]).collect();
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
