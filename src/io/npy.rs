//! `.npy` arrays at the edges: reading float arrays into ndarray / candle f32, writing f32 arrays safely.
//!
//! Mirrors `numpy.load` / `numpy.save` for float arrays: dtypes float16, float32 and float64 (either byte
//! order), any rank, C or Fortran order (the header is parsed with `ndarray-npy`). Values are converted to
//! f32 (float64 rounded to nearest). Writing produces C-order little-endian float32 (`<f4`), through a
//! temporary file in the same folder renamed over the target, so a failed write never leaves a partial
//! file or destroys an existing one.
//!
//! Pixels for the model are (B, 3, H, W): [`read_pixels`] checks rank 4 and the channel count.

use std::path::Path;

use candle::{Device, Tensor};
use ndarray::{ArrayBase, ArrayD, Data, Dimension, IxDyn, ShapeBuilder};
use ndarray_npy::npy::header::{Header, Layout};
use ndarray_npy::WriteNpyExt;

use crate::{Error, Result};

/// The largest `.npy` header read: numpy's own default (`np.load(max_header_size=10000)`).
const MAX_HEADER: usize = 10_000;
/// The deepest bracket nesting accepted in a header (numpy writes a flat dict holding one tuple).
const MAX_NESTING: usize = 8;

/// Reads a float16/32/64 `.npy` array of any rank as f32.
pub fn read_array(path: impl AsRef<Path>) -> Result<ArrayD<f32>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_array_bytes(&path.display().to_string(), &bytes)
}

/// Reads a float16/32/64 `.npy` array of any rank as f32 from its bytes; `name` is used in error
/// messages. The header is checked against the bytes before it is parsed (at most
/// 10 000 bytes, as numpy), and the data length against the shape, so nothing is allocated beyond
/// what the bytes hold.
pub fn read_array_bytes(name: &str, bytes: &[u8]) -> Result<ArrayD<f32>> {
    let fail = |reason: String| Error::input(name, reason);
    let header_end = header_end(bytes).map_err(|e| fail(format!("not a .npy file ({e})")))?;
    let header = Header::from_reader(&mut &bytes[..header_end])
        .map_err(|e| fail(format!("not a .npy file ({e})")))?;
    let descr = header.type_descriptor.to_string();
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let (size, big_endian) = match descr {
        "<f2" => (2, false),
        ">f2" => (2, true),
        "<f4" => (4, false),
        ">f4" => (4, true),
        "<f8" => (8, false),
        ">f8" => (8, true),
        other => {
            return Err(fail(format!(
                "dtype {other} is not supported, expected float32 or float64 (or float16)"
            )))
        }
    };
    let data = &bytes[header_end..];
    let needed = header
        .shape
        .iter()
        .try_fold(size, |n: usize, &d| n.checked_mul(d));
    if needed != Some(data.len()) {
        return Err(fail(format!(
            "holds {} bytes of data but shape {:?} of {descr} needs {}",
            data.len(),
            header.shape,
            needed.map_or("more than can be addressed".to_string(), |n| n.to_string())
        )));
    }
    let values: Vec<f32> = data
        .chunks_exact(size)
        .map(|b| decode_float(b, big_endian))
        .collect();
    let shape = IxDyn(&header.shape);
    let shape = shape.set_f(header.layout == Layout::Fortran);
    ArrayD::from_shape_vec(shape, values).map_err(|e| fail(e.to_string()))
}

/// The offset where the data starts: after the magic string, the version, the header length and the
/// header, all checked to fit in `bytes`, the header to be at most [`MAX_HEADER`] bytes and nested at
/// most [`MAX_NESTING`] brackets deep.
fn header_end(bytes: &[u8]) -> std::result::Result<usize, String> {
    let magic = b"\x93NUMPY";
    if !bytes.starts_with(magic) || bytes.len() < 10 {
        return Err("no NUMPY magic string".into());
    }
    let (len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => {
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (usize::try_from(len).unwrap_or(usize::MAX), 12)
        }
        v => return Err(format!("format version {v} is not supported")),
    };
    if len > MAX_HEADER || start + len > bytes.len() {
        return Err(format!(
            "header of {len} bytes, with {} bytes in the file and at most {MAX_HEADER} read",
            bytes.len()
        ));
    }
    let mut depth = 0usize;
    for &b in &bytes[start..start + len] {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_NESTING {
            return Err("header nested too deeply".into());
        }
    }
    Ok(start + len)
}

fn decode_float(b: &[u8], big_endian: bool) -> f32 {
    let mut buf = [0u8; 8];
    buf[..b.len()].copy_from_slice(b);
    if big_endian {
        buf[..b.len()].reverse();
    }
    match b.len() {
        2 => f16_to_f32(u16::from_le_bytes([buf[0], buf[1]])),
        4 => f32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]),
        _ => f64::from_le_bytes(buf) as f32,
    }
}

/// IEEE half precision to f32 (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f32::from(h & 0x3ff);
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        _ => (1.0 + frac / 1024.0) * 2f32.powi(exp - 15),
    }
}

/// Reads a float `.npy` array as an f32 tensor on `device`.
pub fn read_tensor(path: impl AsRef<Path>, device: &Device) -> Result<Tensor> {
    array_to_tensor(read_array(path)?, device)
}

/// Reads model pixels: a float `.npy` array of shape (B, `channels`, H, W), as an f32 CPU tensor.
pub fn read_pixels(path: impl AsRef<Path>, channels: usize) -> Result<Tensor> {
    let path = path.as_ref();
    let array = read_array(path)?;
    let shape = array.shape();
    if shape.len() != 4 || shape[1] != channels {
        return Err(Error::input(
            path.display().to_string(),
            format!("pixels must have shape (B, {channels}, H, W), got {shape:?}"),
        ));
    }
    if shape.contains(&0) {
        return Err(Error::input(
            path.display().to_string(),
            format!("pixels of shape {shape:?} are empty"),
        ));
    }
    array_to_tensor(array, &Device::Cpu)
}

/// An f32 array of any rank and layout as a tensor of the same shape on `device`.
pub fn array_to_tensor(array: ArrayD<f32>, device: &Device) -> Result<Tensor> {
    let shape = array.shape().to_vec();
    let data: Vec<f32> = if array.is_standard_layout() {
        array.into_raw_vec_and_offset().0
    } else {
        array.iter().copied().collect()
    };
    Ok(Tensor::from_vec(data, shape, device)?)
}

/// A tensor (any float dtype, any device) as an f32 array of the same shape.
pub fn tensor_to_array(tensor: &Tensor) -> Result<ArrayD<f32>> {
    let data = tensor
        .to_dtype(candle::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    ArrayD::from_shape_vec(IxDyn(tensor.dims()), data)
        .map_err(|e| Error::input("tensor", e.to_string()))
}

/// Writes an f32 array as a C-order `<f4` `.npy` file (temporary file + rename; [`Error::Io`] naming
/// `path` when it cannot be written).
pub fn write_array<S, D>(path: impl AsRef<Path>, array: &ArrayBase<S, D>) -> Result<()>
where
    S: Data<Elem = f32>,
    D: Dimension,
{
    let path = path.as_ref();
    let standard = array.as_standard_layout();
    let mut bytes = Vec::with_capacity(array.len() * 4 + 128);
    standard
        .write_npy(&mut bytes)
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
    crate::io::output::write_bytes(path, &bytes)
}

/// Writes a tensor as a C-order float32 `.npy` file (see [`write_array`]).
pub fn write_tensor(path: impl AsRef<Path>, tensor: &Tensor) -> Result<()> {
    write_array(path, &tensor_to_array(tensor)?)
}
