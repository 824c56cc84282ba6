//! Where and in which precision a model runs: [`LoadOptions`], shared by every backbone and head
//! loader.

use candle::{DType, Device};

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
