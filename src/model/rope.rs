//! DINOv3's 2-D rotary position embedding, exactly as HF `DINOv3ViTRopePositionEmbedding`,
//! `get_patches_center_coordinates` and `apply_rotary_pos_emb` compute it, all in f32:
//!
//! - patch centres `c_y = (i + 0.5) / h`, `c_x = (j + 0.5) / w` (each axis by its own patch count),
//!   row-major over the `h × w` grid, then `2c − 1` (range [−1, 1]);
//! - `inv_freq[k] = 1 / theta^(4k / head_dim)`, `k < head_dim / 4`;
//! - angles `(2π · c)[axis] · inv_freq[k]`, laid out `[y·f₀ … y·f_K, x·f₀ … x·f_K]` and tiled twice
//!   to `head_dim`; `cos` and `sin` of them;
//! - `rotated = x · cos + rotate_half(x) · sin`, `rotate_half(x) = [−x[hd/2:], x[:hd/2]]`, on the q
//!   and k of the patch tokens only (the CLS and register tokens before them are not rotated).
//!
//! The training-time coordinate augmentations (`pos_embed_shift`, `pos_embed_jitter`,
//! `pos_embed_rescale`) act only in HF's training mode and are not applied.
//!
//! Shapes: a table is `(h·w, head_dim)`; the generic path rotates q, k `(B, H, T, head_dim)`; the
//! fused path rotates the rows of the `(B·T, 3D)` q/k/v projection in place
//! (`model/kernels/rope.rs`). Tables are cached per grid.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle::{DType, Device, Tensor};

use crate::{Error, Result};

/// Grids whose tables are kept; the cache is emptied when a new grid would exceed this (HF keeps
/// 32 coordinate grids in an LRU cache).
const CACHED_GRIDS: usize = 32;

/// `1 / theta^(4k / head_dim)` for `k < head_dim / 4`, in f32 as HF computes it
/// (`1 / theta ** arange(0, 1, 4 / head_dim)`).
pub fn inv_freq(head_dim: usize, theta: f64) -> Vec<f32> {
    let step = 4.0 / head_dim as f64;
    (0..head_dim / 4)
        .map(|k| 1.0 / (theta as f32).powf((k as f64 * step) as f32))
        .collect()
}

/// The patch centres of an `h × w` grid, row-major, as `(y, x)` in [−1, 1].
pub fn patch_coords(h: usize, w: usize) -> Vec<[f32; 2]> {
    let axis = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| 2.0 * ((0.5 + i as f32) / n as f32) - 1.0)
            .collect()
    };
    let (ys, xs) = (axis(h), axis(w));
    ys.iter()
        .flat_map(|&y| xs.iter().map(move |&x| [y, x]))
        .collect()
}

/// The cos and sin tables of one patch grid.
#[derive(Debug)]
pub struct RopeTable {
    grid: (usize, usize),
    head_dim: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// `cos` as a tensor `(h·w, head_dim)` in the model's dtype, on its device.
    cos_t: Tensor,
    /// `sin` likewise.
    sin_t: Tensor,
}

impl RopeTable {
    /// Computes the tables of `grid` for `inv_freq` (`head_dim / 4` values), with tensor copies in
    /// `dtype` on `device`.
    pub fn new(
        grid: (usize, usize),
        inv_freq: &[f32],
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let quarter = inv_freq.len();
        let head_dim = 4 * quarter;
        let two_pi = (2.0 * std::f64::consts::PI) as f32;
        let n = grid.0 * grid.1;
        let mut cos = Vec::with_capacity(n * head_dim);
        let mut sin = Vec::with_capacity(n * head_dim);
        let mut angles = vec![0f32; 2 * quarter];
        for c in patch_coords(grid.0, grid.1) {
            for (axis, &coord) in c.iter().enumerate() {
                for (k, f) in inv_freq.iter().enumerate() {
                    angles[axis * quarter + k] = two_pi * coord * f;
                }
            }
            for _ in 0..2 {
                cos.extend(angles.iter().map(|a| a.cos()));
                sin.extend(angles.iter().map(|a| a.sin()));
            }
        }
        let tensor = |v: &[f32]| -> Result<Tensor> {
            Ok(Tensor::from_slice(v, (n, head_dim), &Device::Cpu)?
                .to_dtype(dtype)?
                .to_device(device)?)
        };
        Ok(Self {
            cos_t: tensor(&cos)?,
            sin_t: tensor(&sin)?,
            grid,
            head_dim,
            cos,
            sin,
        })
    }

    /// The patch grid `(h, w)`.
    pub fn grid(&self) -> (usize, usize) {
        self.grid
    }

    /// The head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Number of patch tokens `h·w`.
    pub fn patches(&self) -> usize {
        self.grid.0 * self.grid.1
    }

    /// `cos` `(h·w, head_dim)` in the model's dtype.
    pub fn cos(&self) -> &Tensor {
        &self.cos_t
    }

    /// `sin` `(h·w, head_dim)` in the model's dtype.
    pub fn sin(&self) -> &Tensor {
        &self.sin_t
    }

    /// `cos` and `sin` as f32 slices `(h·w · head_dim)`, for the fused path.
    pub(crate) fn slices(&self) -> (&[f32], &[f32]) {
        (&self.cos, &self.sin)
    }

    /// Rotates the last `h·w` tokens of `x` `(B, H, T, head_dim)`; the tokens before them (CLS
    /// and registers) are returned unchanged.
    pub fn rotate(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, t, hd) = x.dims4()?;
        let n = self.patches();
        if hd != self.head_dim || t < n {
            return Err(Error::input(
                "RoPE",
                format!(
                    "a table for {}x{} patches of head width {} cannot rotate {t} tokens of width {hd}",
                    self.grid.0, self.grid.1, self.head_dim
                ),
            ));
        }
        let prefix = t - n;
        let patches = x.narrow(2, prefix, n)?;
        let half = hd / 2;
        let rotated = Tensor::cat(
            &[
                &patches.narrow(3, half, half)?.neg()?,
                &patches.narrow(3, 0, half)?,
            ],
            3,
        )?;
        let dtype = x.dtype();
        let out = (patches.broadcast_mul(&self.cos_t.to_dtype(dtype)?)?
            + rotated.broadcast_mul(&self.sin_t.to_dtype(dtype)?)?)?;
        Ok(Tensor::cat(&[&x.narrow(2, 0, prefix)?, &out], 2)?)
    }
}

/// The RoPE of a model: its frequencies and a per-grid cache of tables.
#[derive(Debug)]
pub struct Rope {
    inv_freq: Vec<f32>,
    device: Device,
    dtype: DType,
    cache: Mutex<HashMap<(usize, usize), Arc<RopeTable>>>,
}

impl Rope {
    /// The RoPE of heads of width `head_dim` (a multiple of 4) with base `theta`, whose tables are
    /// made in `dtype` on `device`.
    pub fn new(head_dim: usize, theta: f64, device: &Device, dtype: DType) -> Result<Self> {
        if head_dim == 0 || !head_dim.is_multiple_of(4) {
            return Err(Error::option(
                "head_dim",
                format!("RoPE needs a head width that is a positive multiple of 4, got {head_dim}"),
            ));
        }
        if !(theta.is_finite() && theta > 0.0) {
            return Err(Error::option(
                "rope_theta",
                format!("must be positive and finite, got {theta}"),
            ));
        }
        Ok(Self {
            inv_freq: inv_freq(head_dim, theta),
            device: device.clone(),
            dtype,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The frequencies `(head_dim / 4,)`.
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// The tables of an `h × w` patch grid (computed once per grid).
    pub fn table(&self, grid: (usize, usize)) -> Result<Arc<RopeTable>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = cache.get(&grid) {
            return Ok(t.clone());
        }
        let table = Arc::new(RopeTable::new(
            grid,
            &self.inv_freq,
            &self.device,
            self.dtype,
        )?);
        if cache.len() >= CACHED_GRIDS {
            cache.clear();
        }
        cache.insert(grid, table.clone());
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_tiled_and_cached() {
        let rope = Rope::new(8, 100.0, &Device::Cpu, DType::F32).unwrap();
        assert_eq!(rope.inv_freq(), &[1.0, 0.1]);
        let t = rope.table((2, 3)).unwrap();
        assert!(Arc::ptr_eq(&t, &rope.table((2, 3)).unwrap()));
        let (cos, _) = t.slices();
        // Row 0 is (y, x) = (-0.5, -2/3): [y f0, y f1, x f0, x f1] twice.
        assert_eq!(&cos[0..4], &cos[4..8]);
        assert!((cos[0] - (std::f32::consts::PI).cos()).abs() < 1e-6);
        assert!(Rope::new(6, 100.0, &Device::Cpu, DType::F32).is_err());
        assert!(Rope::new(8, 0.0, &Device::Cpu, DType::F32).is_err());
    }
}
