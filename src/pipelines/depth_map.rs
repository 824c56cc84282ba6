//! The result of the depth pipeline: one depth map `(H, W)` f32, whether it is relative (larger is
//! nearer) or metric (metres), and the input it came from; it resizes, and writes itself as a raw
//! `.npy` or as a picture (min-max normalised so that near is bright: colour-mapped through inferno,
//! or 16-bit grayscale). Several maps of one size stack into `(B, H, W)`.

use std::path::Path;

use candle::{DType, Tensor};
use image::{ImageBuffer, Luma, RgbImage};

use crate::heads::depth::{resize_depth, DepthKind};
use crate::io::npy::write_tensor;
use crate::io::output::write_with;
use crate::pipelines::batch::stack_results;
use crate::pipelines::input::InputName;
use crate::viz::colorbar::{with_colorbar, ValueRange};
use crate::viz::colormap::Colormap;
use crate::{Error, Result};

/// How a depth map is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DepthPicture {
    /// RGB through the inferno colour map.
    #[default]
    Inferno,
    /// 16-bit grayscale.
    Gray16,
    /// RGB through the inferno colour map, with a colour bar of the depth values on the right.
    InfernoWithColorbar,
}

/// One depth map and where it came from.
#[derive(Debug, Clone)]
pub struct DepthMap {
    name: InputName,
    depth: Tensor,
    kind: DepthKind,
}

impl DepthMap {
    /// A map from `depth` `(H, W)` (converted to f32).
    pub fn new(name: InputName, depth: Tensor, kind: DepthKind) -> Result<Self> {
        if depth.rank() != 2 {
            return Err(Error::input(
                "depth",
                format!("shape {:?}, expected (H, W)", depth.dims()),
            ));
        }
        Ok(Self {
            name,
            depth: depth.to_dtype(DType::F32)?,
            kind,
        })
    }

    /// The same map under another name.
    pub fn with_name(mut self, name: InputName) -> Self {
        self.name = name;
        self
    }

    /// The input it came from.
    pub fn name(&self) -> &InputName {
        &self.name
    }

    /// The depth `(H, W)`, f32.
    pub fn depth(&self) -> &Tensor {
        &self.depth
    }

    /// Relative (larger is nearer) or metric (metres, larger is farther).
    pub fn kind(&self) -> DepthKind {
        self.kind
    }

    /// `(H, W)`.
    pub fn size(&self) -> (usize, usize) {
        let d = self.depth.dims();
        (d[0], d[1])
    }

    /// The smallest and largest depth.
    pub fn min_max(&self) -> Result<(f32, f32)> {
        let flat = self.depth.flatten_all()?;
        Ok((
            flat.min(0)?.to_scalar::<f32>()?,
            flat.max(0)?.to_scalar::<f32>()?,
        ))
    }

    /// The map resized bilinearly to `size = (H, W)`.
    pub fn resize(&self, size: (usize, usize), align_corners: bool) -> Result<Self> {
        let resized = resize_depth(&self.depth.unsqueeze(0)?, size, align_corners)?;
        Self::new(self.name.clone(), resized.squeeze(0)?, self.kind)
    }

    /// Every value in `[0, 1]`, min-max normalised so that near is 1, row-major.
    fn nearness(&self) -> Result<Vec<f32>> {
        let values = self.depth.flatten_all()?.to_vec1::<f32>()?;
        let (lo, hi) = values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let span = if hi > lo { hi - lo } else { 1.0 };
        let near_is_high = self.kind == DepthKind::Relative;
        Ok(values
            .iter()
            .map(|&v| {
                let t = ((v - lo) / span).clamp(0.0, 1.0);
                if near_is_high {
                    t
                } else {
                    1.0 - t
                }
            })
            .collect())
    }

    /// The picture through the inferno colour map, near is bright.
    pub fn to_rgb(&self) -> Result<RgbImage> {
        let (h, w) = self.size();
        let raw: Vec<u8> = self
            .nearness()?
            .into_iter()
            .flat_map(|t| Colormap::Inferno.color(t))
            .collect();
        RgbImage::from_raw(w as u32, h as u32, raw).ok_or_else(|| too_large(self.size()))
    }

    /// [`DepthMap::to_rgb`] with a colour bar of the depth values on the right (near, bright, at the
    /// top).
    pub fn to_rgb_with_colorbar(&self) -> Result<RgbImage> {
        let (lo, hi) = self.min_max()?;
        let range = match self.kind {
            DepthKind::Relative => ValueRange { lo, hi },
            _ => ValueRange { lo: hi, hi: lo },
        };
        Ok(with_colorbar(&self.to_rgb()?, Colormap::Inferno, range))
    }

    /// The picture as 16-bit grayscale, near is bright.
    pub fn to_gray16(&self) -> Result<ImageBuffer<Luma<u16>, Vec<u16>>> {
        let (h, w) = self.size();
        let raw: Vec<u16> = self
            .nearness()?
            .into_iter()
            .map(|t| (t * 65535.0).round() as u16)
            .collect();
        ImageBuffer::from_raw(w as u32, h as u32, raw).ok_or_else(|| too_large(self.size()))
    }

    /// Writes the picture as a PNG, atomically.
    pub fn write_png(&self, path: impl AsRef<Path>, picture: DepthPicture) -> Result<()> {
        let path = path.as_ref();
        let png = image::ImageFormat::Png;
        let image: image::DynamicImage = match picture {
            DepthPicture::Inferno => self.to_rgb()?.into(),
            DepthPicture::Gray16 => self.to_gray16()?.into(),
            DepthPicture::InfernoWithColorbar => self.to_rgb_with_colorbar()?.into(),
        };
        write_with(path, |tmp| {
            image
                .save_with_format(tmp, png)
                .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
        })
    }

    /// Writes the raw depth `(H, W)` as a float32 `.npy`, atomically.
    pub fn write_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        write_tensor(path, &self.depth)
    }

    /// Maps of one size stacked into `(B, H, W)`; maps of different sizes are an error naming two.
    pub fn stack(maps: &[Self]) -> Result<Tensor> {
        stack_results("depth maps", maps.iter().map(|m| (&m.name, &m.depth)))
    }
}

fn too_large(size: (usize, usize)) -> Error {
    Error::input(
        "depth",
        format!("{}x{} is too large for a picture", size.0, size.1),
    )
}
