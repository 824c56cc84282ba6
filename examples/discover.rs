//! Unsupervised object discovery in a few lines: a DINO model, one image at full resolution, and the
//! object found by LOST and by TokenCut ([`DiscoveryPipeline`] pads the image to the patch size and
//! reads the last block's keys, as LOST and TokenCut do), printed and drawn.
//!
//! ```text
//! cargo run --release --example discover -- [MODEL] [IMAGE] [OUT.png]
//! # defaults: facebook/dinov2-with-registers-small examples/images/chelsea.png discover.png
//! ```

use dinoreg::pipelines::{DiscoveryMethod, DiscoveryOptions, DiscoveryPipeline};
use dinoreg::LoadOptions;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &'static str| args.get(i).map_or(default, String::as_str);
    let (model, image, out) = (
        arg(0, "facebook/dinov2-with-registers-small"),
        arg(1, "examples/images/chelsea.png"),
        arg(2, "discover.png"),
    );
    let tokencut = DiscoveryMethod::TokenCut(Default::default());
    for method in [DiscoveryMethod::default(), tokencut] {
        let options = DiscoveryOptions::default().with_method(method);
        let pipeline =
            DiscoveryPipeline::from_pretrained(model, &options, &LoadOptions::default())?;
        let found = pipeline.run_path(image)?;
        println!(
            "{}: box {:?} (x1, y1, x2, y2), seed {:?}, {} patches",
            pipeline.method().name(),
            found.bbox(),
            found.seed(),
            found.mask().iter().filter(|&&m| m).count()
        );
        #[cfg(feature = "draw")]
        if let DiscoveryMethod::Lost(_) = pipeline.method() {
            let picture = pipeline.processor().read(image)?;
            pipeline.draw(&picture, &found).save(out)?;
            println!("LOST's box drawn into {out}");
        }
    }
    Ok(())
}
