//! Patch embedding of both generations: HF `Dinov2WithRegistersPatchEmbeddings` and DINOv3's
//! `patch_embeddings`, a `Conv2d(C, D, kernel=p, stride=p)` with bias. Pixels `(B, C, H, W)` → tokens `(B, (H/p)·(W/p), D)`, row-major; trailing rows and
//! columns that do not fill a patch are ignored (HF floors).

use candle::Tensor;
use dinoreg_heads::Scope;

use crate::{Error, Result};

/// The patch projection.
#[derive(Debug, Clone)]
pub struct PatchEmbed {
    /// `(D, C·p·p)`, the conv kernel flattened for a matmul.
    weight: Tensor,
    bias: Tensor,
    patch: usize,
    channels: usize,
    dim: usize,
}

impl PatchEmbed {
    /// Loads `weight` `(D, C, p, p)` and `bias` `(D,)` under `scope` (DINOv2's
    /// `patch_embeddings.projection`, DINOv3's `patch_embeddings`).
    pub fn load(scope: &Scope<'_>, channels: usize, dim: usize, patch: usize) -> Result<Self> {
        let weight = scope.get("weight", &[dim, channels, patch, patch])?;
        Self::new(weight, scope.get("bias", &[dim])?)
    }

    /// The projection from the conv weight `(D, C, p, p)` and bias `(D,)`.
    pub fn new(weight: Tensor, bias: Tensor) -> Result<Self> {
        let (dim, channels, patch, _) = weight.dims4()?;
        Ok(Self {
            weight: weight.reshape((dim, channels * patch * patch))?,
            bias,
            patch,
            channels,
            dim,
        })
    }

    /// The patch grid `(H/p, W/p)` of an input, or an error when the input is smaller than one
    /// patch or has the wrong number of channels.
    pub fn grid(&self, pixels: &Tensor) -> Result<(usize, usize)> {
        let dims = pixels.dims();
        let [_, c, h, w] = dims else {
            return Err(Error::input(
                "pixel_values",
                format!("expected shape (B, {}, H, W), got {dims:?}", self.channels),
            ));
        };
        if *c != self.channels {
            return Err(Error::input(
                "pixel_values",
                format!(
                    "expected {} channels, got {c} (shape {dims:?})",
                    self.channels
                ),
            ));
        }
        if *h < self.patch || *w < self.patch {
            return Err(Error::input(
                "pixel_values",
                format!(
                    "image {h}x{w} is smaller than one {p}x{p} patch",
                    p = self.patch
                ),
            ));
        }
        Ok((h / self.patch, w / self.patch))
    }

    /// Embeds `pixels` `(B, C, H, W)` into `(B, h·w, D)`.
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let (gh, gw) = self.grid(pixels)?;
        let (b, c, _, _) = pixels.dims4()?;
        let p = self.patch;
        let x = pixels.to_dtype(self.weight.dtype())?;
        // Crop to whole patches, then gather each patch as a row: (B, gh, gw, C, p, p).
        let x = x.narrow(2, 0, gh * p)?.narrow(3, 0, gw * p)?;
        let x = x
            .reshape((b, c, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((b * gh * gw, c * p * p))?;
        let y = x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?;
        Ok(y.reshape((b, gh * gw, self.dim))?)
    }
}
