//! A depth pipeline in a few lines: a Depth-Anything-V2 model (Hub id or local folder), one image,
//! Depth-Anything's preprocessing, backbone features for the head, and relative depth at the image's
//! size, written as a `.npy` `(1, H, W)` (larger is nearer).
//!
//! ```text
//! cargo run --release --example depth -- [MODEL] [IMAGE] [OUT.npy] [INPUT_SIZE]
//! # defaults: depth-anything/Depth-Anything-V2-Small-hf examples/images/chelsea.png depth.npy 518
//! ```

use candle::Device;
use dinoreg::heads::depth::{
    depth_anything_input_size, DepthAnythingConfig, DepthAnythingHead, DepthHead,
};
use dinoreg::heads::Head;
use dinoreg::io::npy::{array_to_tensor, write_tensor};
use dinoreg::model::weights::open_backbone;
use dinoreg::preprocess::{resize_rgb8, ImageProcessor, ProcessorConfig, Resample};
use dinoreg::Vit;
use dinoreg::{resolve_model, Dinov2Config, Dinov2Model, LoadOptions};
use ndarray::Axis;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &'static str| args.get(i).map_or(default, String::as_str);
    let (model, image, output) = (
        arg(0, "depth-anything/Depth-Anything-V2-Small-hf"),
        arg(1, "examples/images/chelsea.png"),
        arg(2, "depth.npy"),
    );
    let input_size: usize = arg(3, "518").parse()?;
    let device = Device::Cpu;

    // The backbone (`backbone.*`) and the DPT neck and head (`neck.*`, `head.*`) share one checkpoint.
    let files = resolve_model(model)?;
    let config = Dinov2Config::from_file(&files.config)?;
    let weights = open_backbone(&files.weights)?;
    let backbone = Dinov2Model::from_weights(config.clone(), &weights, &LoadOptions::default())?;
    let head = DepthAnythingHead::load(
        &weights.store,
        &DepthAnythingConfig::from_file(&files.config)?,
        &device,
    )?;

    // Depth-Anything's preprocessing: aspect kept, both sides >= input_size, multiples of the patch
    // size, bicubic, ImageNet normalisation.
    let processor = ImageProcessor::new(
        ProcessorConfig::default()
            .with_resize(false)
            .with_center_crop(false),
    );
    let rgb = processor.read(image)?;
    let (h, w) = (rgb.height() as usize, rgb.width() as usize);
    let (th, tw) = depth_anything_input_size((h, w), input_size, config.patch_size)?;
    let resized = resize_rgb8(&rgb, tw as u32, th as u32, Resample::Bicubic)?;
    let pixels = array_to_tensor(
        processor
            .to_pixels(&resized)
            .insert_axis(Axis(0))
            .into_dyn(),
        &device,
    )?;

    // The head says which blocks it reads; the backbone hands them over as feature maps.
    let features = backbone.features(&pixels, &head.request())?;
    let depth = head.resize_output(&head.forward(&features)?, (h, w))?;
    write_tensor(output, &depth)?;
    println!(
        "{image}: {th}x{tw} model input, depth {:?} written to {output}",
        depth.dims()
    );
    Ok(())
}
