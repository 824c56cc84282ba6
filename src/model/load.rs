//! Where and in which precision a model runs: [`LoadOptions`], shared by every backbone and head
//! loader.

use candle::{DType, Device};

use crate::{Error, Result};

/// Where and in which precision a model runs.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The device the weights are loaded on.
    pub device: Device,
    /// The dtype of the weights and activations (f32 on CPU; f16/bf16 checkpoints are converted).
    pub dtype: DType,
    /// Run f32 CPU passes through the fused kernels (default); `false` forces the generic candle
    /// ops, which compute the same function more slowly (kept for comparison and debugging).
    pub fused_kernels: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            dtype: DType::F32,
            fused_kernels: true,
        }
    }
}

impl LoadOptions {
    /// Sets the device.
    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Sets the dtype.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Sets whether f32 CPU passes use the fused kernels.
    pub fn with_fused_kernels(mut self, yes: bool) -> Self {
        self.fused_kernels = yes;
        self
    }
}

/// The device named `name`: `cpu`, `cuda` or `cuda:N`; `None` takes CUDA device 0 when this build
/// has CUDA and a GPU is present, else the CPU.
///
/// ```
/// assert!(dinoreg::model::parse_device(Some("cpu")).unwrap().is_cpu());
/// assert!(dinoreg::model::parse_device(Some("tpu")).is_err());
/// ```
pub fn parse_device(name: Option<&str>) -> Result<Device> {
    match name {
        None => Ok(Device::cuda_if_available(0).unwrap_or(Device::Cpu)),
        Some("cpu") => Ok(Device::Cpu),
        Some(s) if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal = match s.strip_prefix("cuda:") {
                None => 0,
                Some(n) => n.parse::<usize>().map_err(|_| {
                    Error::option("device", format!("{s:?}: expected cuda:N with N a number"))
                })?,
            };
            Device::new_cuda(ordinal).map_err(|_| {
                Error::option(
                    "device",
                    format!("{s}: CUDA is not available (build with --features cuda on a machine with a GPU)"),
                )
            })
        }
        Some(other) => Err(Error::option(
            "device",
            format!("{other:?}: expected cpu, cuda or cuda:N"),
        )),
    }
}

impl LoadOptions {
    /// Sets the device by name (see [`parse_device`]).
    pub fn with_device_name(self, name: Option<&str>) -> Result<Self> {
        Ok(self.with_device(parse_device(name)?))
    }
}
