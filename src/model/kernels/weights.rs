//! Borrowing the f32 data of a contiguous CPU tensor as a slice, without a copy: the fused
//! kernels read the weights in place, so the model holds each weight once.

use std::ops::Deref;

use candle::{CpuStorage, Storage, Tensor};

/// The elements of a contiguous f32 CPU tensor, borrowed through its storage guard.
struct F32Slice<G> {
    guard: G,
    start: usize,
    len: usize,
}

/// Borrows the elements of `t`, or `None` when it is not a contiguous f32 tensor on the CPU.
pub(crate) fn f32_slice(t: &Tensor) -> Option<impl Deref<Target = [f32]> + '_> {
    let (guard, layout) = t.storage_and_layout();
    let start = layout.start_offset();
    let len = layout.shape().elem_count();
    if !layout.is_contiguous() {
        return None;
    }
    match &*guard {
        Storage::Cpu(CpuStorage::F32(v)) if start + len <= v.len() => {}
        _ => return None,
    }
    Some(F32Slice { guard, start, len })
}

impl<G: Deref<Target = Storage>> Deref for F32Slice<G> {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match &*self.guard {
            Storage::Cpu(CpuStorage::F32(v)) => &v[self.start..self.start + self.len],
            // `f32_slice` only builds an F32Slice over f32 CPU storage.
            _ => &[],
        }
    }
}
