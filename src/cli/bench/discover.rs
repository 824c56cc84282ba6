//! `dinoreg bench --task discover`: LOST and TokenCut on one full-resolution image, each against the
//! backbone pass they start from: the time of each stage and the peak RSS during each (the peak is
//! reset between stages where Linux allows it).

use std::time::Instant;

use dinoreg::heads::discovery::{pad_to_patches, Lost, LostOptions, TokenCut, TokenCutOptions};
use dinoreg::heads::Head;
use dinoreg::Vit;

use super::heavy::HeavyOptions;
use super::image::{bench_image, normalised_pixels};
use super::memory::{json_mb, peak_rss_mb, reset_peak_rss};

/// Runs the benchmark and prints its JSON line.
pub fn run(model: &dyn Vit, opts: &HeavyOptions) -> anyhow::Result<()> {
    let patch = model.info().patch_size;
    let rgb = bench_image(opts.image.as_deref(), opts.size)?;
    let pixels = normalised_pixels(&rgb, model.device())?;
    let (padded, size) = pad_to_patches(&pixels, patch)?;
    let lost = Lost::new(LostOptions::default())?;
    let tokencut = TokenCut::new(TokenCutOptions::default())?;
    let rss_loaded = peak_rss_mb();
    let start = Instant::now();
    let features = model.features(&padded, &lost.request())?;
    let backbone_s = start.elapsed().as_secs_f64();
    let rss_backbone = peak_rss_mb();
    let (_, _, gh, gw) = features.maps[0].dims4()?;
    println!(
        "discover: {}x{} image, {gh}x{gw} patches; backbone {backbone_s:.2} s",
        opts.size.0, opts.size.1
    );
    let reset = reset_peak_rss();
    let start = Instant::now();
    let found_lost = lost.discover(&features, size)?;
    let lost_s = start.elapsed().as_secs_f64();
    let rss_lost = peak_rss_mb();
    println!(
        "LOST {lost_s:.2} s, box {:?}",
        found_lost.first().map(|d| d.bbox)
    );
    reset_peak_rss();
    let start = Instant::now();
    let found_tokencut = tokencut.discover(&features, size)?;
    let tokencut_s = start.elapsed().as_secs_f64();
    let rss_tokencut = peak_rss_mb();
    println!(
        "TokenCut {tokencut_s:.2} s, box {:?}",
        found_tokencut.first().map(|d| d.bbox)
    );
    println!(
        "{{\"task\": \"discover\", \"image\": [{}, {}], \"padded\": {:?}, \"patches\": {}, \"backbone_s\": {backbone_s:.3}, \"lost_s\": {lost_s:.3}, \"tokencut_s\": {tokencut_s:.3}, \"peak_rss_loaded_mb\": {}, \"peak_rss_backbone_mb\": {}, \"peak_reset\": {reset}, \"peak_rss_lost_mb\": {}, \"peak_rss_tokencut_mb\": {}}}",
        opts.size.0,
        opts.size.1,
        padded.dims(),
        gh * gw,
        json_mb(rss_loaded),
        json_mb(rss_backbone),
        json_mb(rss_lost),
        json_mb(rss_tokencut)
    );
    Ok(())
}
