//! What the dense pipelines share: the image at its own size (neither the processor's resize nor
//! its crop; each task sizes it its own way), rescaled and normalised with the checkpoint
//! processor's mean and std. For every DINOv2 and DINOv3 LVD-1689M checkpoint those are the
//! ImageNet statistics that dinov2's dense evaluations (mmseg's segmentation pipeline, the depth
//! heads, Depth-Anything) hard-code; DINOv3's satellite (`sat493m`) checkpoints carry their own,
//! which their features were trained with. A processor that does not normalise gets the ImageNet
//! statistics (the dense heads expect normalised pixels). The model's processor also decodes (its
//! decode limits and alpha handling are kept). Pixels are `(1, 3, H, W)` f32 tensors.

use candle::{Device, Tensor};
use ndarray::{Array3, Axis};

use crate::io::npy::array_to_tensor;
use crate::preprocess::{ImageProcessor, ProcessorConfig, IMAGENET_MEAN, IMAGENET_STD};
use crate::Result;

/// `reader` (for its decoding settings) with neither resize nor crop, normalising with its own
/// mean and std (ImageNet's when it does not normalise).
pub(crate) fn dense_normaliser(reader: &ImageProcessor) -> ImageProcessor {
    let own = &reader.config;
    let (mean, std) = match own.do_normalize {
        true => (own.image_mean, own.image_std),
        false => (IMAGENET_MEAN, IMAGENET_STD),
    };
    reader.clone().with_config(
        ProcessorConfig::default()
            .with_resize(false)
            .with_center_crop(false)
            .with_mean_std(mean, std),
    )
}

/// One image's `(3, H, W)` array as a `(1, 3, H, W)` tensor on `device`.
pub(crate) fn batch_of_one(array: Array3<f32>, device: &Device) -> Result<Tensor> {
    array_to_tensor(array.insert_axis(Axis(0)).into_dyn(), device)
}
