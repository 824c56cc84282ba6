//! The 4-connected component of a patch mask that holds the seed, and its bounding box: LOST's
//! `detect_box` (`scipy.ndimage.label` with its default cross structure, then the component's extent),
//! shared by LOST and TokenCut.
//!
//! Masks are row-major over an `(h, w)` patch grid; boxes have an exclusive max.

use crate::{Error, Result};

/// A box on the patch grid, exclusive max: rows `row0..row1`, columns `col0..col1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchBox {
    /// First row.
    pub row0: usize,
    /// First column.
    pub col0: usize,
    /// One past the last row.
    pub row1: usize,
    /// One past the last column.
    pub col1: usize,
}

impl PatchBox {
    /// The box in pixels `[x1, y1, x2, y2]` (exclusive max) for `patch`-pixel patches, with `x2` and `y2`
    /// clipped to the unpadded `image_size` `(H, W)`, as LOST does.
    pub fn to_pixels(&self, patch: usize, image_size: (usize, usize)) -> [usize; 4] {
        [
            self.col0 * patch,
            self.row0 * patch,
            (self.col1 * patch).min(image_size.1),
            (self.row1 * patch).min(image_size.0),
        ]
    }
}

/// One connected component of a patch mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// The component's patches, row-major over the grid.
    pub mask: Vec<bool>,
    /// How many patches it holds.
    pub size: usize,
    /// Its bounding box on the grid.
    pub bounds: PatchBox,
}

/// The 4-connected component of `foreground` (row-major over `grid` `(h, w)`) that holds the patch
/// `seed` (a row-major index). An error when the seed is not in the foreground (LOST: "The seed is in
/// the background component").
pub fn seed_component(foreground: &[bool], grid: (usize, usize), seed: usize) -> Result<Component> {
    let (h, w) = grid;
    if foreground.len() != h * w {
        return Err(Error::input(
            "patch mask",
            format!("has {} entries, expected {h}x{w}", foreground.len()),
        ));
    }
    if seed >= h * w {
        return Err(Error::input(
            "seed",
            format!("patch {seed} is outside the {h}x{w} grid"),
        ));
    }
    if !foreground[seed] {
        return Err(Error::input(
            "seed",
            format!(
                "patch ({}, {}) is in the background of its own mask",
                seed / w,
                seed % w
            ),
        ));
    }
    let mut mask = vec![false; h * w];
    let mut stack = vec![seed];
    mask[seed] = true;
    let mut bounds = PatchBox {
        row0: seed / w,
        col0: seed % w,
        row1: seed / w + 1,
        col1: seed % w + 1,
    };
    let mut size = 0;
    while let Some(i) = stack.pop() {
        size += 1;
        let (r, c) = (i / w, i % w);
        bounds.row0 = bounds.row0.min(r);
        bounds.col0 = bounds.col0.min(c);
        bounds.row1 = bounds.row1.max(r + 1);
        bounds.col1 = bounds.col1.max(c + 1);
        let neighbours = [
            (r > 0).then(|| i - w),
            (r + 1 < h).then(|| i + w),
            (c > 0).then(|| i - 1),
            (c + 1 < w).then(|| i + 1),
        ];
        for j in neighbours.into_iter().flatten() {
            if foreground[j] && !mask[j] {
                mask[j] = true;
                stack.push(j);
            }
        }
    }
    Ok(Component { mask, size, bounds })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_neighbours_are_not_connected() -> Result<()> {
        // 1 1 0
        // 0 0 1
        // 0 1 1
        let fg = [true, true, false, false, false, true, false, true, true];
        let top = seed_component(&fg, (3, 3), 0)?;
        assert_eq!(top.size, 2);
        assert_eq!(
            top.bounds,
            PatchBox {
                row0: 0,
                col0: 0,
                row1: 1,
                col1: 2
            }
        );
        let bottom = seed_component(&fg, (3, 3), 8)?;
        assert_eq!(bottom.size, 3);
        assert_eq!(bottom.bounds.to_pixels(4, (10, 11)), [4, 4, 11, 10]);
        assert!(seed_component(&fg, (3, 3), 2).is_err());
        Ok(())
    }
}
