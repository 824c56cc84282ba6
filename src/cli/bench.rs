//! `dinoreg bench`: times the encoder's forward pass (`last_hidden_state` and `pooler_output`, as
//! HF's `model(pixel_values)`). `--model` is a preset (DINOv2's `small`, `base`, `large`, `giant`;
//! DINOv3's `dinov3-small`, `dinov3-small-plus`, `dinov3-base`, `dinov3-large`: random weights of
//! that architecture, built in memory from a seeded generator, no download), a local model folder
//! or a Hub id. Runs `--warmup` passes, then `--iters` timed ones, prints each, the
//! statistics, the achieved GFLOP/s and the peak RSS (`VmHWM`); the last line is JSON
//! `{"median_ms": …, "min_ms": …, "peak_rss_mb": …, …}` for scripts.
//!
//! `--task segment|discover|train-seg` times a heavy pipeline instead, once, split by part, with the
//! peak RSS, as a JSON line: dinov2's "ms" segmentation of one image with a random 150-class BNHead
//! (default 480x640), LOST and TokenCut at full resolution against their backbone pass (default
//! 1411x1411), `train-seg`'s cached feature extraction against the backbone alone (default 480x640,
//! four images). `--image` gives a picture (resized to `--size`); by default a synthetic one.

mod discover;
mod head;
mod heavy;
mod image;
mod memory;
mod segment;
mod timer;
mod train_seg;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use candle::Device;
use dinoreg::model::flops::{forward_flops, FeedForward};
use dinoreg::model::random::random_pixels;
use dinoreg::profile;
use dinoreg::{DinoModel, LoadOptions, ModelConfig, ModelSource, Vit};

/// What `dinoreg bench` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Task {
    /// The encoder's forward pass, `--iters` times.
    #[default]
    Forward,
    /// dinov2's "ms" segmentation of one image (backbone, head, windows, accumulation).
    Segment,
    /// LOST and TokenCut at full resolution, against their backbone pass.
    Discover,
    /// `train-seg`'s feature extraction into its cache, against the backbone alone.
    TrainSeg,
}

impl Task {
    /// The default `--size` (`HxW`).
    fn default_size(self) -> &'static str {
        match self {
            Task::Forward => "224x224",
            Task::Segment | Task::TrainSeg => "480x640",
            Task::Discover => "1411x1411",
        }
    }
}

/// Arguments of `dinoreg bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to time.
    #[arg(long, value_enum, default_value_t = Task::Forward)]
    task: Task,
    /// `small`, `base`, `large`, `giant` (DINOv2) or `dinov3-small`, `dinov3-small-plus`,
    /// `dinov3-base`, `dinov3-large` (random weights of that architecture, no download), a local
    /// model folder or a Hub id.
    #[arg(long, short = 'm')]
    model: String,
    /// Input size `HxW` in pixels (or one number for a square); for the heavy tasks, the image's
    /// size. Default: 224x224 (forward), 480x640 (segment, train-seg), 1411x1411 (discover).
    #[arg(long)]
    size: Option<String>,
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
    /// Heavy tasks: the picture to run on, resized to `--size` (default: a synthetic one).
    #[arg(long)]
    image: Option<PathBuf>,
    /// `segment`: classes of the random head.
    #[arg(long, default_value_t = 150)]
    classes: usize,
    /// `segment`: the scale ratios, comma-separated (default: the ms preset's 1,1.32,1.73,2.28,3).
    #[arg(long, value_delimiter = ',')]
    ratios: Option<Vec<f64>>,
    /// `segment`: no flipped passes.
    #[arg(long)]
    no_flip: bool,
    /// `segment`: sliding windows per backbone call.
    #[arg(long)]
    windows_per_call: Option<usize>,
    /// `train-seg`: how many images.
    #[arg(long, default_value_t = 4)]
    images: usize,
}

impl Args {
    /// The input size `(H, W)`.
    fn size(&self) -> anyhow::Result<(usize, usize)> {
        parse_size(self.size.as_deref().unwrap_or(self.task.default_size()))
    }

    /// The heavy tasks' options.
    fn heavy(&self) -> anyhow::Result<heavy::HeavyOptions> {
        if self.classes == 0 || self.images == 0 {
            bail!("--classes and --images must be at least 1");
        }
        Ok(heavy::HeavyOptions {
            image: self.image.clone(),
            size: self.size()?,
            classes: self.classes,
            ratios: self.ratios.clone(),
            flip: !self.no_flip,
            windows_per_call: self.windows_per_call,
            images: self.images,
            seed: self.seed,
        })
    }
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
    pool.install(|| match args.task {
        Task::Forward => bench(&args, threads),
        task => heavy_task(&args, task, threads),
    })
}

/// Loads the model and runs a heavy-pipeline benchmark.
fn heavy_task(args: &Args, task: Task, threads: usize) -> anyhow::Result<()> {
    let opts = args.heavy()?;
    let start = Instant::now();
    let (model, _) = load_model(args)?;
    println!(
        "model {} loaded in {:.2} s; {} thread(s), {} kernels, {} gemm",
        args.model,
        start.elapsed().as_secs_f64(),
        threads,
        profile::simd_path(),
        profile::gemm_path()
    );
    match task {
        Task::Segment => segment::run(model.as_ref(), &opts),
        Task::Discover => discover::run(model.as_ref(), &opts),
        Task::TrainSeg => train_seg::run(model, &opts),
        Task::Forward => unreachable!("the forward pass is `bench`"),
    }
}

fn bench(args: &Args, threads: usize) -> anyhow::Result<()> {
    let (height, width) = args.size()?;
    let start = Instant::now();
    let (model, config) = load_model(args)?;
    let info = model.info().clone();
    println!(
        "model {} (D {}, {} layers, {} heads, {} registers) loaded in {:.2} s; {} thread(s), {:?}, {:?}, {}",
        args.model,
        info.hidden_size,
        info.num_hidden_layers,
        info.num_attention_heads,
        info.num_register_tokens,
        start.elapsed().as_secs_f64(),
        threads,
        model.device(),
        model.dtype(),
        if args.generic {
            "generic candle ops".to_string()
        } else {
            format!(
                "{} kernels, {} gemm",
                profile::simd_path(),
                profile::gemm_path()
            )
        }
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
    let rss = memory::peak_rss_mb();
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
        memory::json_mb(rss),
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
