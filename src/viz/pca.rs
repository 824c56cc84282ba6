//! The DINOv2 feature picture: the first three principal components of the patch features shown as RGB,
//! as in the DINOv2 paper's Fig. 1 and the dinov2 demo notebooks.
//!
//! 1. Stack the patch tokens of all given images (`(n, D)`; a joint PCA when there are several), centre
//!    them and take the three leading eigenvectors of their covariance (faer's self-adjoint
//!    eigendecomposition). Each eigenvector's sign is fixed so that its largest coefficient is positive,
//!    so the picture is deterministic.
//! 2. Project, and min-max scale each component to `[0, 1]` over all patches: (R, G, B).
//! 3. Optional foreground: keep the patches whose scaled first component is above (or below) a
//!    threshold, fit the PCA again on them alone, and paint the background black.
//!
//! Shapes: features `(h·w, D)` per image (row-major grid, registers and CLS excluded) → `(3, h, w)`.

use faer::{Mat, Side};
use ndarray::{Array2, Array3, ArrayView2, Axis};

use crate::{Error, Result};

/// Which side of the threshold on the first component is the foreground.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForegroundSide {
    /// Patches whose scaled first component is above the threshold.
    #[default]
    Above,
    /// Patches whose scaled first component is below the threshold.
    Below,
}

/// Foreground selection on the first component (scaled to `[0, 1]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Foreground {
    /// The threshold in `[0, 1]`.
    pub threshold: f32,
    /// Which side is kept.
    pub side: ForegroundSide,
}

impl Foreground {
    /// Keeps the patches above `threshold`.
    pub fn above(threshold: f32) -> Self {
        Self {
            threshold,
            side: ForegroundSide::Above,
        }
    }

    /// Keeps the patches below `threshold`.
    pub fn below(threshold: f32) -> Self {
        Self {
            threshold,
            side: ForegroundSide::Below,
        }
    }
}

/// Options of [`pca_rgb`]. Default: no foreground selection.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PcaOptions {
    /// Foreground thresholding on the first component.
    pub foreground: Option<Foreground>,
}

impl PcaOptions {
    /// Sets the foreground selection.
    pub fn with_foreground(mut self, foreground: Option<Foreground>) -> Self {
        self.foreground = foreground;
        self
    }
}

/// One image's PCA picture on its patch grid.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaMap {
    /// `(3, h, w)` in `[0, 1]`.
    pub rgb: Array3<f32>,
    /// `(h, w)`, true on foreground patches (all true without foreground selection).
    pub foreground: Array2<bool>,
}

/// The leading `k` principal axes `(D, k)` of the rows of `x` `(n, D)`, with the column means `(D,)`.
pub fn principal_axes(x: ArrayView2<'_, f32>, k: usize) -> Result<(Array2<f64>, Vec<f64>)> {
    let (n, d) = x.dim();
    if n == 0 || d == 0 {
        return Err(Error::input(
            "features",
            format!("cannot fit a PCA on {n}x{d} features"),
        ));
    }
    let x = x.mapv(f64::from);
    let mean = x
        .mean_axis(Axis(0))
        .map(|m| m.to_vec())
        .unwrap_or_else(|| vec![0.0; d]);
    let centred = &x - &ndarray::Array1::from(mean.clone());
    let cov = centred.t().dot(&centred) / (n.max(2) - 1) as f64;
    let evd = Mat::<f64>::from_fn(d, d, |i, j| cov[[i, j]])
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| {
            Error::input(
                "features",
                format!("the PCA eigendecomposition failed: {e:?}"),
            )
        })?;
    let u = evd.U();
    let mut axes = Array2::<f64>::zeros((d, k));
    for c in 0..k.min(d) {
        let col = u.col(d - 1 - c);
        let big = (0..d).fold(0, |b, i| if col[i].abs() > col[b].abs() { i } else { b });
        let sign = if col[big] < 0.0 { -1.0 } else { 1.0 };
        for i in 0..d {
            axes[[i, c]] = sign * col[i];
        }
    }
    Ok((axes, mean))
}

/// Projects rows `x` `(n, D)` on `axes` `(D, k)` after subtracting `mean`, then min-max scales each
/// component over the rows: `(n, k)` in `[0, 1]`.
fn project_scaled(x: ArrayView2<'_, f32>, axes: &Array2<f64>, mean: &[f64]) -> Array2<f32> {
    let centred = &x.mapv(f64::from) - &ndarray::Array1::from(mean.to_vec());
    let proj = centred.dot(axes).mapv(|v| v as f32);
    let mut out = proj.clone();
    for (mut col, src) in out.columns_mut().into_iter().zip(proj.columns()) {
        col.assign(&super::heatmap::normalize(src.insert_axis(Axis(1))).remove_axis(Axis(1)));
    }
    out
}

/// PCA pictures of `features` (one `(h·w, D)` array per image, all with the same D) on their `grids`
/// (`(h, w)` each), with one PCA fitted on all of them.
pub fn pca_rgb(
    features: &[ArrayView2<'_, f32>],
    grids: &[(usize, usize)],
    opts: &PcaOptions,
) -> Result<Vec<PcaMap>> {
    if features.is_empty() || features.len() != grids.len() {
        return Err(Error::input(
            "features",
            format!(
                "{} feature arrays for {} grids",
                features.len(),
                grids.len()
            ),
        ));
    }
    for (f, &(h, w)) in features.iter().zip(grids) {
        if f.nrows() != h * w || f.ncols() != features[0].ncols() {
            return Err(Error::input(
                "features",
                format!(
                    "shape {:?} does not fit a {h}x{w} grid of {}-dim features",
                    f.dim(),
                    features[0].ncols()
                ),
            ));
        }
    }
    let all = ndarray::concatenate(Axis(0), features)
        .map_err(|e| Error::input("features", e.to_string()))?;
    let (axes, mean) = principal_axes(all.view(), 3)?;
    let mut rgb = project_scaled(all.view(), &axes, &mean);
    let mut keep = vec![true; all.nrows()];
    if let Some(fg) = opts.foreground {
        if !(0.0..=1.0).contains(&fg.threshold) {
            return Err(Error::option(
                "foreground threshold",
                format!("{} is not in [0, 1]", fg.threshold),
            ));
        }
        for (k, v) in keep.iter_mut().zip(rgb.column(0)) {
            *k = match fg.side {
                ForegroundSide::Above => *v > fg.threshold,
                ForegroundSide::Below => *v < fg.threshold,
            };
        }
        let rows: Vec<usize> = (0..keep.len()).filter(|&i| keep[i]).collect();
        rgb.fill(0.0);
        if !rows.is_empty() {
            let fg_features = all.select(Axis(0), &rows);
            let (axes, mean) = principal_axes(fg_features.view(), 3)?;
            let fg_rgb = project_scaled(fg_features.view(), &axes, &mean);
            for (r, &i) in rows.iter().enumerate() {
                rgb.row_mut(i).assign(&fg_rgb.row(r));
            }
        }
    }
    let mut maps = Vec::with_capacity(grids.len());
    let mut start = 0;
    for &(h, w) in grids {
        let n = h * w;
        let part = rgb.slice(ndarray::s![start..start + n, ..]);
        let rgb_map = Array3::from_shape_fn((3, h, w), |(c, i, j)| part[[i * w + j, c]]);
        let foreground = Array2::from_shape_fn((h, w), |(i, j)| keep[start + i * w + j]);
        maps.push(PcaMap {
            rgb: rgb_map,
            foreground,
        });
        start += n;
    }
    Ok(maps)
}
