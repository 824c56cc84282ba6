//! Streaming accumulation of sliding-window logits straight into logits at the original image size,
//! without mmseg's full-resolution `(B, K, H_s, W_s)` map at each scale.
//!
//! mmseg (`slide_inference` with `rescale=True`) resizes each window's logits `G` `(K, g_h, g_w)` to
//! the window size, sums them into the scaled image's canvas, divides by the per-pixel window count
//! and resizes the canvas to the original size `(H, W)`. Each step is linear, bilinear resizes are
//! separable, and the window count is a per-row count times a per-column count (the windows form a
//! grid), so one window's share of the output is `R · G · Cᵀ` per class, with
//! `R = resize(H_s → H) · diag(1 / row count) · place(window rows) · resize(g_h → window height)`
//! and `C` the same along the columns. Both are sparse: each output row mixes at most 2 × 2 grid rows.
//! [`AxisMap`] holds one such factor; [`add_window`] adds `R · G · Cᵀ` into the output planes.
//! Only the order of floating-point additions differs from mmseg (relative differences ~1e-7).
//!
//! The softmax is not linear, so a pass's logits are complete only once all its windows are in:
//! [`softmax_add`] then turns them into probabilities and adds them to the average.
//!
//! Buffers are row-major f32: output planes `(B, K, H, W)`, window logits `(B, K, g_h, g_w)`.

use rayon::prelude::*;

use crate::ops::taps;

/// The at most four `(grid index, weight)` pairs that make one output coordinate along one axis.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Taps4 {
    len: usize,
    index: [usize; 4],
    weight: [f32; 4],
}

impl Taps4 {
    fn push(&mut self, index: usize, weight: f32) {
        if let Some(k) = self.index[..self.len].iter().position(|&i| i == index) {
            self.weight[k] += weight;
            return;
        }
        // Two output taps, each reaching two grid cells: never more than four.
        self.index[self.len] = index;
        self.weight[self.len] = weight;
        self.len += 1;
    }

    fn pairs(&self) -> impl Iterator<Item = (usize, f32)> + '_ {
        self.index[..self.len]
            .iter()
            .copied()
            .zip(self.weight[..self.len].iter().copied())
    }
}

/// One axis of a window's share of the output: the sparse `(output, grid)` matrix that resizes `g`
/// grid cells to the window's `span` of the scaled axis, divides by the count of windows over each
/// scaled pixel, and resizes the scaled axis to the output axis (optionally mirrored, for flipped
/// passes). Non-zero on output coordinates `start..start + taps.len()`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AxisMap {
    /// The grid length it reads.
    pub grid: usize,
    start: usize,
    taps: Vec<Taps4>,
}

impl AxisMap {
    /// The map of a window over `span` `(a, b)` of a scaled axis whose per-pixel window counts are
    /// `counts` (its length is the scaled length), with `grid` logit cells, onto an output axis of
    /// `out` pixels; `flip` mirrors the output axis.
    pub fn new(span: (usize, usize), grid: usize, counts: &[f32], out: usize, flip: bool) -> Self {
        let (a, b) = span;
        let to_out = taps(counts.len(), out, false);
        let to_window = taps(grid, b - a, false);
        let mut rows: Vec<(usize, Taps4)> = Vec::new();
        for (o, t) in to_out.iter().enumerate() {
            let mut entry = Taps4::default();
            for (s, w) in [(t.i0, t.w0), (t.i1, t.w1)] {
                if w == 0.0 || !(a..b).contains(&s) {
                    continue;
                }
                let cell = to_window[s - a];
                let scale = w / counts[s];
                for (g, v) in [(cell.i0, cell.w0), (cell.i1, cell.w1)] {
                    if v != 0.0 {
                        entry.push(g, scale * v);
                    }
                }
            }
            if entry.len > 0 {
                rows.push((o, entry));
            }
        }
        let (start, end) = match (rows.first(), rows.last()) {
            (Some(first), Some(last)) => (first.0, last.0 + 1),
            _ => (0, 0),
        };
        let mut taps = vec![Taps4::default(); end - start];
        for (o, entry) in rows {
            taps[o - start] = entry;
        }
        if flip {
            taps.reverse();
            return Self {
                grid,
                start: out - end,
                taps,
            };
        }
        Self { grid, start, taps }
    }

    /// Whether the window reaches no output pixel (a tiny window far downscaled).
    pub fn is_empty(&self) -> bool {
        self.taps.is_empty()
    }
}

/// Adds one window's logits into the output: for every plane (image, class) `p`,
/// `out[p] += rows · grid[p] · colsᵀ`. `out` holds planes of `out_width`-wide rows, `grid` the same
/// number of `rows.grid × cols.grid` planes.
pub(crate) fn add_window(
    out: &mut [f32],
    out_width: usize,
    grid: &[f32],
    rows: &AxisMap,
    cols: &AxisMap,
) {
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    let (gh, gw) = (rows.grid, cols.grid);
    let planes = grid.len() / (gh * gw);
    let plane = out.len() / planes;
    let nx = cols.taps.len();
    out.par_chunks_mut(plane)
        .zip(grid.par_chunks(gh * gw))
        .for_each_init(Vec::new, |across, (dst, src)| {
            // Along the columns first: `across` is (gh, nx).
            across.clear();
            across.resize(gh * nx, 0f32);
            for (row, line) in src.chunks(gw).zip(across.chunks_mut(nx)) {
                for (v, t) in line.iter_mut().zip(&cols.taps) {
                    *v = t.pairs().map(|(g, w)| w * row[g]).sum();
                }
            }
            // Then down the rows, into the output rows the window reaches: each output row is
            // read and written once, whatever its number of taps.
            let line = |g: usize| &across[g * nx..(g + 1) * nx];
            for (y, t) in rows.taps.iter().enumerate() {
                let at = (rows.start + y) * out_width + cols.start;
                let target = &mut dst[at..at + nx];
                let [g0, g1, g2, g3] = t.index;
                let [w0, w1, w2, w3] = t.weight;
                match t.len {
                    1 => {
                        let l0 = line(g0);
                        for (o, a) in target.iter_mut().zip(l0) {
                            *o += w0 * a;
                        }
                    }
                    2 => {
                        let (l0, l1) = (line(g0), line(g1));
                        for ((o, a), b) in target.iter_mut().zip(l0).zip(l1) {
                            *o += w0 * a + w1 * b;
                        }
                    }
                    _ => {
                        // Three or four taps (missing ones weigh 0 at index 0).
                        let (l0, l1, l2, l3) = (line(g0), line(g1), line(g2), line(g3));
                        for ((((o, a), b), c), d) in
                            target.iter_mut().zip(l0).zip(l1).zip(l2).zip(l3)
                        {
                            *o += w0 * a + w1 * b + w2 * c + w3 * d;
                        }
                    }
                }
            }
        });
}

/// For every image of `logits` `(B, K, P)` (`classes` = K planes of `pixels` = P values each),
/// replaces the logits with their softmax over the classes, as `candle_nn::ops::softmax` computes
/// it (max-subtracted), and adds it into `probs` (same layout).
pub(crate) fn softmax_add(logits: &mut [f32], probs: &mut [f32], classes: usize, pixels: usize) {
    const CHUNK: usize = 2048;
    let image = classes * pixels;
    for (l, p) in logits.chunks_mut(image).zip(probs.chunks_mut(image)) {
        class_slices(l, pixels, CHUNK)
            .into_par_iter()
            .zip(class_slices(p, pixels, CHUNK))
            .for_each(|(mut l, mut p)| softmax_add_chunk(&mut l, &mut p));
    }
}

/// One image's `(K, P)` planes cut into pixel chunks: for each chunk, its slice of every class plane.
fn class_slices(image: &mut [f32], pixels: usize, chunk: usize) -> Vec<Vec<&mut [f32]>> {
    let mut out: Vec<Vec<&mut [f32]>> = (0..pixels.div_ceil(chunk)).map(|_| Vec::new()).collect();
    for plane in image.chunks_mut(pixels) {
        for (c, piece) in plane.chunks_mut(chunk).enumerate() {
            out[c].push(piece);
        }
    }
    out
}

fn softmax_add_chunk(logits: &mut [&mut [f32]], probs: &mut [&mut [f32]]) {
    let n = logits.first().map_or(0, |c| c.len());
    let mut max = vec![f32::NEG_INFINITY; n];
    for class in logits.iter() {
        max.iter_mut()
            .zip(class.iter())
            .for_each(|(m, v)| *m = m.max(*v));
    }
    let mut sum = vec![0f32; n];
    for class in logits.iter_mut() {
        for ((v, m), s) in class.iter_mut().zip(&max).zip(sum.iter_mut()) {
            *v = (*v - m).exp();
            *s += *v;
        }
    }
    for (class, target) in logits.iter().zip(probs.iter_mut()) {
        for ((v, s), p) in class.iter().zip(&sum).zip(target.iter_mut()) {
            *p += v / s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_covering_everything_at_the_same_size_is_copied() {
        // Identity resizes, count 1: R and C are identities.
        let counts = vec![1f32; 3];
        let rows = AxisMap::new((0, 3), 3, &counts, 3, false);
        let cols = AxisMap::new((0, 3), 3, &counts, 3, true);
        let grid: Vec<f32> = (0..9).map(|v| v as f32).collect();
        let mut out = vec![0f32; 9];
        add_window(&mut out, 3, &grid, &rows, &cols);
        // Columns mirrored by the flip.
        assert_eq!(out, vec![2., 1., 0., 5., 4., 3., 8., 7., 6.]);
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let mut logits = vec![0f32, 1., 2., 3., 4., 5.];
        let mut probs = vec![0f32; 6];
        softmax_add(&mut logits, &mut probs, 2, 3);
        for x in 0..3 {
            assert!((probs[x] + probs[3 + x] - 1.0).abs() < 1e-6);
            assert!((probs[3 + x] - 1.0 / (1.0 + (-3f32).exp())).abs() < 1e-6);
        }
    }
}
