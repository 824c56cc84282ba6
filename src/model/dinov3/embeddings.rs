//! DINOv3's token embedding: HF `DINOv3ViTEmbeddings`. Patches are embedded, masked patches replaced
//! by the mask token, then `[CLS, registers, patches]` concatenated. There is no position table:
//! positions enter the attention as RoPE ([`crate::model::rope`]).
//!
//! Shapes: pixels `(B, C, H, W)` → tokens `(B, 1 + R + h·w, D)`, `h = H / p`, `w = W / p` (floored:
//! trailing rows and columns that do not fill a patch are ignored), patches row-major.

use candle::Tensor;
use dinoreg_heads::Scope;

use crate::model::config::Dinov3Config;
use crate::model::encoder::TokenEmbedding;
use crate::model::layers::{load_mask_token, load_registers, mask_patches, PatchEmbed};
use crate::Result;

/// The embedding parameters.
#[derive(Debug)]
pub struct Dinov3Embeddings {
    patch: PatchEmbed,
    /// `(1, 1, D)`.
    cls_token: Tensor,
    /// `(1, 1, D)` or `(1, D)`.
    mask_token: Option<Tensor>,
    /// `(1, R, D)`; `None` without registers.
    register_tokens: Option<Tensor>,
    dim: usize,
}

impl Dinov3Embeddings {
    /// Loads `cls_token`, `mask_token` (optional), `register_tokens` and
    /// `patch_embeddings.{weight,bias}` under `scope` (HF's `embeddings.`).
    pub fn load(scope: &Scope<'_>, cfg: &Dinov3Config) -> Result<Self> {
        let d = cfg.hidden_size;
        Ok(Self {
            patch: PatchEmbed::load(
                &scope.pp("patch_embeddings"),
                cfg.num_channels,
                d,
                cfg.patch_size,
            )?,
            cls_token: scope.get("cls_token", &[1, 1, d])?,
            mask_token: load_mask_token(scope, "mask_token", d)?,
            register_tokens: load_registers(scope, "register_tokens", cfg.num_register_tokens, d)?,
            dim: d,
        })
    }

    /// The patch grid `(h, w)` of `pixels`, or an error for a bad shape.
    pub fn grid(&self, pixels: &Tensor) -> Result<(usize, usize)> {
        self.patch.grid(pixels)
    }

    /// Embeds `pixels` `(B, C, H, W)`; `bool_masked_pos` `(B, h·w)` (non-zero = masked) replaces
    /// those patches by the mask token.
    pub fn forward(&self, pixels: &Tensor, bool_masked_pos: Option<&Tensor>) -> Result<Tensor> {
        let b = pixels.dim(0)?;
        let mut x = self.patch.forward(pixels)?; // (B, hw, D)
        if let Some(mask) = bool_masked_pos {
            x = mask_patches(&x, mask, self.mask_token.as_ref())?;
        }
        let dtype = x.dtype();
        let cls = self
            .cls_token
            .to_dtype(dtype)?
            .broadcast_as((b, 1, self.dim))?;
        let mut parts = vec![cls];
        if let Some(reg) = &self.register_tokens {
            let r = reg.dim(1)?;
            parts.push(reg.to_dtype(dtype)?.broadcast_as((b, r, self.dim))?);
        }
        parts.push(x);
        Ok(Tensor::cat(&parts, 1)?)
    }
}

impl TokenEmbedding for Dinov3Embeddings {
    fn grid(&self, pixels: &Tensor) -> Result<(usize, usize)> {
        Dinov3Embeddings::grid(self, pixels)
    }

    fn forward(&self, pixels: &Tensor, bool_masked_pos: Option<&Tensor>) -> Result<Tensor> {
        Dinov3Embeddings::forward(self, pixels, bool_masked_pos)
    }
}
