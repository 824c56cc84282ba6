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
//!
//! `A` is never held whole: the degrees come from its lower triangle a block of rows at a time
//! (`PatchFeatures`), and the expansion reads only the rows of the seed and of `S`. Memory is
//! O(N · (C + k_patches)) plus one 16 MB block; time is the N²·C/2 multiply-adds of the triangle.

use crate::discovery::gram::PatchFeatures;
use crate::discovery::{seed_component, single_map, Discovery};
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
                let feats = PatchFeatures::new(&map.get(b)?, false)?;
                self.on_features(&feats, grid, features.patch_size, image_size)
            })
            .collect()
    }

    /// How many other patches each patch correlates positively with (`A[p, q] + β > 0`, `q ≠ p`).
    fn degrees(&self, feats: &PatchFeatures) -> Result<Vec<usize>> {
        let bias = self.options.gram_bias;
        let mut degree = vec![0usize; feats.len()];
        feats.for_each_lower_block(|i0, i1, block| {
            for (i, row) in (i0..i1).zip(block.chunks(i1)) {
                let mut own = 0;
                for (j, &a) in row[..i].iter().enumerate() {
                    let positive = a + bias > 0.0;
                    own += usize::from(positive);
                    degree[j] += usize::from(positive);
                }
                degree[i] += own;
            }
            Ok(())
        })?;
        Ok(degree)
    }

    /// LOST on one image's patch features.
    fn on_features(
        &self,
        feats: &PatchFeatures,
        grid: (usize, usize),
        patch: usize,
        image_size: (usize, usize),
    ) -> Result<Discovery> {
        let n = grid.0 * grid.1;
        let bias = self.options.gram_bias;
        let degree = self.degrees(feats)?;
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&p| degree[p]);
        let seed = order[0];
        let seed_row = feats.rows(&[seed])?;
        let map: Vec<f64> = if self.options.seed_expansion {
            let similars: Vec<usize> = order
                .iter()
                .take(self.options.k_patches)
                .copied()
                .filter(|&q| seed_row[q] + bias > 0.0)
                .collect();
            let rows = feats.rows(&similars)?;
            let mut map = vec![0f64; n];
            for row in rows.chunks(n) {
                map.iter_mut()
                    .zip(row)
                    .for_each(|(m, &a)| *m += (a + bias) as f64);
            }
            map
        } else {
            seed_row.iter().map(|&a| (a + bias) as f64).collect()
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
