//! Writing named tensors as a `.safetensors` file with string metadata (`__metadata__`), atomically
//! (see [`super::output`]). Tensors are moved to the CPU and written contiguous, in their dtype.

use std::collections::HashMap;
use std::path::Path;

use candle::{Device, Tensor};

use super::output::write_with;
use crate::{Error, Result};

/// Writes `tensors` (name, tensor) and `metadata` to `path`, replacing it only when complete.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<_>>()?;
    let metadata = (!metadata.is_empty()).then(|| metadata.clone());
    write_with(path, |tmp| {
        safetensors::serialize_to_file(cpu.iter().map(|(k, v)| (k.as_str(), v)), metadata, tmp)
            .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
    })
}
