//! The file a trained probe is saved to: a safetensors file whose tensors use the published mmseg
//! names (`decode_head.bn.*`, `decode_head.conv_seg.*`, so one loader reads both) and whose
//! `__metadata__` holds a small JSON description ([`HeadMetadata`]) under the key `dinoreg_head`.
//!
//! The safetensors layout (8-byte little-endian header length, JSON header, raw little-endian data)
//! is written and read here directly because candle's writer has no metadata.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use candle::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The `__metadata__` key that holds the JSON [`HeadMetadata`].
pub const METADATA_KEY: &str = "dinoreg_head";

/// What a saved segmentation head is: its classes, the backbone width and blocks it reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadMetadata {
    /// Always `"bn_head"` for this head.
    pub kind: String,
    /// The number of classes `K`.
    pub num_classes: usize,
    /// The backbone width `E` per layer.
    pub embed_dim: usize,
    /// The blocks read, as in [`crate::FeatureRequest::blocks`] (`[-1]` linear, `[-4, -3, -2, -1]` ms);
    /// stored under the key `layers`.
    #[serde(rename = "layers")]
    pub blocks: Vec<i64>,
    /// One name per class, label order (may be empty).
    #[serde(default)]
    pub class_names: Vec<String>,
    /// One colour per class, label order (may be empty).
    #[serde(default)]
    pub palette: Vec<[u8; 3]>,
    /// The backbone the head was trained on (a Hub id or folder), when known.
    #[serde(default)]
    pub backbone: Option<String>,
    /// The validation mIoU reached, when known.
    #[serde(default)]
    pub val_miou: Option<f64>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Writes f32 `tensors` and string `metadata` as a safetensors file (via a temporary file, then a
/// rename, so a failure leaves no partial file).
pub(crate) fn write_safetensors(
    path: &Path,
    tensors: &[(&str, &Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::to_value(metadata).map_err(|e| invalid(path, e.to_string()))?,
    );
    let mut data: Vec<u8> = Vec::new();
    for (name, t) in tensors {
        let values = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F32", "shape": t.dims(), "data_offsets": [start, data.len()]}),
        );
    }
    let mut header = serde_json::to_vec(&header).map_err(|e| invalid(path, e.to_string()))?;
    header.resize(header.len().next_multiple_of(8), b' ');
    let tmp = path.with_extension("safetensors.partial");
    let write = || -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(&(header.len() as u64).to_le_bytes())?;
        f.write_all(&header)?;
        f.write_all(&data)?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error(path)(e)
    })
}

/// The `__metadata__` map of a safetensors file (empty when it has none).
pub(crate) fn read_safetensors_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    let mut f = std::fs::File::open(path).map_err(io_error(path))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(io_error(path))?;
    let len = u64::from_le_bytes(len);
    if len > 100_000_000 {
        return Err(invalid(
            path,
            format!("safetensors header of {len} bytes is implausibly large"),
        ));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(io_error(path))?;
    #[derive(Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__", default)]
        metadata: BTreeMap<String, String>,
    }
    let header: Header = serde_json::from_slice(&header)
        .map_err(|e| invalid(path, format!("unreadable safetensors header ({e})")))?;
    Ok(header.metadata)
}

/// The [`HeadMetadata`] of a safetensors head, `None` when the file carries none.
pub fn read_head_metadata(path: impl AsRef<Path>) -> Result<Option<HeadMetadata>> {
    let path = path.as_ref();
    let metadata = read_safetensors_metadata(path)?;
    metadata
        .get(METADATA_KEY)
        .map(|json| {
            serde_json::from_str(json)
                .map_err(|e| invalid(path, format!("invalid `{METADATA_KEY}` metadata ({e})")))
        })
        .transpose()
}
