//! `dinoreg bench`: times the encoder's forward pass (`last_hidden_state` and `pooler_output`, as
//! HF's `model(pixel_values)`). `--model` is a preset (DINOv2's `small`, `base`, `large`, `giant`;
//! DINOv3's `dinov3-small`, `dinov3-small-plus`, `dinov3-base`, `dinov3-large`: random weights of
//! that architecture, built in memory from a seeded generator, no download), a local model folder
//! or a Hub id. Runs `--warmup` passes, then `--iters` timed ones, prints each, the
//! statistics, the achieved GFLOP/s and the peak RSS (`VmHWM`); the last line is JSON
//! `{"median_ms": …, "min_ms": …, "peak_rss_mb": …, …}` for scripts.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use candle::Device;
use dinoreg::model::flops::{forward_flops, FeedForward};
use dinoreg::model::random::random_pixels;
use dinoreg::profile;
use dinoreg::{DinoModel, LoadOptions, ModelConfig, ModelSource, Vit};

/// Arguments of `dinoreg bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `small`, `base`, `large`, `giant` (DINOv2) or `dinov3-small`, `dinov3-small-plus`,
    /// `dinov3-base`, `dinov3-large` (random weights of that architecture, no download), a local
    /// model folder or a Hub id.
    #[arg(long, short = 'm')]
    model: String,
    /// Input size `HxW` in pixels (or one number for a square).
    #[arg(long, default_value = "224x224")]
    size: String,
    /// Images per pass.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Timed passes.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Untimed passes first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Threads of the rayon pool (and candle's); default: the physical cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Device: `cpu`, `cuda` or `cuda:N`.
    #[arg(long)]
    device: Option<String>,
    /// Seed of the random weights (presets) and of the random input.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also print the time of each part of the pass (fused CPU path).
    #[arg(long)]
    profile: bool,
    /// Use candle's generic ops instead of the fused f32 CPU kernels (for comparison).
    #[arg(long)]
    generic: bool,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.iters == 0 {
        bail!("--iters must be at least 1");
    }
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(t) => {
            // candle sizes its matmuls from this variable; rayon's pool is built below.
            std::env::set_var("RAYON_NUM_THREADS", t.to_string());
            t
        }
        None => candle::utils::get_num_threads(),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start the thread pool")?;
    pool.install(|| bench(&args, threads))
}

fn bench(args: &Args, threads: usize) -> anyhow::Result<()> {
    let (height, width) = parse_size(&args.size)?;
    let start = Instant::now();
    let (model, config) = load_model(args)?;
    let info = model.info().clone();
    println!(
        "model {} (D {}, {} layers, {} heads, {} registers) loaded in {:.2} s; {} thread(s), {:?}, {:?}{}",
        args.model,
        info.hidden_size,
        info.num_hidden_layers,
        info.num_attention_heads,
        info.num_register_tokens,
        start.elapsed().as_secs_f64(),
        threads,
        model.device(),
        model.dtype(),
        if args.generic { ", generic candle ops" } else { "" }
    );
    let pixels = random_pixels(
        (args.batch, info.num_channels, height, width),
        args.seed ^ 0x5eed,
        model.device(),
    )?;
    let flops = forward_flops(&info, FeedForward::of(&config), args.batch, (height, width));
    println!(
        "input {}x{}x{}x{}, {:.2} GFLOP per pass",
        args.batch,
        info.num_channels,
        height,
        width,
        flops / 1e9
    );
    let run_once = || -> anyhow::Result<Duration> {
        let t = Instant::now();
        let out = model.forward(&pixels)?;
        // Waits for asynchronous devices.
        out.pooler_output.to_device(&Device::Cpu)?;
        Ok(t.elapsed())
    };
    for i in 0..args.warmup {
        println!("warmup {}: {:.2} ms", i + 1, ms(run_once()?));
    }
    profile::enable(args.profile);
    profile::reset();
    let mut times = Vec::with_capacity(args.iters);
    for i in 0..args.iters {
        let t = run_once()?;
        println!("run {}: {:.2} ms", i + 1, ms(t));
        times.push(ms(t));
    }
    profile::enable(false);
    let stats = Stats::of(&times);
    let rss = peak_rss_mb();
    println!(
        "median {:.2} ms, min {:.2} ms, mean {:.2} ms, max {:.2} ms, stdev {:.2} ms over {} runs",
        stats.median, stats.min, stats.mean, stats.max, stats.stdev, args.iters
    );
    println!(
        "{:.1} GFLOP/s at the median ({:.1} at the min); {:.1} images/s",
        flops / stats.median / 1e6,
        flops / stats.min / 1e6,
        args.batch as f64 * 1e3 / stats.median
    );
    if args.profile {
        print_profile(&times);
    }
    match rss {
        Some(r) => println!("peak RSS {r:.1} MiB"),
        None => println!("peak RSS unknown (no /proc/self/status)"),
    }
    println!(
        "{{\"median_ms\": {:.3}, \"min_ms\": {:.3}, \"mean_ms\": {:.3}, \"peak_rss_mb\": {}, \"gflop\": {:.3}, \"threads\": {}}}",
        stats.median,
        stats.min,
        stats.mean,
        rss.map_or("null".to_string(), |r| format!("{r:.1}")),
        flops / 1e9,
        threads
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_profile(times: &[f64]) {
    let total: f64 = times.iter().sum();
    let iters = times.len() as f64;
    println!("time per pass by part ({} kernels):", profile::simd_path());
    for (part, d) in profile::report() {
        let t = ms(d);
        if t > 0.0 {
            println!(
                "  {:<16} {:>9.2} ms  {:>5.1}%",
                part.name(),
                t / iters,
                100.0 * t / total
            );
        }
    }
}

/// `HxW` or `N`.
fn parse_size(s: &str) -> anyhow::Result<(usize, usize)> {
    let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
    let (h, w) = match s.split_once(['x', 'X']) {
        Some((h, w)) => (parse(h), parse(w)),
        None => (parse(s), parse(s)),
    };
    match (h, w) {
        (Some(h), Some(w)) => Ok((h, w)),
        _ => bail!("invalid --size {s:?}: expected HxW in pixels, for example 518x518"),
    }
}

/// A preset with random weights (no download), or the model `--model` names, with its config.
fn load_model(args: &Args) -> anyhow::Result<(Box<dyn Vit>, ModelConfig)> {
    let load = LoadOptions::default()
        .with_fused_kernels(!args.generic)
        .with_device_name(args.device.as_deref())?;
    if let Ok(config) = ModelConfig::preset_by_name(&args.model) {
        let model = DinoModel::random(&config, args.seed, &load)?;
        return Ok((Box::new(model), config));
    }
    let source = ModelSource::resolve(&args.model)?;
    Ok((Box::new(source.load(&load)?), source.config))
}

/// Peak resident set size in MiB (`VmHWM` of `/proc/self/status`).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Summary of the timed runs, in ms.
struct Stats {
    median: f64,
    min: f64,
    max: f64,
    mean: f64,
    stdev: f64,
}

impl Stats {
    fn of(times: &[f64]) -> Self {
        let mut s = times.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            0.5 * (s[n / 2 - 1] + s[n / 2])
        };
        let mean = s.iter().sum::<f64>() / n as f64;
        let var = s.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n as f64;
        Self {
            median,
            min: s[0],
            max: s[n - 1],
            mean,
            stdev: var.sqrt(),
        }
    }
}
