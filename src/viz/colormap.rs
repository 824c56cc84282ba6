//! Perceptual colour maps for pictures of scalar maps (depth, attention, token norms): matplotlib's
//! viridis and inferno (both CC0), as key colours with linear interpolation between them.

/// A colour map from `[0, 1]` to RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Colormap {
    /// Dark blue → green → yellow (heat maps).
    #[default]
    Viridis,
    /// Black → purple → orange → pale yellow (depth, near is bright).
    Inferno,
}

/// Viridis at nine evenly spaced points, 8-bit.
const VIRIDIS: [[f32; 3]; 9] = [
    [68.0, 1.0, 84.0],
    [71.0, 44.0, 122.0],
    [59.0, 81.0, 139.0],
    [44.0, 113.0, 142.0],
    [33.0, 144.0, 141.0],
    [39.0, 173.0, 129.0],
    [92.0, 200.0, 99.0],
    [170.0, 220.0, 50.0],
    [253.0, 231.0, 37.0],
];

/// Inferno at indices 0, 16, …, 240 and 255 of its 256 entries, in `[0, 1]`.
const INFERNO: [[f32; 3]; 17] = [
    [0.001462, 0.000466, 0.013866],
    [0.042253, 0.028139, 0.141141],
    [0.129285, 0.047293, 0.290788],
    [0.238273, 0.036621, 0.396353],
    [0.341500, 0.062325, 0.429425],
    [0.441207, 0.099338, 0.431594],
    [0.540920, 0.134729, 0.415123],
    [0.640135, 0.171438, 0.381065],
    [0.735683, 0.215906, 0.330245],
    [0.822386, 0.275197, 0.266085],
    [0.894305, 0.353399, 0.193584],
    [0.946965, 0.449191, 0.115272],
    [0.978422, 0.557937, 0.034931],
    [0.987874, 0.675267, 0.065257],
    [0.974638, 0.797692, 0.206332],
    [0.947594, 0.917399, 0.410665],
    [0.988362, 0.998364, 0.644924],
];

impl Colormap {
    /// The colour of `t`, clamped to `[0, 1]` (non-finite values take the low end).
    pub fn color(self, t: f32) -> [u8; 3] {
        let t = if t.is_finite() {
            t.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match self {
            Colormap::Viridis => {
                let s = t * (VIRIDIS.len() - 1) as f32;
                let i = (s.floor() as usize).min(VIRIDIS.len() - 2);
                let f = s - i as f32;
                let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
                [0, 1, 2].map(|k| (a[k] + (b[k] - a[k]) * f).round() as u8)
            }
            Colormap::Inferno => {
                let x = t * 255.0;
                let k = ((x / 16.0) as usize).min(15);
                let lo = (k * 16) as f32;
                let hi = if k == 15 {
                    255.0
                } else {
                    ((k + 1) * 16) as f32
                };
                let f = (x - lo) / (hi - lo);
                let (a, b) = (INFERNO[k], INFERNO[k + 1]);
                [0, 1, 2].map(|c| ((a[c] + f * (b[c] - a[c])) * 255.0).round() as u8)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_clamping() {
        assert_eq!(Colormap::Viridis.color(0.0), [68, 1, 84]);
        assert_eq!(Colormap::Viridis.color(2.0), [253, 231, 37]);
        assert_eq!(Colormap::Inferno.color(0.0), [0, 0, 4]);
        assert_eq!(Colormap::Inferno.color(1.0), [252, 255, 164]);
        assert_eq!(Colormap::Inferno.color(f32::NAN), [0, 0, 4]);
    }
}
