//! One tensor as a checkpoint stores it, checked at open, and read on demand with positioned reads
//! straight into its buffer.
//!
//! A stored tensor is a shape, a dtype and where its elements are: `start` (the byte offset of element
//! `(0, …, 0)`) and, for a strided view (a PyTorch tensor saved as a transpose or slice of its
//! storage), the strides in elements. [`Stored::check`] proves at open that every element lies inside
//! `limit` bytes of the file and that the tensor has no more elements than its storage, so reading
//! never allocates more than the file holds.

use candle::{DType, Device, Tensor};

use super::source::Source;
use crate::{Error, Result};

/// A tensor's place in a checkpoint file.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// The dims.
    pub shape: Vec<usize>,
    /// The element type, or the name of a stored type candle cannot hold.
    pub dtype: std::result::Result<DType, String>,
    /// Which source (shard) holds it.
    pub source: usize,
    /// The byte offset of the first element.
    pub start: u64,
    /// Strides in elements, `None` when C-contiguous.
    pub strides: Option<Vec<usize>>,
}

impl Stored {
    /// The number of elements (checked at open).
    pub(crate) fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Checks that the tensor lies in `start..limit` of its source and has at most `capacity`
    /// elements (its storage's); returns why not.
    pub(crate) fn check(&self, limit: u64, capacity: u64) -> std::result::Result<(), String> {
        let size = match &self.dtype {
            Ok(d) => d.size_in_bytes() as u64,
            Err(_) => 1,
        };
        let numel = self
            .shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .filter(|n| *n <= capacity)
            .ok_or_else(|| {
                format!(
                    "shape {:?} has more elements than its storage ({capacity})",
                    self.shape
                )
            })?;
        if numel == 0 {
            return Ok(());
        }
        self.span_elements()
            .and_then(|span| span.checked_mul(size))
            .and_then(|bytes| bytes.checked_add(self.start))
            .filter(|end| *end <= limit)
            .map(|_| ())
            .ok_or_else(|| {
                format!(
                    "shape {:?} with strides {:?} at byte {} runs past the end of its data ({limit} bytes)",
                    self.shape, self.strides, self.start
                )
            })
    }

    /// Elements from the first to the last one the view touches, inclusive (`numel` > 0).
    fn span_elements(&self) -> Option<u64> {
        match &self.strides {
            None => self
                .shape
                .iter()
                .try_fold(1u64, |n, &d| n.checked_mul(d as u64)),
            Some(strides) => self
                .shape
                .iter()
                .zip(strides)
                .try_fold(1u64, |n, (&d, &s)| {
                    (d as u64 - 1)
                        .checked_mul(s as u64)
                        .and_then(|x| n.checked_add(x))
                }),
        }
    }

    /// Reads the tensor `name` from `source` onto the CPU, in its stored dtype.
    pub(crate) fn read(&self, source: &Source, name: &str) -> Result<Tensor> {
        let fail = |reason: String| Error::Checkpoint {
            path: source.path().to_path_buf(),
            reason: format!("tensor `{name}`: {reason}"),
        };
        let dtype = match &self.dtype {
            Ok(d) => *d,
            Err(stored) => return Err(fail(format!("stored as {stored}, which cannot be loaded"))),
        };
        let io = |e: std::io::Error| fail(e.to_string());
        let numel = self.numel();
        if self.strides.is_none() && dtype == DType::F32 {
            let mut data = vec![0f32; numel];
            source
                .read_exact_at(bytemuck::cast_slice_mut(&mut data), self.start)
                .map_err(io)?;
            for v in &mut data {
                *v = f32::from_bits(u32::from_le(v.to_bits()));
            }
            return Ok(Tensor::from_vec(data, self.shape.as_slice(), &Device::Cpu)?);
        }
        let size = dtype.size_in_bytes();
        let bytes = match &self.strides {
            None => {
                let mut bytes = vec![0u8; numel * size];
                source.read_exact_at(&mut bytes, self.start).map_err(io)?;
                bytes
            }
            Some(strides) if numel > 0 => {
                let span = self.span_elements().unwrap_or(0) as usize;
                let mut raw = vec![0u8; span * size];
                source.read_exact_at(&mut raw, self.start).map_err(io)?;
                gather(&raw, &self.shape, strides, size)
            }
            Some(_) => Vec::new(),
        };
        Ok(Tensor::from_raw_buffer(
            &bytes,
            dtype,
            &self.shape,
            &Device::Cpu,
        )?)
    }
}

/// The elements of a strided view of `raw` (element size `size`), in C order.
fn gather(raw: &[u8], shape: &[usize], strides: &[usize], size: usize) -> Vec<u8> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(numel * size);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..numel {
        let at: usize = index.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>() * size;
        out.extend_from_slice(&raw[at..at + size]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}
