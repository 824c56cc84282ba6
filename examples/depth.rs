//! Depth in a few lines: a Depth-Anything-V2 model (Hub id or folder), one image, depth at the
//! image's size as a picture and a `.npy`.
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
    let (model, image, out) = (
        arg(0, "depth-anything/Depth-Anything-V2-Small-hf"),
        arg(1, "examples/images/chelsea.png"),
        arg(2, "depth.png"),
    );
    let pipeline = DepthPipeline::from_pretrained(
        model,
        None,
        &DepthOptions::default(),
        &LoadOptions::default(),
    )?;
    let depth = pipeline.run_path(image)?;
    depth.write_png(out, DepthPicture::Inferno)?;
    depth.write_npy(std::path::Path::new(out).with_extension("npy"))?;
    println!("{image}: depth {:?} -> {out}", depth.size());
    Ok(())
}
