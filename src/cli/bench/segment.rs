//! `dinoreg bench --task segment`: dinov2's "ms" segmentation (five scales, flips, 640×640 sliding
//! windows) of one image with a random BNHead, timed by part: the backbone passes, the head, the
//! window preparation (resize, flip, cut, pad), the accumulation of window logits at the output
//! size, the final softmax and mean; and the process's peak RSS.

use std::time::Instant;

use dinoreg::heads::segmentation::{predict_timed, InferenceOptions};
use dinoreg::heads::Head;
use dinoreg::Vit;

use super::head::random_head;
use super::heavy::HeavyOptions;
use super::image::{bench_image, normalised_pixels};
use super::memory::{json_mb, peak_rss_mb};
use super::timer::Counter;

/// Runs the benchmark and prints its JSON line.
pub fn run(model: &dyn Vit, opts: &HeavyOptions) -> anyhow::Result<()> {
    let info = model.info().clone();
    let rgb = bench_image(opts.image.as_deref(), opts.size)?;
    let pixels = normalised_pixels(&rgb, model.device())?;
    let head = random_head(info.hidden_size, opts.classes, opts.seed, model.device())?;
    let mut inference = InferenceOptions::multi_scale()
        .with_center_padding(Some(info.patch_size))
        .with_flip(opts.flip);
    if let Some(r) = &opts.ratios {
        inference = inference.with_ratios(r.clone());
    }
    if let Some(n) = opts.windows_per_call {
        inference = inference.with_windows_per_call(n);
    }
    println!(
        "segment: {}x{} image, ratios {:?}, flip {}, {} classes, {} windows per call",
        opts.size.0,
        opts.size.1,
        inference.ratios,
        inference.flip,
        opts.classes,
        inference.windows_per_call
    );
    let rss_loaded = peak_rss_mb();
    let (backbone, head_time) = (Counter::default(), Counter::default());
    let request = head.request();
    let start = Instant::now();
    let (logits, t) = predict_timed(&pixels, &inference, |x| {
        let features = backbone
            .time(|| model.features(x, &request))
            .map_err(|e| dinoreg::heads::Error::input("backbone", e.to_string()))?;
        head_time.time(|| head.grid_logits(&features))
    })?;
    let total = start.elapsed().as_secs_f64();
    let secs = |d: std::time::Duration| d.as_secs_f64();
    let rest = total - backbone.secs() - head_time.secs();
    println!(
        "total {total:.2} s: backbone {:.2} s ({:.1}%), head {:.2} s, prepare {:.2} s, accumulate {:.2} s, softmax+mean {:.2} s; {} windows in {} calls",
        backbone.secs(),
        100.0 * backbone.secs() / total,
        head_time.secs(),
        secs(t.prepare),
        secs(t.accumulate),
        secs(t.finish),
        t.windows,
        t.model_calls
    );
    println!(
        "{{\"task\": \"segment\", \"image\": [{}, {}], \"output\": {:?}, \"ratios\": {:?}, \"flip\": {}, \"windows\": {}, \"model_calls\": {}, \"total_s\": {total:.3}, \"backbone_s\": {:.3}, \"head_s\": {:.3}, \"prepare_s\": {:.3}, \"accumulate_s\": {:.3}, \"finish_s\": {:.3}, \"rest_s\": {rest:.3}, \"backbone_share\": {:.3}, \"peak_rss_loaded_mb\": {}, \"peak_rss_mb\": {}}}",
        opts.size.0,
        opts.size.1,
        logits.dims(),
        inference.ratios,
        inference.flip,
        t.windows,
        t.model_calls,
        backbone.secs(),
        head_time.secs(),
        secs(t.prepare),
        secs(t.accumulate),
        secs(t.finish),
        backbone.secs() / total,
        json_mb(rss_loaded),
        json_mb(peak_rss_mb())
    );
    Ok(())
}
