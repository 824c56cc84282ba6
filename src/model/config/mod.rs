//! Model configurations, one file per generation: [`Dinov2Config`] (HF `Dinov2WithRegistersConfig`
//! and `Dinov2Config`).

mod dinov2;

pub use dinov2::*;
