//! The picture of a discovered object (`dinoreg discover --draw`): the object's patches tinted red,
//! its box outlined in green and the seed patch in yellow, over the image at its own size.
//!
//! The mask and the seed lie on the patch grid of the model input, whose unpadded size is
//! `input_size` `(H, W)`; the picture may be larger or smaller than that input (a short side was
//! asked for), and is mapped onto it by scaling.

use dinoreg_heads::discovery::Discovery;
use image::{Rgb, RgbImage};
use imageproc::drawing::draw_hollow_rect_mut;
use imageproc::rect::Rect;

/// The red the object's patches are tinted with.
const TINT: [f64; 3] = [255.0, 40.0, 40.0];
/// How much of the tint is mixed in.
const TINT_WEIGHT: f64 = 0.45;
/// How much of the image is kept under the tint.
const IMAGE_WEIGHT: f64 = 0.55;
/// The box's outline.
const BOX_COLOUR: Rgb<u8> = Rgb([40, 220, 40]);
/// The seed patch's outline.
const SEED_COLOUR: Rgb<u8> = Rgb([250, 220, 40]);

/// A box `(x1, y1, x2, y2)` in picture pixels, exclusive max.
type PixelBox = (usize, usize, usize, usize);

/// Draws `found` over a copy of `image`. `patch` is the model's patch size and `input_size` the
/// unpadded `(H, W)` of the model input the grid lies on; the box is in `image`'s pixels.
///
/// ```
/// use dinoreg::heads::discovery::Discovery;
/// use dinoreg::viz::draw_discovery;
/// use image::RgbImage;
///
/// let found = Discovery {
///     bbox: [0, 0, 4, 4],
///     box_patches: [0, 0, 1, 1],
///     seed: [0, 0],
///     grid: [2, 2],
///     mask: vec![true, false, false, false],
///     mask_patches: 1,
///     eigenvector: None,
/// };
/// let picture = draw_discovery(&RgbImage::new(8, 8), &found, 4, (8, 8));
/// assert_eq!(picture.get_pixel(6, 6).0, [0, 0, 0]); // outside the object
/// assert_ne!(picture.get_pixel(2, 2).0, [0, 0, 0]); // tinted
/// ```
pub fn draw_discovery(
    image: &RgbImage,
    found: &Discovery,
    patch: usize,
    input_size: (usize, usize),
) -> RgbImage {
    let mut rgb = image.clone();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let [gh, gw] = found.grid;
    if w == 0 || h == 0 || gh == 0 || gw == 0 || patch == 0 {
        return rgb;
    }
    let (sy, sx) = (
        input_size.0 as f64 / h as f64,
        input_size.1 as f64 / w as f64,
    );
    for (x, y, p) in rgb.enumerate_pixels_mut() {
        let c = ((x as f64 * sx) as usize / patch).min(gw - 1);
        let r = ((y as f64 * sy) as usize / patch).min(gh - 1);
        if found.mask.get(r * gw + c).copied().unwrap_or(false) {
            for (v, t) in p.0.iter_mut().zip(TINT) {
                *v = (IMAGE_WEIGHT * f64::from(*v) + TINT_WEIGHT * t).round() as u8;
            }
        }
    }
    let [x1, y1, x2, y2] = found.bbox;
    outline(&mut rgb, (x1, y1, x2, y2), BOX_COLOUR);
    let [r, c] = found.seed;
    let to_x = |v: usize| ((v * patch) as f64 / sx).round() as usize;
    let to_y = |v: usize| ((v * patch) as f64 / sy).round() as usize;
    let seed_box = (to_x(c), to_y(r), to_x(c + 1).min(w), to_y(r + 1).min(h));
    outline(&mut rgb, seed_box, SEED_COLOUR);
    rgb
}

/// Outlines a box two pixels thick (imageproc clips what falls outside the picture).
fn outline(rgb: &mut RgbImage, (x1, y1, x2, y2): PixelBox, colour: Rgb<u8>) {
    for t in 0..2 {
        let (left, top) = (x1 + t, y1 + t);
        let (right, bottom) = (x2.saturating_sub(t + 1), y2.saturating_sub(t + 1));
        if left > right || top > bottom {
            continue;
        }
        let (Ok(x), Ok(y)) = (i32::try_from(left), i32::try_from(top)) else {
            continue;
        };
        let rect = Rect::at(x, y).of_size((right - left + 1) as u32, (bottom - top + 1) as u32);
        draw_hollow_rect_mut(rgb, rect, colour);
    }
}
