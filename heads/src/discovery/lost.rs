//! LOST (Siméoni et al., BMVC 2021), as valeoai/LOST `object_discovery.py` computes it.
//!
//! On one image's patch features `F` `(N, C)` (N = h·w; last-layer keys by default):
//! 1. `A = F Fᵀ + β` (β, the gram bias, is 0 in LOST; the registers paper added one);
//! 2. degree of a patch = how many *other* patches it correlates positively with (`A > 0`);
//! 3. seed = the lowest-degree patch. LOST uses torch's unstable `argsort`; here the sort is stable, so
//!    among equal degrees the lowest row-major index wins;
//! 4. expansion: among the `k_patches` lowest-degree patches, `S` = those with `A[seed, q] > 0`; the
//!    map is `Σ_{q∈S} A[q, :]` (without expansion: the seed's row `A[seed, :]`);
//! 5. mask = map `> 0`; the 4-connected component holding the seed; its box, ×patch size, clipped to the
//!    unpadded image.

use crate::discovery::{patch_gram, seed_component, single_map, Discovery};
use crate::{Error, FeatureMaps, FeatureRequest, FeatureSource, Head, Result};

/// Options of [`Lost`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LostOptions {
    /// How many lowest-degree patches the seed expansion looks at (LOST's `k_patches`, default 100).
    pub k_patches: usize,
    /// Expand the seed (default); without, the mask is the seed's positive correlations only (LOST's
    /// "before expansion" box).
    pub seed_expansion: bool,
    /// A constant added to every entry of the gram matrix (default 0, LOST's own setting).
    pub gram_bias: f32,
    /// Which tensor of the last block to read (default: the attention keys).
    pub source: FeatureSource,
}

impl Default for LostOptions {
    fn default() -> Self {
        Self {
            k_patches: 100,
            seed_expansion: true,
            gram_bias: 0.0,
            source: FeatureSource::Keys,
        }
    }
}

impl LostOptions {
    /// Sets [`LostOptions::k_patches`].
    pub fn with_k_patches(mut self, k_patches: usize) -> Self {
        self.k_patches = k_patches;
        self
    }

    /// Sets [`LostOptions::seed_expansion`].
    pub fn with_seed_expansion(mut self, seed_expansion: bool) -> Self {
        self.seed_expansion = seed_expansion;
        self
    }

    /// Sets [`LostOptions::gram_bias`].
    pub fn with_gram_bias(mut self, gram_bias: f32) -> Self {
        self.gram_bias = gram_bias;
        self
    }

    /// Sets [`LostOptions::source`].
    pub fn with_source(mut self, source: FeatureSource) -> Self {
        self.source = source;
        self
    }
}

/// The LOST object-discovery head.
#[derive(Debug, Clone)]
pub struct Lost {
    options: LostOptions,
}

impl Lost {
    /// A LOST head; errors when `k_patches` is 0 or the gram bias is not finite.
    pub fn new(options: LostOptions) -> Result<Self> {
        if options.k_patches == 0 {
            return Err(Error::option("k_patches", "must be at least 1"));
        }
        if !options.gram_bias.is_finite() {
            return Err(Error::option(
                "gram_bias",
                format!("must be a finite number, got {}", options.gram_bias),
            ));
        }
        Ok(Self { options })
    }

    /// The options.
    pub fn options(&self) -> &LostOptions {
        &self.options
    }

    /// One [`Discovery`] per image of the batch, boxes clipped to `image_size` `(H, W)`: the image size
    /// before padding to the patch size (see [`crate::discovery::pad_to_patches`]).
    pub fn discover(
        &self,
        features: &FeatureMaps,
        image_size: (usize, usize),
    ) -> Result<Vec<Discovery>> {
        let (map, grid) = single_map(features, image_size, "LOST")?;
        (0..map.dim(0)?)
            .map(|b| {
                let gram = patch_gram(&map.get(b)?, false)?;
                self.on_gram(&gram, grid, features.patch_size, image_size)
            })
            .collect()
    }

    /// LOST on one image's gram matrix `F Fᵀ` `(N, N)` row-major (bias not yet added).
    fn on_gram(
        &self,
        gram: &[f32],
        grid: (usize, usize),
        patch: usize,
        image_size: (usize, usize),
    ) -> Result<Discovery> {
        let n = grid.0 * grid.1;
        let bias = self.options.gram_bias;
        let a = |p: usize, q: usize| gram[p * n + q] + bias;
        let degree: Vec<usize> = (0..n)
            .map(|p| (0..n).filter(|&q| q != p && a(p, q) > 0.0).count())
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&p| degree[p]);
        let seed = order[0];
        let map: Vec<f64> = if self.options.seed_expansion {
            let similars: Vec<usize> = order
                .iter()
                .take(self.options.k_patches)
                .copied()
                .filter(|&q| a(seed, q) > 0.0)
                .collect();
            (0..n)
                .map(|j| similars.iter().map(|&q| a(q, j) as f64).sum())
                .collect()
        } else {
            (0..n).map(|j| a(seed, j) as f64).collect()
        };
        let foreground: Vec<bool> = map.iter().map(|&m| m > 0.0).collect();
        let component = seed_component(&foreground, grid, seed).map_err(|_| {
            Error::input(
                "LOST",
                format!(
                    "the seed patch ({}, {}) is not in its own mask (is the gram bias too negative?)",
                    seed / grid.1,
                    seed % grid.1
                ),
            )
        })?;
        Ok(Discovery::new(component, seed, grid, patch, image_size))
    }
}

impl Head for Lost {
    type Output = Vec<Discovery>;

    /// The last block's tensor named by [`LostOptions::source`], without final LayerNorm or CLS token.
    fn request(&self) -> FeatureRequest {
        FeatureRequest {
            blocks: vec![-1],
            norm: false,
            cls_token: false,
            source: self.options.source,
        }
    }

    /// [`Lost::discover`] with boxes clipped to the size of the (padded) input the backbone saw.
    fn forward(&self, features: &FeatureMaps) -> Result<Vec<Discovery>> {
        self.discover(features, features.input_size)
    }
}
