//! The safetensors format: an 8-byte little-endian header length `n`, a JSON header of `n` bytes
//! (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`), then the
//! data, whose offsets are relative to the end of the header. The header is parsed and validated by
//! the `safetensors` crate (offsets contiguous from 0, each tensor's byte size matching its shape and
//! dtype); here the file length is checked against it at open, so every tensor read later lies inside
//! the file as it was opened.

use candle::DType;
use safetensors::tensor::Metadata;
use safetensors::Dtype;

use super::source::Source;
use super::stored::Stored;

/// The largest header accepted (the `safetensors` crate's own limit).
const MAX_HEADER: u64 = 100_000_000;

/// The tensors of one safetensors source (shard `index` of a checkpoint), or why it is not one.
pub(crate) fn read_header(source: &Source, index: usize) -> Result<Vec<(String, Stored)>, String> {
    let len = source.len();
    let mut prefix = [0u8; 8];
    if len < 8 {
        return Err(format!("{len} bytes, too short for a safetensors header"));
    }
    source
        .read_exact_at(&mut prefix, 0)
        .map_err(|e| e.to_string())?;
    let n = u64::from_le_bytes(prefix);
    if n > MAX_HEADER || n > len - 8 {
        return Err(format!(
            "the header claims {n} bytes but the file has {} after the length",
            len - 8
        ));
    }
    let mut header = vec![0u8; n as usize];
    source
        .read_exact_at(&mut header, 8)
        .map_err(|e| e.to_string())?;
    let metadata: Metadata =
        serde_json::from_slice(&header).map_err(|e| format!("invalid header ({e})"))?;
    let data_start = 8 + n;
    let expected = data_start + metadata.data_len() as u64;
    if expected != len {
        return Err(format!(
            "the header describes {expected} bytes but the file has {len} (truncated or padded?)"
        ));
    }
    let mut tensors: Vec<(String, Stored)> = metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| {
            let stored = Stored {
                shape: info.shape.clone(),
                dtype: dtype(info.dtype),
                source: index,
                start: data_start + info.data_offsets.0 as u64,
                strides: None,
            };
            (name, stored)
        })
        .collect();
    // The crate checked each size for the stored bit width; this re-checks the byte range of the
    // tensors that can be read, in candle's element size.
    for (name, stored) in tensors.iter().filter(|(_, s)| s.dtype.is_ok()) {
        stored
            .check(len, u64::MAX)
            .map_err(|reason| format!("tensor `{name}`: {reason}"))?;
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

/// candle's dtype for a safetensors dtype, or its name when candle has none.
fn dtype(d: Dtype) -> Result<DType, String> {
    Ok(match d {
        Dtype::U8 | Dtype::BOOL => DType::U8,
        Dtype::U32 => DType::U32,
        Dtype::I16 => DType::I16,
        Dtype::I32 => DType::I32,
        Dtype::I64 => DType::I64,
        Dtype::BF16 => DType::BF16,
        Dtype::F16 => DType::F16,
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::F8_E4M3 => DType::F8E4M3,
        other => return Err(format!("safetensors {other}")),
    })
}
