//! The row operations of [`super::vector`] spread over the rayon pool: a token matrix
//! `(rows, width)` is cut into blocks of whole rows, each block handled by one task. Small
//! matrices run on the calling thread.

use rayon::prelude::*;

use super::vector;

/// Floats per task below which splitting further costs more than it saves.
const MIN_TASK: usize = 16 * 1024;

/// Rows per task for a `(rows, width)` matrix: about four tasks per thread, none tiny.
fn rows_per_task(rows: usize, width: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let by_threads = rows.div_ceil(4 * threads);
    let by_size = MIN_TASK.div_ceil(width.max(1));
    by_threads.max(by_size).max(1)
}

/// `normed ← LayerNorm(x (+ pending))` row by row; `x` keeps the added `pending` bias.
pub(crate) fn layer_norm(
    x: &mut [f32],
    pending: Option<&[f32]>,
    weight: &[f32],
    bias: &[f32],
    eps: f32,
    normed: &mut [f32],
) {
    let width = weight.len();
    let per = rows_per_task(x.len() / width, width) * width;
    if per >= x.len() {
        return vector::layer_norm(x, pending, weight, bias, eps, normed);
    }
    x.par_chunks_mut(per)
        .zip(normed.par_chunks_mut(per))
        .for_each(|(x, n)| vector::layer_norm(x, pending, weight, bias, eps, n));
}

/// SwiGLU row by row (rows of width `bias.len()`, result in the first half of each row).
pub(crate) fn swiglu(x: &mut [f32], bias: &[f32]) {
    let width = bias.len();
    let per = rows_per_task(x.len() / width, width) * width;
    if per >= x.len() {
        return vector::swiglu(x, bias);
    }
    x.par_chunks_mut(per).for_each(|x| vector::swiglu(x, bias));
}

/// `x += bias` row by row.
pub(crate) fn add_rows(x: &mut [f32], bias: &[f32]) {
    let width = bias.len();
    let per = rows_per_task(x.len() / width, width) * width;
    if per >= x.len() {
        return vector::add_rows(x, bias);
    }
    x.par_chunks_mut(per)
        .for_each(|x| vector::add_rows(x, bias));
}
