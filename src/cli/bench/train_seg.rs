//! `dinoreg bench --task train-seg`: `train-seg`'s feature extraction with a cache folder, per image:
//! the backbone pass alone on the pipeline's pixels, the first `sample` (decode, resize, backbone,
//! write to the cache) and the second (read back from the cache). The images are written to a
//! temporary folder first (the pipeline reads files), with random label maps.

use std::time::Instant;

use anyhow::Context;
use dinoreg::heads::FeatureRequest;
use dinoreg::model::random::random_pixels;
use dinoreg::pipelines::{
    LabelMap, LabeledImage, ProbeItem, ProbeTrainingOptions, ProbeTrainingPipeline,
};
use dinoreg::{ImageProcessor, ProcessorConfig, Vit};

use super::heavy::HeavyOptions;
use super::image::bench_image;
use super::memory::{json_mb, peak_rss_mb};

/// Runs the benchmark and prints its JSON line; removes its temporary folder.
pub fn run(model: Box<dyn Vit>, opts: &HeavyOptions) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("dinoreg-bench-train-seg-{}", std::process::id()));
    let result = bench(model, opts, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn bench(model: Box<dyn Vit>, opts: &HeavyOptions, dir: &std::path::Path) -> anyhow::Result<()> {
    let items = write_items(opts, dir)?;
    let options = ProbeTrainingOptions::default().with_cache(dir.join("cache"));
    let request = FeatureRequest::blocks(options.probe.blocks());
    let reader = ImageProcessor::new(ProcessorConfig::default());
    let pipeline = ProbeTrainingPipeline::new(model, reader.clone(), "bench", &options)?;
    let (mut backbone, mut cold, mut warm) = (0.0, 0.0, 0.0);
    for item in &items {
        let pixels = pipeline.pixels(&reader.read(&item.files.image)?)?;
        let start = Instant::now();
        pipeline.model().features(&pixels, &request)?;
        backbone += start.elapsed().as_secs_f64();
        let start = Instant::now();
        pipeline.sample(item)?;
        cold += start.elapsed().as_secs_f64();
        let start = Instant::now();
        pipeline.sample(item)?;
        warm += start.elapsed().as_secs_f64();
    }
    let n = items.len() as f64;
    let per = |s: f64| 1e3 * s / n;
    println!(
        "train-seg: {} images of {}x{} (short side {:?}); per image: backbone alone {:.1} ms, extract and cache {:.1} ms ({:.2}x), cached {:.1} ms",
        items.len(),
        opts.size.0,
        opts.size.1,
        options.short_side,
        per(backbone),
        per(cold),
        cold / backbone,
        per(warm)
    );
    println!(
        "{{\"task\": \"train-seg\", \"image\": [{}, {}], \"images\": {}, \"short_side\": {}, \"blocks\": {:?}, \"backbone_ms\": {:.2}, \"extract_cache_ms\": {:.2}, \"cached_ms\": {:.2}, \"extract_over_backbone\": {:.3}, \"peak_rss_mb\": {}}}",
        opts.size.0,
        opts.size.1,
        items.len(),
        options.short_side.map_or("null".to_string(), |s| s.to_string()),
        request.blocks,
        per(backbone),
        per(cold),
        per(warm),
        cold / backbone,
        json_mb(peak_rss_mb())
    );
    Ok(())
}

/// `opts.images` copies of the bench image as PNGs under `dir`, each with random labels.
fn write_items(opts: &HeavyOptions, dir: &std::path::Path) -> anyhow::Result<Vec<ProbeItem>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let rgb = bench_image(opts.image.as_deref(), opts.size)?;
    let (h, w) = opts.size;
    let classes = opts.classes.max(1) as f32;
    (0..opts.images)
        .map(|i| {
            let image = dir.join(format!("image{i}.png"));
            rgb.save(&image)
                .with_context(|| format!("cannot write {}", image.display()))?;
            let noise = random_pixels((1, 1, h, w), opts.seed ^ i as u64, &candle::Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            // Uniform on ±√3 to a class index.
            let values = noise
                .iter()
                .map(|v| (((v / 3f32.sqrt() + 1.0) / 2.0 * classes) as u32).min(classes as u32 - 1))
                .collect();
            Ok(ProbeItem {
                files: LabeledImage {
                    image,
                    labels: dir.join(format!("image{i}-labels.png")),
                },
                labels: LabelMap::from_values(values, (h, w))?,
            })
        })
        .collect()
}
