//! What the dense pipelines share: dinov2's dense evaluations (mmseg's segmentation pipeline, the
//! depth heads, Depth-Anything) normalise with the ImageNet mean and std at the image's own size,
//! whatever the checkpoint's `preprocessor_config.json` says; the model's processor only decodes
//! (its decode limits and alpha handling are kept). Pixels are `(1, 3, H, W)` f32 tensors.

use candle::{Device, Tensor};
use ndarray::{Array3, Axis};

use crate::io::npy::array_to_tensor;
use crate::preprocess::{ImageProcessor, ProcessorConfig, IMAGENET_MEAN, IMAGENET_STD};
use crate::Result;

/// `reader` (for its decoding settings) with ImageNet normalisation and neither resize nor crop.
pub(crate) fn imagenet_normaliser(reader: &ImageProcessor) -> ImageProcessor {
    reader.clone().with_config(
        ProcessorConfig::default()
            .with_resize(false)
            .with_center_crop(false)
            .with_mean_std(IMAGENET_MEAN, IMAGENET_STD),
    )
}

/// One image's `(3, H, W)` array as a `(1, 3, H, W)` tensor on `device`.
pub(crate) fn batch_of_one(array: Array3<f32>, device: &Device) -> Result<Tensor> {
    array_to_tensor(array.insert_axis(Axis(0)).into_dyn(), device)
}
