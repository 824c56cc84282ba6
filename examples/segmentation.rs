//! A segmentation pipeline in a few lines: a DINOv2 backbone, one of dinov2's published BNHead
//! probes (or a head from `dinoreg train-seg`), dinov2's "linear" evaluation (short side 512,
//! sliding 512×512 windows, centre padding to the patch size), and the predicted classes drawn over
//! the image with a legend.
//!
//! ```text
//! # dinov2 publishes heads for backbones without registers, e.g.
//! # https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_voc2012_linear_head.pth
//! cargo run --release --example segmentation -- [MODEL] [HEAD] [IMAGE] [OUT.png]
//! # defaults: facebook/dinov2-small dinov2_vits14_voc2012_linear_head.pth
//! #           examples/images/chelsea.png segmentation.png
//! ```

use candle::{Device, Tensor};
use dinoreg::heads::segmentation::{
    legend_entries, overlay, predict, BnHead, ClassSet, InferenceOptions, OverlayOptions,
};
use dinoreg::heads::Head;
use dinoreg::io::npy::array_to_tensor;
use dinoreg::model::weights::open_backbone;
use dinoreg::preprocess::{ImageProcessor, ProcessorConfig, IMAGENET_MEAN, IMAGENET_STD};
use dinoreg::Vit;
use dinoreg::{resolve_model, Dinov2Config, Dinov2Model, LoadOptions};
use ndarray::Axis;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &'static str| args.get(i).map_or(default, String::as_str);
    let (model, head, image, output) = (
        arg(0, "facebook/dinov2-small"),
        arg(1, "dinov2_vits14_voc2012_linear_head.pth"),
        arg(2, "examples/images/chelsea.png"),
        arg(3, "segmentation.png"),
    );
    let device = Device::Cpu;

    let files = resolve_model(model)?;
    let config = Dinov2Config::from_file(&files.config)?;
    let weights = open_backbone(&files.weights)?;
    let backbone = Dinov2Model::from_weights(config.clone(), &weights, &LoadOptions::default())?;
    // The head's input channels over the backbone width say how many blocks it reads (1 or 4).
    let head = BnHead::load(head, config.hidden_size, &device)?;
    let classes = head
        .classes()
        .cloned()
        .unwrap_or_else(|| ClassSet::for_num_classes(head.num_classes()));

    // mmseg's pipeline normalises with the ImageNet mean and std at the image's own size; the
    // resize, the windows and the padding happen inside `predict`.
    let processor = ImageProcessor::new(
        ProcessorConfig::default()
            .with_resize(false)
            .with_center_crop(false)
            .with_mean_std(IMAGENET_MEAN, IMAGENET_STD),
    );
    let rgb = processor.read(image)?;
    let (h, w) = (rgb.height() as usize, rgb.width() as usize);
    let pixels = array_to_tensor(
        processor.to_pixels(&rgb).insert_axis(Axis(0)).into_dyn(),
        &device,
    )?;
    let opts = InferenceOptions::linear().with_center_padding(Some(config.patch_size));
    let logits = predict(&pixels, &opts, |x: &Tensor| -> anyhow::Result<Tensor> {
        let features = backbone.features(x, &head.request())?;
        Ok(head.grid_logits(&features)?)
    })?;

    let labels = logits.argmax(1)?.flatten_all()?.to_vec1::<u32>()?;
    for e in legend_entries(&labels, &classes).iter().take(5) {
        println!("{:>5.1}%  {}", 100.0 * e.fraction, e.name);
    }
    let canvas = overlay(
        rgb.as_raw(),
        (h, w),
        &labels,
        &classes,
        &OverlayOptions::default(),
    )?;
    image::RgbImage::from_raw(canvas.width as u32, canvas.height as u32, canvas.data)
        .ok_or_else(|| anyhow::anyhow!("overlay buffer size"))?
        .save(output)?;
    println!(
        "{image}: logits {:?}, picture written to {output}",
        logits.dims()
    );
    Ok(())
}
