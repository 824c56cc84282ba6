//! The preprocessing settings: HF `preprocessor_config.json` of a `BitImageProcessor` or a
//! `DINOv3ViTImageProcessor`, typed.
//!
//! Mirrors the fields transformers reads (`do_resize`, `size`, `resample`, `do_center_crop`, `crop_size`,
//! `do_rescale`, `rescale_factor`, `do_normalize`, `image_mean`, `image_std`, `do_convert_rgb`);
//! `image_processor_type` chooses the processor ([`ProcessorKind`]); other keys (`processor_class`,
//! ...) are ignored. A key that is absent takes the value of the processor's defaults: the published
//! DINOv2-with-registers checkpoints' file ([`ProcessorConfig::default`], also what is used when a
//! DINOv2 model folder has no `preprocessor_config.json`) or `DINOv3ViTImageProcessor`'s class
//! defaults ([`ProcessorConfig::dinov3`]).

use std::path::Path;

use serde_json::{Map, Value};

use super::resample::Resample;
use crate::{Error, Result};

/// ImageNet mean (`IMAGENET_DEFAULT_MEAN`), the checkpoints' `image_mean`.
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet std (`IMAGENET_DEFAULT_STD`), the checkpoints' `image_std`.
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// The resize target of `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// `{"shortest_edge": s}`: the short side becomes `s`, the long side `int(s * long / short)`.
    ShortestEdge(u32),
    /// `{"height": h, "width": w}`: this exact size (aspect ratio not kept).
    Exact {
        /// Output height.
        height: u32,
        /// Output width.
        width: u32,
    },
}

impl Size {
    /// The (height, width) an image of (`height`, `width`) is resized to, with transformers'
    /// `get_resize_output_image_size(default_to_square=False)` arithmetic.
    pub fn output_size(self, height: u32, width: u32) -> (u32, u32) {
        match self {
            Size::Exact { height, width } => (height, width),
            Size::ShortestEdge(s) => {
                let (short, long) = if width <= height {
                    (width, height)
                } else {
                    (height, width)
                };
                // Python: int(s * long / short), a float division then truncation.
                let new_long = (f64::from(s) * f64::from(long) / f64::from(short)) as u32;
                if width <= height {
                    (new_long, s)
                } else {
                    (s, new_long)
                }
            }
        }
    }
}

/// Which HF image processor the settings are for (`image_processor_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessorKind {
    /// `BitImageProcessor` (DINOv2): PIL resize of the 8-bit image, crop, then rescale and
    /// normalise. Also any other or no `image_processor_type`.
    #[default]
    Bit,
    /// `DINOv3ViTImageProcessor` (and its v4 name `DINOv3ViTImageProcessorFast`): rescale to f32
    /// first, torchvision's antialiased resize on the floats, optional crop, normalise.
    Dinov3Vit,
}

impl ProcessorKind {
    /// The kind named by `image_processor_type`.
    pub fn from_type_name(name: &str) -> Self {
        match name {
            "DINOv3ViTImageProcessor" | "DINOv3ViTImageProcessorFast" => Self::Dinov3Vit,
            _ => Self::Bit,
        }
    }
}

/// Preprocessing settings (`preprocessor_config.json`). [`Default`] is the published checkpoints' file:
/// shortest edge 256, bicubic, center crop 224x224, rescale 1/255, ImageNet mean/std.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorConfig {
    /// Which processor's steps run (chosen by `image_processor_type`).
    pub kind: ProcessorKind,
    /// Resize before cropping.
    pub do_resize: bool,
    /// Resize target.
    pub size: Size,
    /// Resampling filter of the resize.
    pub resample: Resample,
    /// Center crop (zero padding where the image is smaller than the crop, as HF).
    pub do_center_crop: bool,
    /// Crop (height, width).
    pub crop_size: (u32, u32),
    /// Multiply the 8-bit values by `rescale_factor` (in f64, then cast to f32).
    pub do_rescale: bool,
    /// The rescale factor, 1/255 by default.
    pub rescale_factor: f64,
    /// Normalise per channel in f32: `(x - mean) / std`.
    pub do_normalize: bool,
    /// Per-channel mean (RGB).
    pub image_mean: [f64; 3],
    /// Per-channel standard deviation (RGB).
    pub image_std: [f64; 3],
    /// Recorded from the file; images are always converted to 3-channel RGB since the model needs it.
    pub do_convert_rgb: bool,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            kind: ProcessorKind::Bit,
            do_resize: true,
            size: Size::ShortestEdge(256),
            resample: Resample::Bicubic,
            do_center_crop: true,
            crop_size: (224, 224),
            do_rescale: true,
            rescale_factor: 0.00392156862745098,
            do_normalize: true,
            image_mean: IMAGENET_MEAN,
            image_std: IMAGENET_STD,
            do_convert_rgb: true,
        }
    }
}

impl ProcessorConfig {
    /// `DINOv3ViTImageProcessor`'s class defaults (what a DINOv3 model without a
    /// `preprocessor_config.json` uses): resize to 224x224 with antialiased bilinear, no center
    /// crop, rescale 1/255, ImageNet mean/std, no RGB conversion asked for (images are converted
    /// to RGB regardless).
    pub fn dinov3() -> Self {
        ProcessorConfig {
            kind: ProcessorKind::Dinov3Vit,
            size: Size::Exact {
                height: 224,
                width: 224,
            },
            resample: Resample::Bilinear,
            do_center_crop: false,
            do_convert_rgb: false,
            ..Self::default()
        }
    }

    /// Sets `do_resize`.
    pub fn with_resize(mut self, do_resize: bool) -> Self {
        self.do_resize = do_resize;
        self
    }

    /// Sets the resize target.
    pub fn with_size(mut self, size: Size) -> Self {
        self.size = size;
        self
    }

    /// Sets the resampling filter.
    pub fn with_resample(mut self, resample: Resample) -> Self {
        self.resample = resample;
        self
    }

    /// Sets `do_center_crop`.
    pub fn with_center_crop(mut self, do_center_crop: bool) -> Self {
        self.do_center_crop = do_center_crop;
        self
    }

    /// Sets the crop (height, width).
    pub fn with_crop_size(mut self, height: u32, width: u32) -> Self {
        self.crop_size = (height, width);
        self
    }

    /// Sets `do_rescale`.
    pub fn with_rescale(mut self, do_rescale: bool) -> Self {
        self.do_rescale = do_rescale;
        self
    }

    /// Sets the rescale factor.
    pub fn with_rescale_factor(mut self, factor: f64) -> Self {
        self.rescale_factor = factor;
        self
    }

    /// Sets `do_normalize`.
    pub fn with_normalize(mut self, do_normalize: bool) -> Self {
        self.do_normalize = do_normalize;
        self
    }

    /// Sets the per-channel mean and std.
    pub fn with_mean_std(mut self, mean: [f64; 3], std: [f64; 3]) -> Self {
        self.image_mean = mean;
        self.image_std = std;
        self
    }

    /// Reads a `preprocessor_config.json`. Errors are [`Error::Config`] naming the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json_str(&text, path)
    }

    /// Parses the JSON text of a `preprocessor_config.json`; `path` names it in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let fail = |reason: String| Error::Config {
            path: path.to_path_buf(),
            reason,
        };
        let value: Value =
            serde_json::from_str(text).map_err(|e| fail(format!("not valid JSON: {e}")))?;
        let map = value
            .as_object()
            .ok_or_else(|| fail("expected a JSON object".to_string()))?;
        parse(map).map_err(fail)
    }

    /// Checks the values: sizes at least 1, finite factors, non-zero std.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, reason: String| Err(Error::option(name, reason));
        match self.size {
            Size::ShortestEdge(0) => return bad("size", "shortest_edge must be at least 1".into()),
            Size::Exact { height, width } if height == 0 || width == 0 => {
                return bad("size", format!("{height}x{width} must be at least 1x1"))
            }
            _ => {}
        }
        if self.crop_size.0 == 0 || self.crop_size.1 == 0 {
            let (h, w) = self.crop_size;
            return bad("crop_size", format!("{h}x{w} must be at least 1x1"));
        }
        if !self.rescale_factor.is_finite() {
            return bad(
                "rescale_factor",
                format!("{} is not finite", self.rescale_factor),
            );
        }
        if self.image_mean.iter().any(|m| !m.is_finite()) {
            return bad(
                "image_mean",
                format!("{:?} must be finite", self.image_mean),
            );
        }
        if self.image_std.iter().any(|s| !s.is_finite() || *s == 0.0) {
            return bad(
                "image_std",
                format!("{:?} must be finite and non-zero", self.image_std),
            );
        }
        if self.kind == ProcessorKind::Dinov3Vit
            && !matches!(self.resample, Resample::Bilinear | Resample::Bicubic)
        {
            return bad(
                "resample",
                format!(
                    "DINOv3ViTImageProcessor resizes with torchvision: bilinear (2) or bicubic (3), got PIL code {}",
                    self.resample.pil_code()
                ),
            );
        }
        Ok(())
    }
}

fn parse(map: &Map<String, Value>) -> std::result::Result<ProcessorConfig, String> {
    let kind = map
        .get("image_processor_type")
        .and_then(Value::as_str)
        .map_or(ProcessorKind::Bit, ProcessorKind::from_type_name);
    let mut c = match kind {
        ProcessorKind::Bit => ProcessorConfig::default(),
        ProcessorKind::Dinov3Vit => ProcessorConfig::dinov3(),
    };
    let get = |key: &str| map.get(key).filter(|v| !v.is_null());
    let flag = |key: &str, default: bool| match get(key) {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| format!("{key} must be true or false, got {v}")),
    };
    c.do_resize = flag("do_resize", c.do_resize)?;
    c.do_center_crop = flag("do_center_crop", c.do_center_crop)?;
    c.do_rescale = flag("do_rescale", c.do_rescale)?;
    c.do_normalize = flag("do_normalize", c.do_normalize)?;
    c.do_convert_rgb = flag("do_convert_rgb", c.do_convert_rgb)?;
    if let Some(v) = get("size") {
        c.size = parse_size(v)?;
    }
    if let Some(v) = get("resample") {
        let code = v
            .as_i64()
            .ok_or_else(|| format!("resample must be a PIL resampling code 0..=5, got {v}"))?;
        c.resample = Resample::from_pil(code).map_err(|e| e.to_string())?;
    }
    if let Some(v) = get("crop_size") {
        c.crop_size = match parse_size(v)? {
            Size::Exact { height, width } => (height, width),
            Size::ShortestEdge(s) => (s, s),
        };
    }
    if let Some(v) = get("rescale_factor") {
        c.rescale_factor = v
            .as_f64()
            .ok_or_else(|| format!("rescale_factor must be a number, got {v}"))?;
    }
    if let Some(v) = get("image_mean") {
        c.image_mean = parse_channels("image_mean", v)?;
    }
    if let Some(v) = get("image_std") {
        c.image_std = parse_channels("image_std", v)?;
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

/// `{"shortest_edge": s}`, `{"height": h, "width": w}` or a plain integer (a shortest edge).
fn parse_size(v: &Value) -> std::result::Result<Size, String> {
    let int = |key: &str, x: &Value| {
        x.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("size {key} must be a positive integer, got {x}"))
    };
    if v.is_number() {
        return Ok(Size::ShortestEdge(int("shortest_edge", v)?));
    }
    let map = v.as_object().ok_or_else(|| {
        format!("size must be {{\"shortest_edge\": n}} or {{\"height\": h, \"width\": w}}, got {v}")
    })?;
    let field = |key: &str| map.get(key).filter(|x| !x.is_null());
    if field("longest_edge").is_some() || field("max_height").is_some() {
        return Err(format!(
            "size {v} is not supported (only shortest_edge, or height and width)"
        ));
    }
    match (field("shortest_edge"), field("height"), field("width")) {
        (Some(s), None, None) => Ok(Size::ShortestEdge(int("shortest_edge", s)?)),
        (None, Some(h), Some(w)) => Ok(Size::Exact {
            height: int("height", h)?,
            width: int("width", w)?,
        }),
        _ => Err(format!(
            "size must be {{\"shortest_edge\": n}} or {{\"height\": h, \"width\": w}}, got {v}"
        )),
    }
}

/// Three numbers, or one number for all channels.
fn parse_channels(key: &str, v: &Value) -> std::result::Result<[f64; 3], String> {
    if let Some(x) = v.as_f64() {
        return Ok([x; 3]);
    }
    let values: Option<Vec<f64>> = v
        .as_array()
        .map(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<_>>>())
        .unwrap_or(None);
    match values.as_deref() {
        Some([a, b, c]) => Ok([*a, *b, *c]),
        _ => Err(format!(
            "{key} must be 3 numbers (RGB) or one number, got {v}"
        )),
    }
}
