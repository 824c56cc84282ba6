//! Depth in a few lines: a Depth-Anything-V2 model (Hub id or folder; or a DINOv2 model plus one of
//! dinov2's depth heads), one image, relative depth at the image's size as `.npy` and a picture.
//!
//! ```text
//! cargo run --release --example depth -- [MODEL] [IMAGE] [OUT.png]
//! # defaults: depth-anything/Depth-Anything-V2-Small-hf examples/images/chelsea.png depth.png
//! ```

use dinoreg::pipelines::{DepthOptions, DepthPicture, DepthPipeline};
use dinoreg::LoadOptions;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &'static str| args.get(i).map_or(default, String::as_str);
    let (model, image, output) = (
        arg(0, "depth-anything/Depth-Anything-V2-Small-hf"),
        arg(1, "examples/images/chelsea.png"),
        arg(2, "depth.png"),
    );
    let options = DepthOptions::default();
    let pipeline = DepthPipeline::from_pretrained(model, None, &options, &LoadOptions::default())?;
    let depth = pipeline.run_path(image)?;
    depth.write_png(output, DepthPicture::Inferno)?;
    depth.write_npy(std::path::Path::new(output).with_extension("npy"))?;
    println!("{image}: depth {:?} written to {output}", depth.size());
    Ok(())
}
