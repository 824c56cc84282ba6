//! The two object-discovery methods a [`DiscoveryPipeline`](super::DiscoveryPipeline) runs, LOST
//! (valeoai/LOST) and TokenCut (YangtaoWANG95/TokenCut), with their options, and the patch-count
//! guard that keeps each within what it handles: LOST builds an `N × N` f32 gram matrix (20 000
//! patches: 1.6 GB) and TokenCut a dense eigendecomposition costing `N³` (6 000 patches: about half a
//! minute).

use dinoreg_heads::discovery::{Discovery, Lost, LostOptions, TokenCut, TokenCutOptions};
use dinoreg_heads::{FeatureMaps, FeatureRequest, FeatureSource, Head};

use crate::{Error, Result};

/// The most patches LOST is run on.
pub const LOST_MAX_PATCHES: usize = 20_000;
/// The most patches TokenCut is run on.
pub const TOKENCUT_MAX_PATCHES: usize = 6_000;

/// The discovery method and its options (the heads' own option types).
///
/// ```
/// use dinoreg::heads::discovery::LostOptions;
/// use dinoreg::heads::FeatureSource;
/// use dinoreg::pipelines::DiscoveryMethod;
///
/// let method = DiscoveryMethod::Lost(LostOptions::default().with_k_patches(50))
///     .with_source(FeatureSource::Queries);
/// assert_eq!(method.source(), FeatureSource::Queries);
/// assert_eq!(method.max_patches(), 20_000);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum DiscoveryMethod {
    /// LOST (Siméoni et al. 2021): the lowest-degree patch and its expansion.
    Lost(LostOptions),
    /// TokenCut (Wang et al. 2022): a normalised cut of the patch graph.
    TokenCut(TokenCutOptions),
}

impl Default for DiscoveryMethod {
    /// LOST with its paper's options.
    fn default() -> Self {
        Self::Lost(LostOptions::default())
    }
}

impl DiscoveryMethod {
    /// The method's name, `LOST` or `TokenCut`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Lost(_) => "LOST",
            Self::TokenCut(_) => "TokenCut",
        }
    }

    /// The most patches the method is run on ([`LOST_MAX_PATCHES`], [`TOKENCUT_MAX_PATCHES`]).
    pub fn max_patches(&self) -> usize {
        match self {
            Self::Lost(_) => LOST_MAX_PATCHES,
            Self::TokenCut(_) => TOKENCUT_MAX_PATCHES,
        }
    }

    /// Which tensor of the last block the method reads.
    pub fn source(&self) -> FeatureSource {
        match self {
            Self::Lost(o) => o.source,
            Self::TokenCut(o) => o.source,
        }
    }

    /// Sets which tensor of the last block the method reads (keys by default).
    pub fn with_source(self, source: FeatureSource) -> Self {
        match self {
            Self::Lost(o) => Self::Lost(o.with_source(source)),
            Self::TokenCut(o) => Self::TokenCut(o.with_source(source)),
        }
    }

    /// Errors when a grid of `grid` `(h, w)` patches is more than the method handles; `image` names
    /// the input in the message.
    pub fn check_grid(&self, grid: (usize, usize), image: &str) -> Result<()> {
        let n = grid.0 * grid.1;
        let max = self.max_patches();
        if n > max {
            return Err(Error::input(
                image,
                format!(
                    "{}x{} = {n} patches is more than {} handles ({max}); shrink the image with a short side (--short-side)",
                    grid.0,
                    grid.1,
                    self.name()
                ),
            ));
        }
        Ok(())
    }
}

/// The head of a [`DiscoveryMethod`], built once (its options checked).
#[derive(Debug, Clone)]
pub(crate) enum MethodHead {
    Lost(Lost),
    TokenCut(TokenCut),
}

impl MethodHead {
    /// Builds the head; errors on invalid options (for example `k_patches` 0).
    pub(crate) fn new(method: &DiscoveryMethod) -> Result<Self> {
        Ok(match method.clone() {
            DiscoveryMethod::Lost(o) => Self::Lost(Lost::new(o)?),
            DiscoveryMethod::TokenCut(o) => Self::TokenCut(TokenCut::new(o)?),
        })
    }

    /// The features the head reads.
    pub(crate) fn request(&self) -> FeatureRequest {
        match self {
            Self::Lost(h) => h.request(),
            Self::TokenCut(h) => h.request(),
        }
    }

    /// One object per image of `features`, boxes clipped to `image_size` `(H, W)`.
    pub(crate) fn discover(
        &self,
        features: &FeatureMaps,
        image_size: (usize, usize),
    ) -> Result<Vec<Discovery>> {
        Ok(match self {
            Self::Lost(h) => h.discover(features, image_size)?,
            Self::TokenCut(h) => h.discover(features, image_size)?,
        })
    }
}
