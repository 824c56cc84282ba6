//! dinoreg (being written).
pub use dinoreg_heads as heads;
