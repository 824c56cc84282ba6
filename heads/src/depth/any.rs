//! One type for any of the depth heads, for code that picks the head at run time (the CLI).

use candle::Tensor;

use super::config::DepthKind;
use super::dinov2_dpt::Dinov2DptDepthHead;
use super::dinov2_linear::Dinov2LinearDepthHead;
use super::dpt::DepthAnythingHead;
use super::output::DepthHead;
use crate::{FeatureMaps, FeatureRequest, Head, Result};

/// Any depth head of this crate.
#[derive(Debug, Clone)]
pub enum AnyDepthHead {
    /// Depth-Anything's DPT neck and head.
    DepthAnything(DepthAnythingHead),
    /// dinov2's linear depth head.
    Dinov2Linear(Dinov2LinearDepthHead),
    /// dinov2's DPT depth head.
    Dinov2Dpt(Dinov2DptDepthHead),
}

impl AnyDepthHead {
    /// Whether the output is relative (Depth-Anything's relative models: larger is nearer) or metric
    /// (metres: Depth-Anything's metric models and dinov2's heads).
    pub fn kind(&self) -> DepthKind {
        match self {
            AnyDepthHead::DepthAnything(h) => h.config().depth_estimation_type,
            _ => DepthKind::Metric,
        }
    }

    fn inner(&self) -> &dyn DepthHead {
        match self {
            AnyDepthHead::DepthAnything(h) => h,
            AnyDepthHead::Dinov2Linear(h) => h,
            AnyDepthHead::Dinov2Dpt(h) => h,
        }
    }
}

impl Head for AnyDepthHead {
    /// Depth `(B, h', w')`, as the inner head returns it.
    type Output = Tensor;

    fn request(&self) -> FeatureRequest {
        self.inner().request()
    }

    fn forward(&self, features: &FeatureMaps) -> Result<Tensor> {
        self.inner().forward(features)
    }
}

impl DepthHead for AnyDepthHead {
    fn resize_output(&self, depth: &Tensor, size: (usize, usize)) -> Result<Tensor> {
        self.inner().resize_output(depth, size)
    }
}

impl From<DepthAnythingHead> for AnyDepthHead {
    fn from(head: DepthAnythingHead) -> Self {
        AnyDepthHead::DepthAnything(head)
    }
}

impl From<Dinov2LinearDepthHead> for AnyDepthHead {
    fn from(head: Dinov2LinearDepthHead) -> Self {
        AnyDepthHead::Dinov2Linear(head)
    }
}

impl From<Dinov2DptDepthHead> for AnyDepthHead {
    fn from(head: Dinov2DptDepthHead) -> Self {
        AnyDepthHead::Dinov2Dpt(head)
    }
}
