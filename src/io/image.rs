//! Reading images as Pillow does: decoding (PNG, JPEG, WebP, TIFF, BMP, GIF first frame) with the `image`
//! crate under size limits, then conversion to 8-bit RGB with PIL's `Image.convert("RGB")` semantics.
//!
//! Mirrors `PIL.Image.open(path).convert("RGB")` as transformers' `convert_to_rgb` calls it:
//! - gray, palette and gray+alpha are expanded to three equal / looked-up channels;
//! - transparency (an alpha channel, or a palette / colour key with `tRNS`) is composited on white
//!   ([`AlphaMode::White`], the default: transformers v5 `convert_to_rgb`, PIL `alpha_composite` on an
//!   opaque white background, bit-exact) or dropped ([`AlphaMode::Drop`], PIL's plain
//!   `convert("RGB")`, transformers v4);
//! - 16-bit gray PNGs (PIL mode `I;16`) are clipped to 255 (`min(v, 255)`), 16-bit RGB/RGBA/gray+alpha keep
//!   the high byte (`v >> 8`), as Pillow's PNG plugin and converters do.
//!
//! EXIF orientation is not applied (neither PIL's `open` nor transformers apply it).
//! Output: an [`image::RgbImage`] (H x W x 3, u8).
//!
//! What the decoder notices that the user should hear about (a 16-bit gray PNG, clipped to 255, is
//! usually all white) comes out of [`decode_image_noted`] as [`DecodeNote`]s, from the one reading of
//! the file; the library prints nothing, the pipelines hand the notes to
//! [`Progress::note`](crate::progress::Progress::note).

use std::path::Path;

use image::{DynamicImage, ImageError, ImageFormat, ImageReader, RgbImage};

use crate::{Error, Result};

/// Size limits for decoding, against decompression bombs (a small file that claims a huge image), and
/// for what the processors make of an image (a small image that resizes to a huge one).
///
/// Defaults: 16384 x 16384 pixels at most, 512 MiB of decoder allocations, and model inputs of at
/// most 8192 x 8192 pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted width in pixels.
    pub max_width: u32,
    /// Largest accepted height in pixels.
    pub max_height: u32,
    /// Largest total allocation of the decoder in bytes (the decoded image included).
    pub max_alloc: u64,
    /// Largest image a processor produces, in pixels (height x width): the resized or cropped model
    /// input of [`crate::ImageProcessor`], the dense input of [`crate::ImageProcessor::dense`]. A
    /// 1 x 16384 strip resized to a 256-pixel short side would otherwise be a 256 x 4194304 image.
    pub max_output_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_width: 16384,
            max_height: 16384,
            max_alloc: 512 * 1024 * 1024,
            max_output_pixels: 8192 * 8192,
        }
    }
}

impl DecodeLimits {
    /// Sets the largest accepted width.
    pub fn with_max_width(mut self, max_width: u32) -> Self {
        self.max_width = max_width;
        self
    }

    /// Sets the largest accepted height.
    pub fn with_max_height(mut self, max_height: u32) -> Self {
        self.max_height = max_height;
        self
    }

    /// Sets the largest decoder allocation in bytes.
    pub fn with_max_alloc(mut self, max_alloc: u64) -> Self {
        self.max_alloc = max_alloc;
        self
    }

    /// Sets the largest image a processor produces, in pixels.
    pub fn with_max_output_pixels(mut self, pixels: u64) -> Self {
        self.max_output_pixels = pixels;
        self
    }

    /// Refuses an output of `height` x `width` over [`DecodeLimits::max_output_pixels`]; `what` says
    /// what would be made (for the message).
    pub(crate) fn check_output(&self, (height, width): (u32, u32), what: &str) -> Result<()> {
        let pixels = u64::from(height) * u64::from(width);
        if pixels <= self.max_output_pixels {
            return Ok(());
        }
        Err(Error::input(
            "image",
            format!(
                "{what} would be {width}x{height} (width x height) = {pixels} pixels, over the limit of {} (raise DecodeLimits::max_output_pixels, or resize the image first)",
                self.max_output_pixels
            ),
        ))
    }

    fn to_image_limits(self) -> image::Limits {
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(self.max_width);
        limits.max_image_height = Some(self.max_height);
        limits.max_alloc = Some(self.max_alloc);
        limits
    }
}

/// What happens to transparency when an image is converted to RGB.
///
/// The default follows the transformers release the project matches (v5): [`AlphaMode::White`].
/// Opaque images give the same pixels either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlphaMode {
    /// Composite on an opaque white background (transformers v5 `convert_to_rgb`: a transparent pixel
    /// becomes white). The default.
    #[default]
    White,
    /// Drop the alpha channel: PIL's plain `convert("RGB")` (transformers v4 `convert_to_rgb`: a
    /// transparent pixel keeps its stored colour, often black).
    Drop,
}

/// Something the decoder noticed about an image that its user should hear about.
///
/// The library prints nothing: the pipelines pass [`DecodeNote::message`] to
/// [`Progress::note`](crate::progress::Progress::note), once per image decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeNote {
    /// A 16-bit grayscale PNG (PIL mode `I;16`), read as PIL and HF read it: values clipped to 255,
    /// which usually makes it all white.
    Gray16Png,
}

impl DecodeNote {
    /// The one-line warning about the image at `path` (starting with `warning: `).
    pub fn message(self, path: &Path) -> String {
        match self {
            DecodeNote::Gray16Png => format!(
                "warning: {} is a 16-bit grayscale PNG: read as PIL and HF read it, values clipped to 255 (often all white); convert it to 8 bits to see its content",
                path.display()
            ),
        }
    }
}

/// A decoded image and what the decoder noticed about it ([`decode_image_noted`]).
#[derive(Debug, Clone)]
pub struct NotedImage {
    /// The decoded image.
    pub image: DynamicImage,
    /// What the user should hear about it (none for most images).
    pub notes: Vec<DecodeNote>,
}

/// Decodes the image at `path` (format guessed from the content, then the extension) within `limits`.
///
/// Every failure (missing file, unknown format, corrupt or truncated data, limits exceeded) is an
/// [`Error::Image`] naming the file.
pub fn decode_image(path: &Path, limits: &DecodeLimits) -> Result<DynamicImage> {
    Ok(decode_image_noted(path, limits)?.image)
}

/// [`decode_image`], with what the decoder noticed ([`DecodeNote`]), found from the format and the
/// decoded image of the one reading of the file.
pub fn decode_image_noted(path: &Path, limits: &DecodeLimits) -> Result<NotedImage> {
    let fail = |reason: String| Error::Image {
        path: path.to_path_buf(),
        reason,
    };
    let reader = ImageReader::open(path).map_err(|e| fail(io_reason(&e)))?;
    let reader = reader
        .with_guessed_format()
        .map_err(|e| fail(io_reason(&e)))?;
    decode_with(reader, limits).map_err(fail)
}

/// Decodes an image held in memory (format guessed from the content) within `limits`; `name` is used
/// in error messages, as the file of [`decode_image`].
pub fn decode_image_bytes(
    name: &Path,
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<DynamicImage> {
    let fail = |reason: String| Error::Image {
        path: name.to_path_buf(),
        reason,
    };
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| fail(io_reason(&e)))?;
    Ok(decode_with(reader, limits).map_err(fail)?.image)
}

/// Decodes with the limits set, noting what the user should hear about; the reason of a failure.
fn decode_with<R: std::io::BufRead + std::io::Seek>(
    mut reader: ImageReader<R>,
    limits: &DecodeLimits,
) -> std::result::Result<NotedImage, String> {
    reader.limits(limits.to_image_limits());
    let format = reader.format();
    let image = reader.decode().map_err(|e| decode_reason(&e, limits))?;
    // The image crate decodes a PNG of colour type 0 and depth 16 (without tRNS, which becomes an
    // alpha channel) as Luma16: the image `to_rgb8` clips, as PIL reads mode `I;16`.
    let gray16_png =
        format == Some(ImageFormat::Png) && matches!(image, DynamicImage::ImageLuma16(_));
    let notes = if gray16_png {
        vec![DecodeNote::Gray16Png]
    } else {
        Vec::new()
    };
    Ok(NotedImage { image, notes })
}

/// Decodes the image at `path` and converts it to RGB (see the module docs).
pub fn read_rgb(path: &Path, limits: &DecodeLimits, alpha: AlphaMode) -> Result<RgbImage> {
    Ok(to_rgb8(&decode_image(path, limits)?, alpha))
}

/// Converts a decoded image to 8-bit RGB with Pillow's semantics (see the module docs).
pub fn to_rgb8(image: &DynamicImage, alpha: AlphaMode) -> RgbImage {
    let (w, h) = (image.width(), image.height());
    let mut out = RgbImage::new(w, h);
    let put = |out: &mut RgbImage, i: usize, rgba: [u8; 4]| {
        let px = match alpha {
            AlphaMode::Drop => [rgba[0], rgba[1], rgba[2]],
            AlphaMode::White => composite_on_white(rgba),
        };
        out.as_mut()[3 * i..3 * i + 3].copy_from_slice(&px);
    };
    match image {
        DynamicImage::ImageRgb8(img) => return img.clone(),
        DynamicImage::ImageLuma8(img) => {
            for (i, &v) in img.as_raw().iter().enumerate() {
                put(&mut out, i, [v, v, v, 255]);
            }
        }
        DynamicImage::ImageLumaA8(img) => {
            for (i, p) in img.as_raw().chunks_exact(2).enumerate() {
                put(&mut out, i, [p[0], p[0], p[0], p[1]]);
            }
        }
        DynamicImage::ImageRgba8(img) => {
            for (i, p) in img.as_raw().chunks_exact(4).enumerate() {
                put(&mut out, i, [p[0], p[1], p[2], p[3]]);
            }
        }
        // PIL "I;16" -> "RGB" clips to 255.
        DynamicImage::ImageLuma16(img) => {
            for (i, &v) in img.as_raw().iter().enumerate() {
                let v = v.min(255) as u8;
                put(&mut out, i, [v, v, v, 255]);
            }
        }
        // 16-bit colour and gray+alpha PNGs open in PIL as 8-bit modes holding the high byte.
        DynamicImage::ImageLumaA16(img) => {
            for (i, p) in img.as_raw().chunks_exact(2).enumerate() {
                let v = high_byte(p[0]);
                put(&mut out, i, [v, v, v, high_byte(p[1])]);
            }
        }
        DynamicImage::ImageRgb16(img) => {
            for (i, p) in img.as_raw().chunks_exact(3).enumerate() {
                put(
                    &mut out,
                    i,
                    [high_byte(p[0]), high_byte(p[1]), high_byte(p[2]), 255],
                );
            }
        }
        DynamicImage::ImageRgba16(img) => {
            for (i, p) in img.as_raw().chunks_exact(4).enumerate() {
                let rgba = [p[0], p[1], p[2], p[3]].map(high_byte);
                put(&mut out, i, rgba);
            }
        }
        // Float images (TIFF, EXR-like): the `image` crate's own conversion (clamp, scale, round).
        other => {
            let rgba = other.to_rgba8();
            for (i, p) in rgba.as_raw().chunks_exact(4).enumerate() {
                put(&mut out, i, [p[0], p[1], p[2], p[3]]);
            }
        }
    }
    out
}

fn high_byte(v: u16) -> u8 {
    (v >> 8) as u8
}

/// PIL `alpha_composite(white, rgba)` then `convert("RGB")`, integer-exact (AlphaComposite.c: 7 extra
/// bits of precision, divisions by 255 rounded with the `SHIFTFORDIV255` trick).
fn composite_on_white(p: [u8; 4]) -> [u8; 3] {
    const PRECISION_BITS: u32 = 7;
    let a = u32::from(p[3]);
    match a {
        0 => return [255, 255, 255],
        255 => return [p[0], p[1], p[2]],
        _ => {}
    }
    // Background alpha is 255: blend = 255 * (255 - a); outa255 = a * 255 + blend = 255 * 255.
    let outa255 = a * 255 + 255 * (255 - a);
    let coef1 = a * 255 * 255 * (1 << PRECISION_BITS) / outa255;
    let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
    let channel = |src: u8| {
        let tmp = u32::from(src) * coef1 + 255 * coef2 + (0x80 << PRECISION_BITS);
        let div255 = (tmp + (tmp >> 8)) >> 8;
        (div255 >> PRECISION_BITS) as u8
    };
    [channel(p[0]), channel(p[1]), channel(p[2])]
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "file not found".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => format!("cannot read the file ({e})"),
    }
}

fn decode_reason(e: &ImageError, limits: &DecodeLimits) -> String {
    match e {
        ImageError::Limits(_) => format!(
            "image exceeds the decoding limits ({}x{} pixels, {} MiB; raise them with DecodeLimits): {e}",
            limits.max_width,
            limits.max_height,
            limits.max_alloc / (1024 * 1024)
        ),
        ImageError::Unsupported(_) => {
            format!("unsupported image format (PNG, JPEG, WebP, TIFF, BMP and GIF are read): {e}")
        }
        ImageError::IoError(io) => format!("cannot read the file, corrupt or truncated? ({io})"),
        _ => format!("cannot decode the image, corrupt or truncated? ({e})"),
    }
    .replace('\n', " ")
}

/// Whether `path` is a 16-bit grayscale PNG (PIL mode `I;16`), read from its header only. Such an
/// image is clipped to 255 as PIL and HF do, which usually makes it all white. A file about to be
/// decoded anyway needs no second opening: [`decode_image_noted`] notes it
/// ([`DecodeNote::Gray16Png`]).
pub fn is_gray16_png(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 26];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header));
    // Signature, IHDR length and type, width, height, then bit depth (24) and colour type (25).
    read.is_ok() && header[..8] == *b"\x89PNG\r\n\x1a\n" && header[24] == 16 && header[25] == 0
}
