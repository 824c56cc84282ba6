//! Where the windows of one scaled image lie: mmseg's `slide_inference` geometry (and the one window of
//! `whole_inference`), and mmcv's keep-ratio `rescale_size` for the test scales.
//!
//! mmseg's sliding windows form a grid: window `(i, j)` covers row span `i` × column span `j`, so the
//! number of windows covering a pixel (mmseg's `count_mat`) is the product of a per-row and a
//! per-column count. [`WindowGrid`] keeps the spans and those counts.

use super::options::Window;
use crate::{Error, Result};

/// mmcv's keep-ratio `rescale_size` for dinov2's test scale `(long_edge, short_edge)` times `ratio`
/// (mmseg's `MultiScaleFlipAug` takes `int(edge × ratio)`): the output `(h, w)` for an image `size`.
/// With `short_side = None` the scale is the image's own `(long, short)` edges.
pub fn rescaled_size(
    size: (usize, usize),
    short_side: Option<usize>,
    ratio: f64,
) -> (usize, usize) {
    let (h, w) = size;
    let (long, short) = match short_side {
        Some(s) => (99_999_999usize, s),
        None => (h.max(w), h.min(w)),
    };
    let long = (long as f64 * ratio) as usize;
    let short = (short as f64 * ratio) as usize;
    let scale = f64::min(
        long.max(short) as f64 / h.max(w).max(1) as f64,
        long.min(short) as f64 / h.min(w).max(1) as f64,
    );
    let edge = |x: usize| ((x as f64 * scale + 0.5) as usize).max(1);
    (edge(h), edge(w))
}

/// The largest scaled image (height x width, in pixels) [`checked_rescaled_size`] returns: 8192 x
/// 8192. A thin strip at a short side of 512 (1 x 16384 becomes 512 x 8388608) is refused instead of
/// allocated.
pub const MAX_SCALED_PIXELS: usize = 8192 * 8192;

/// [`rescaled_size`], refused with an error naming the sizes when the result is over
/// [`MAX_SCALED_PIXELS`].
pub fn checked_rescaled_size(
    size: (usize, usize),
    short_side: Option<usize>,
    ratio: f64,
) -> Result<(usize, usize)> {
    let (h, w) = rescaled_size(size, short_side, ratio);
    if h.checked_mul(w).is_none_or(|px| px > MAX_SCALED_PIXELS) {
        let side = short_side.map_or("its own size".to_string(), |s| format!("short side {s}"));
        return Err(Error::input(
            "image size",
            format!(
                "{}x{} at {side} x {ratio} becomes {h}x{w}, over the limit of {MAX_SCALED_PIXELS} pixels; crop the image or lower the short side",
                size.0, size.1
            ),
        ));
    }
    Ok((h, w))
}

/// The sliding windows of mmseg's `slide_inference` over an `(h, w)` image: `(y1, y2, x1, x2)`,
/// exclusive ends, row by row. Errors when the image is empty, a crop or stride is 0, or a stride is
/// larger than the crop (see [`Window::slide`]).
pub fn slide_windows(
    size: (usize, usize),
    crop: (usize, usize),
    stride: (usize, usize),
) -> Result<Vec<(usize, usize, usize, usize)>> {
    let grid = WindowGrid::new(size, &Window::slide(crop, stride)?)?;
    Ok(grid
        .rows
        .iter()
        .flat_map(|&(y1, y2)| grid.cols.iter().map(move |&(x1, x2)| (y1, y2, x1, x2)))
        .collect())
}

/// The windows over one scaled image as row spans × column spans, with how many spans cover each row
/// and each column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WindowGrid {
    /// Row spans `(y1, y2)`, exclusive end, top to bottom.
    pub rows: Vec<(usize, usize)>,
    /// Column spans `(x1, x2)`, exclusive end, left to right.
    pub cols: Vec<(usize, usize)>,
    /// How many row spans hold each row (length h).
    pub row_counts: Vec<f32>,
    /// How many column spans hold each column (length w).
    pub col_counts: Vec<f32>,
}

impl WindowGrid {
    /// The windows of `window` over an `(h, w)` image; errors on an empty image or an invalid window.
    pub fn new(size: (usize, usize), window: &Window) -> Result<Self> {
        let (h, w) = size;
        if h == 0 || w == 0 {
            return Err(Error::input(
                "pixels",
                format!("a {h}x{w} image has no window"),
            ));
        }
        window.validate()?;
        let (rows, cols) = match *window {
            Window::Whole => (vec![(0, h)], vec![(0, w)]),
            Window::Slide { crop, stride } => {
                (spans(h, crop.0, stride.0), spans(w, crop.1, stride.1))
            }
        };
        Ok(Self {
            row_counts: counts(h, &rows),
            col_counts: counts(w, &cols),
            rows,
            cols,
        })
    }

    /// The number of windows.
    pub fn len(&self) -> usize {
        self.rows.len() * self.cols.len()
    }

    /// The size `(h, w)` every window has.
    pub fn window_size(&self) -> (usize, usize) {
        (
            self.rows[0].1 - self.rows[0].0,
            self.cols[0].1 - self.cols[0].0,
        )
    }

    /// Window `n` in mmseg's order (row-major) as `(row span index, column span index)`.
    pub fn index(&self, n: usize) -> (usize, usize) {
        (n / self.cols.len(), n % self.cols.len())
    }
}

/// mmseg's spans along one axis: `grids = max(size - crop + stride - 1, 0) / stride + 1`, window `i`
/// ends at `min(i·stride + crop, size)` and is `crop` long unless the image is shorter. Needs
/// `crop, stride >= 1`.
fn spans(size: usize, crop: usize, stride: usize) -> Vec<(usize, usize)> {
    let grids = size
        .saturating_add(stride)
        .saturating_sub(crop.saturating_add(1))
        / stride
        + 1;
    (0..grids)
        .map(|i| {
            let end = (i * stride).saturating_add(crop).min(size);
            (end.saturating_sub(crop), end)
        })
        .collect()
}

fn counts(size: usize, spans: &[(usize, usize)]) -> Vec<f32> {
    let mut counts = vec![0f32; size];
    for &(a, b) in spans {
        counts[a..b].iter_mut().for_each(|c| *c += 1.0);
    }
    counts
}

/// How many windows of `window` cover an `(h, w)` image (what one pass runs; a progress total).
pub fn window_count(size: (usize, usize), window: &Window) -> Result<usize> {
    Ok(WindowGrid::new(size, window)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_separable_and_cover_everything() -> Result<()> {
        let grid = WindowGrid::new((19, 26), &Window::slide((12, 16), (5, 7))?)?;
        let mut count = vec![0f32; 19 * 26];
        for n in 0..grid.len() {
            let (i, j) = grid.index(n);
            let ((y1, y2), (x1, x2)) = (grid.rows[i], grid.cols[j]);
            assert_eq!((y2 - y1, x2 - x1), grid.window_size());
            for y in y1..y2 {
                count[y * 26 + x1..y * 26 + x2]
                    .iter_mut()
                    .for_each(|c| *c += 1.0);
            }
        }
        for y in 0..19 {
            for x in 0..26 {
                let c = count[y * 26 + x];
                assert!(c >= 1.0);
                assert_eq!(c, grid.row_counts[y] * grid.col_counts[x]);
            }
        }
        Ok(())
    }

    #[test]
    fn huge_crops_do_not_overflow() -> Result<()> {
        let grid = WindowGrid::new((5, 6), &Window::slide((usize::MAX, 8), (usize::MAX, 1))?)?;
        assert_eq!(grid.rows, vec![(0, 5)]);
        assert_eq!(grid.cols, vec![(0, 6)]);
        Ok(())
    }

    #[test]
    fn a_thin_strip_at_a_short_side_is_refused_not_allocated() -> Result<()> {
        // 1 x 16384 at a short side of 512 would be 512 x 8388608 (4.3 G pixels).
        let err = checked_rescaled_size((1, 16384), Some(512), 1.0).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("1x16384") && msg.contains("limit"), "{msg}");
        assert_eq!(
            checked_rescaled_size((480, 640), Some(512), 1.0)?,
            rescaled_size((480, 640), Some(512), 1.0)
        );
        Ok(())
    }
}
