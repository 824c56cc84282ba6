//! The eigenvector of the largest eigenvalue of a symmetric operator, restricted to the orthogonal
//! complement of known eigenvectors: thick-restart Lanczos (Wu and Simon, 2000) with full
//! reorthogonalisation, in f64.
//!
//! The basis `V` `(m, N)` is kept orthonormal (classical Gram–Schmidt, twice) and orthogonal to the
//! deflated vectors; `A V` is kept too, and the projected matrix `H = Vᵀ A V` is built entry by entry,
//! so that restarts need no tridiagonal bookkeeping. Each step adds `A v_last`, orthogonalised: the
//! Krylov direction. When the basis is full, it shrinks to the `keep` best Ritz vectors; the next
//! step's new direction is then their common residual, so the space stays a Krylov space. It stops
//! when the Ritz pair's residual `‖A x − θ x‖` is at most `tol`.
//!
//! Cost per step: one product with `A` and O(m·N) for the orthogonalisation; memory 2·m·N f64.

use faer::{Mat, Side};

use crate::{Error, Result};

/// Settings of [`largest_eigenpair`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct LanczosOptions {
    /// The largest basis before a restart.
    pub basis: usize,
    /// The Ritz vectors kept at a restart.
    pub keep: usize,
    /// Converged when `‖A x − θ x‖ <= tol` (‖x‖ = 1).
    pub tol: f64,
    /// Give up after this many products with `A`.
    pub max_products: usize,
}

impl Default for LanczosOptions {
    fn default() -> Self {
        Self {
            basis: 64,
            keep: 16,
            tol: 1e-10,
            max_products: 4000,
        }
    }
}

/// What [`largest_eigenpair`] found (TokenCut reads the vector; the rest is for tests and diagnostics).
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Eigenpair {
    /// The eigenvalue θ.
    pub value: f64,
    /// The unit eigenvector.
    pub vector: Vec<f64>,
    /// `‖A x − θ x‖`.
    pub residual: f64,
    /// Products with `A` used.
    pub products: usize,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += alpha * x);
}

/// Makes `w` orthogonal to every vector of `against` (unit vectors), twice.
fn orthogonalise(w: &mut [f64], against: &[&[f64]]) {
    for _ in 0..2 {
        for v in against {
            let c = dot(v, w);
            axpy(-c, v, w);
        }
    }
}

/// The basis, its image under `A`, and the projected matrix.
struct Basis {
    v: Vec<Vec<f64>>,
    av: Vec<Vec<f64>>,
    h: Vec<Vec<f64>>,
}

impl Basis {
    /// Adds the unit vector `x` (orthogonal to the basis) and its image `ax`.
    fn push(&mut self, x: Vec<f64>, ax: Vec<f64>) {
        let column: Vec<f64> = self.v.iter().map(|v| dot(v, &ax)).collect();
        for (row, c) in self.h.iter_mut().zip(&column) {
            row.push(*c);
        }
        let mut last = column;
        last.push(dot(&x, &ax));
        self.h.push(last);
        self.v.push(x);
        self.av.push(ax);
    }

    /// The eigenpairs of the symmetrised `H`, eigenvalues ascending: `(values, vectors by column)`.
    fn ritz(&self) -> Result<(Vec<f64>, Mat<f64>)> {
        let m = self.v.len();
        let h = Mat::<f64>::from_fn(m, m, |i, j| 0.5 * (self.h[i][j] + self.h[j][i]));
        let evd = h.self_adjoint_eigen(Side::Lower).map_err(|e| {
            Error::input(
                "eigensolver",
                format!("the projected problem failed: {e:?}"),
            )
        })?;
        let values = (0..m).map(|i| evd.S().column_vector()[i]).collect();
        Ok((values, evd.U().to_owned()))
    }

    /// `Σ_i s_i · vectors[i]` for the coefficients in column `col` of `s`.
    fn combine(vectors: &[Vec<f64>], s: &Mat<f64>, col: usize) -> Vec<f64> {
        let mut out = vec![0f64; vectors[0].len()];
        for (i, v) in vectors.iter().enumerate() {
            axpy(s[(i, col)], v, &mut out);
        }
        out
    }
}

/// The largest eigenpair of the symmetric operator `apply` (`apply(x, y)`: `y = A x`, N × N) on the
/// orthogonal complement of the unit vectors `deflate` (which must be eigenvectors of `A`), from
/// `start` (any vector with a component in that complement).
pub(crate) fn largest_eigenpair(
    apply: impl Fn(&[f64], &mut [f64]),
    deflate: &[&[f64]],
    start: Vec<f64>,
    opts: LanczosOptions,
) -> Result<Eigenpair> {
    let n = start.len();
    let scale = (n as f64).sqrt() * f64::EPSILON;
    let image = |x: &[f64]| {
        let mut y = vec![0f64; n];
        apply(x, &mut y);
        y
    };
    let mut basis = Basis {
        v: Vec::new(),
        av: Vec::new(),
        h: Vec::new(),
    };
    let mut products = 0;
    let mut next = start;
    loop {
        // Grow the basis with the next Krylov direction until it is full or invariant.
        let mut invariant = false;
        while basis.v.len() < opts.basis {
            let mut against: Vec<&[f64]> = deflate.to_vec();
            against.extend(basis.v.iter().map(Vec::as_slice));
            let before = dot(&next, &next).sqrt();
            orthogonalise(&mut next, &against);
            let norm = dot(&next, &next).sqrt();
            // Also true for a NaN norm: an invariant subspace (or broken input) ends the basis.
            let grew = norm > 1e3 * scale * before.max(1e-300);
            if !grew {
                invariant = true;
                break;
            }
            next.iter_mut().for_each(|x| *x /= norm);
            let ax = image(&next);
            products += 1;
            let x = std::mem::replace(&mut next, ax.clone());
            basis.push(x, ax);
        }
        if basis.v.is_empty() {
            return Err(Error::input(
                "eigensolver",
                "the start vector lies in the deflated space",
            ));
        }
        let (values, s) = basis.ritz()?;
        let top = values.len() - 1;
        let theta = values[top];
        let x = Basis::combine(&basis.v, &s, top);
        let mut r = Basis::combine(&basis.av, &s, top);
        axpy(-theta, &x, &mut r);
        let residual = dot(&r, &r).sqrt();
        if residual <= opts.tol || invariant {
            return Ok(Eigenpair {
                value: theta,
                vector: x,
                residual,
                products,
            });
        }
        if products >= opts.max_products {
            return Err(Error::input(
                "eigensolver",
                format!("no convergence after {products} products (residual {residual:.2e})"),
            ));
        }
        // Thick restart: keep the best Ritz vectors; the direction to add next is the residual.
        let keep = opts.keep.clamp(1, values.len());
        let cols: Vec<usize> = (values.len() - keep..values.len()).collect();
        let v: Vec<Vec<f64>> = cols
            .iter()
            .map(|&c| Basis::combine(&basis.v, &s, c))
            .collect();
        let av: Vec<Vec<f64>> = cols
            .iter()
            .map(|&c| Basis::combine(&basis.av, &s, c))
            .collect();
        basis = Basis {
            v: Vec::new(),
            av: Vec::new(),
            h: Vec::new(),
        };
        for (x, ax) in v.into_iter().zip(av) {
            basis.push(x, ax);
        }
        next = r;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_second_largest_of_a_diagonal_operator() -> Result<()> {
        // A = diag(1, 2, ..., 300) with e_300 deflated: the answer is e_299, eigenvalue 299.
        let n = 300;
        let apply = |x: &[f64], y: &mut [f64]| {
            for (i, (y, x)) in y.iter_mut().zip(x).enumerate() {
                *y = (i + 1) as f64 * x;
            }
        };
        let mut top = vec![0f64; n];
        top[n - 1] = 1.0;
        let start: Vec<f64> = (0..n).map(|i| 1.0 + (i % 7) as f64).collect();
        let found = largest_eigenpair(apply, &[&top], start, LanczosOptions::default())?;
        assert!((found.value - 299.0).abs() < 1e-8, "{}", found.value);
        assert!(found.vector[n - 2].abs() > 1.0 - 1e-8);
        assert!(found.residual <= 1e-10);
        assert!(found.products < 1000, "{} products", found.products);
        Ok(())
    }

    #[test]
    fn a_small_space_is_exhausted_exactly() -> Result<()> {
        // Four dimensions, one deflated: the Krylov space closes after three steps.
        let a = [
            [4.0, 1.0, 0.0, 0.0],
            [1.0, 3.0, 0.5, 0.0],
            [0.0, 0.5, 2.0, 0.2],
            [0.0, 0.0, 0.2, 1.0],
        ];
        let apply = |x: &[f64], y: &mut [f64]| {
            for i in 0..4 {
                y[i] = (0..4).map(|j| a[i][j] * x[j]).sum();
            }
        };
        let m = Mat::<f64>::from_fn(4, 4, |i, j| a[i][j]);
        let evd = m
            .self_adjoint_eigen(Side::Lower)
            .map_err(|e| Error::input("test", format!("{e:?}")))?;
        let u = evd.U();
        let top: Vec<f64> = (0..4).map(|i| u[(i, 3)]).collect();
        let found = largest_eigenpair(apply, &[&top], vec![1.0; 4], LanczosOptions::default())?;
        let want = evd.S().column_vector()[2];
        assert!((found.value - want).abs() < 1e-12);
        let cos: f64 = (0..4).map(|i| u[(i, 2)] * found.vector[i]).sum();
        assert!((cos.abs() - 1.0).abs() < 1e-12);
        Ok(())
    }
}
