//! Token embeddings: HF `Dinov2WithRegistersEmbeddings`. Patches are embedded, masked patches
//! replaced by the mask token, the CLS token prepended, position embeddings (resized to the patch
//! grid, cached per grid) added, and only then the register tokens inserted after CLS, so registers
//! carry no position.
//!
//! Shapes: pixels `(B, C, H, W)` → tokens `(B, 1 + R + h·w, D)`, `h = H / p`, `w = W / p`, laid out
//! `[CLS, reg_0 … reg_{R-1}, patch_0 … patch_{hw-1}]`, patches row-major.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle::{DType, Tensor};
use dinoreg_heads::Scope;

use crate::model::config::Dinov2Config;
use crate::model::layers::{load_registers, mask_patches, PatchEmbed};
use crate::model::pos_embed::resize_grid;
use crate::Result;

/// Embedding parameters and the per-grid cache of resized position tables.
#[derive(Debug)]
pub struct Embeddings {
    patch: PatchEmbed,
    cls_token: Tensor,
    mask_token: Option<Tensor>,
    register_tokens: Option<Tensor>,
    /// `(1, 1 + G², D)` as stored.
    position_embeddings: Tensor,
    grid: usize,
    dim: usize,
    patch_size: usize,
    antialias: bool,
    cache: Mutex<HashMap<(usize, usize), Arc<Tensor>>>,
}

impl Embeddings {
    /// Loads the `embeddings.*` tensors under `scope`.
    pub fn load(scope: &Scope<'_>, cfg: &Dinov2Config) -> Result<Self> {
        let d = cfg.hidden_size;
        let g = cfg.position_grid();
        let r = cfg.num_register_tokens;
        let register_tokens = load_registers(scope, "register_tokens", r, d)?;
        let mask_token = if scope.contains("mask_token") {
            Some(scope.get("mask_token", &[1, d])?)
        } else {
            None
        };
        Ok(Self {
            patch: PatchEmbed::load(
                &scope.pp("patch_embeddings").pp("projection"),
                cfg.num_channels,
                d,
                cfg.patch_size,
            )?,
            cls_token: scope.get("cls_token", &[1, 1, d])?,
            mask_token,
            register_tokens,
            position_embeddings: scope.get("position_embeddings", &[1, 1 + g * g, d])?,
            grid: g,
            dim: d,
            patch_size: cfg.patch_size,
            antialias: cfg.interpolate_antialias(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The patch grid `(h, w)` of `pixels`, or an error for a bad shape.
    pub fn grid(&self, pixels: &Tensor) -> Result<(usize, usize)> {
        self.patch.grid(pixels)
    }

    /// The position table `(1, 1 + h·w, D)` for an input of `height`×`width` pixels, as HF's
    /// `interpolate_pos_encoding` computes it (raw when the patch count matches and H == W).
    pub fn position_table(&self, height: usize, width: usize) -> Result<Arc<Tensor>> {
        let (h, w) = (height / self.patch_size, width / self.patch_size);
        if h * w == self.grid * self.grid && height == width {
            return Ok(Arc::new(self.position_embeddings.clone()));
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = cache.get(&(h, w)) {
            return Ok(t.clone());
        }
        let d = self.dim;
        let dtype = self.position_embeddings.dtype();
        let table = self.position_embeddings.to_dtype(DType::F32)?;
        let cls = table.narrow(1, 0, 1)?;
        let patches = table
            .narrow(1, 1, self.grid * self.grid)?
            .flatten_all()?
            .to_device(&candle::Device::Cpu)?
            .to_vec1::<f32>()?;
        let resized = resize_grid(&patches, (self.grid, self.grid), d, (h, w), self.antialias);
        let resized = Tensor::from_vec(resized, (1, h * w, d), &candle::Device::Cpu)?
            .to_device(table.device())?;
        let full = Arc::new(Tensor::cat(&[&cls, &resized], 1)?.to_dtype(dtype)?);
        cache.insert((h, w), full.clone());
        Ok(full)
    }

    /// Embeds `pixels` `(B, C, H, W)`; `bool_masked_pos` `(B, h·w)` (non-zero = masked) replaces
    /// those patches by the mask token.
    pub fn forward(&self, pixels: &Tensor, bool_masked_pos: Option<&Tensor>) -> Result<Tensor> {
        let (gh, gw) = self.grid(pixels)?;
        let (b, _, height, width) = pixels.dims4()?;
        let mut x = self.patch.forward(pixels)?; // (B, hw, D)
        if let Some(mask) = bool_masked_pos {
            x = mask_patches(&x, mask, self.mask_token.as_ref())?;
        }
        let cls = self
            .cls_token
            .to_dtype(x.dtype())?
            .broadcast_as((b, 1, self.dim))?;
        let x = Tensor::cat(&[&cls, &x], 1)?;
        let pos = self.position_table(height, width)?;
        let x = x.broadcast_add(&pos.to_dtype(x.dtype())?)?;
        match &self.register_tokens {
            None => Ok(x),
            Some(reg) => {
                let r = reg.dim(1)?;
                let reg = reg.to_dtype(x.dtype())?.broadcast_as((b, r, self.dim))?;
                Ok(Tensor::cat(
                    &[&x.narrow(1, 0, 1)?, &reg, &x.narrow(1, 1, gh * gw)?],
                    1,
                )?)
            }
        }
    }
}
