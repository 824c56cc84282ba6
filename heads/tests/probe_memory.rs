//! Probe training and validation with K = 1,000 classes stay in bounded memory (issue 12: a 515-class
//! probe on twelve small images grew to 24 GB). The work runs in a child process (this test binary
//! re-run on one test) so that its peak resident memory (`VmHWM` in `/proc/self/status`) is its own.
//!
//! The data: 128×128 label maps, 4-pixel patches (32×32 grids), batches of 2. Logits at label
//! resolution for the whole batch would be 2 × 1000 × 128 × 128 f32 = 131 MB per tensor, and
//! training through them keeps about ten such tensors alive (the loss and its backward pass), well
//! over a gigabyte; bounded, the run stays near the size of its grid logits and one band of rows.

use std::process::Command;

use candle::{Device, Tensor};
use dinoreg_heads::segmentation::{
    evaluate, train_probe, ProbeConfig, Sample, SplitMix64, TrainOptions,
};

const K: usize = 1000;
const E: usize = 16;
const P: usize = 4;
const SIZE: usize = 128;
const CHILD: &str = "DINOREG_PROBE_MEMORY_CHILD";
/// The most the child may hold at its peak, test harness included.
const LIMIT_MB: u64 = 500;

fn samples(n: usize, rng: &mut SplitMix64) -> Vec<Sample> {
    let g = SIZE / P;
    (0..n)
        .map(|_| {
            let features: Vec<f32> = (0..E * g * g).map(|_| rng.normal() as f32).collect();
            let labels: Vec<u32> = (0..SIZE * SIZE)
                .map(|_| rng.below(K + 1) as u32)
                .map(|l| if l == K as u32 { 255 } else { l })
                .collect();
            Sample::new(
                Tensor::from_vec(features, (E, g, g), &Device::Cpu).unwrap(),
                Tensor::from_vec(labels, (SIZE, SIZE), &Device::Cpu).unwrap(),
                P,
            )
            .unwrap()
        })
        .collect()
}

/// Peak resident memory of this process, in MB.
fn peak_rss_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// The child's work: train two epochs and validate, then print the peak.
#[test]
fn thousand_class_probe_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let mut rng = SplitMix64::new(11);
    let train = samples(2, &mut rng);
    let val = samples(1, &mut rng);
    let config = ProbeConfig::linear(K, E);
    let opts = TrainOptions::default()
        .with_epochs(2)
        .with_batch_size(2)
        .with_seed(1);
    let trained = train_probe(&train, &val, &config, &opts, &mut ()).unwrap();
    assert_eq!(trained.history.len(), 2);
    assert!(trained.history[1].train_loss.is_finite());
    assert_eq!(trained.history[1].val_iou.len(), K);
    let cm = evaluate(&trained.head, &val, 255).unwrap();
    assert_eq!(cm.mean_iou(), trained.history[1].val_miou);
    println!("peak_rss_mb={}", peak_rss_mb().unwrap_or(0));
}

#[test]
fn thousand_class_probe_trains_in_bounded_memory() {
    if !cfg!(target_os = "linux") || std::env::var_os(CHILD).is_some() {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "thousand_class_probe_child", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peak: u64 = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("peak_rss_mb="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no peak in the child's output: {stdout}"));
    eprintln!("K = {K}: peak RSS {peak} MB (limit {LIMIT_MB} MB)");
    assert!(peak > 0, "VmHWM was not readable");
    assert!(
        peak <= LIMIT_MB,
        "training with {K} classes peaked at {peak} MB, over {LIMIT_MB} MB"
    );
}
