//! `dinoreg bench`: times the encoder's forward pass (`last_hidden_state` and `pooler_output`, as
//! HF's `model(pixel_values)`). `--model` is a preset (`small`, `base`, `large`, `giant`: random
//! weights of that architecture, built in memory from a seeded generator, no download), a local
//! model folder or a Hub id. Runs `--warmup` passes, then `--iters` timed ones, prints each, the
//! statistics, the achieved GFLOP/s and the peak RSS (`VmHWM`); the last line is JSON
//! `{"median_ms": …, "min_ms": …, "peak_rss_mb": …, …}` for scripts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use candle::{Device, Tensor};
use dinoreg::heads::TensorStore;
use dinoreg::model::weights::find_backbone;
use dinoreg::profile;
use dinoreg::{Dinov2Config, Dinov2Model, LoadOptions};

use super::common::{device, ModelArgs, ModelSource};

/// Arguments of `dinoreg bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `small`, `base`, `large` or `giant` (random weights of that architecture, no download), a
    /// local model folder or a Hub id.
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
    let model = load_model(args)?;
    let cfg = model.config().clone();
    println!(
        "model {} (D {}, {} layers, {} heads, {} registers) loaded in {:.2} s; {} thread(s), {:?}, {:?}{}",
        args.model,
        cfg.hidden_size,
        cfg.num_hidden_layers,
        cfg.num_attention_heads,
        cfg.num_register_tokens,
        start.elapsed().as_secs_f64(),
        threads,
        model.device(),
        model.dtype(),
        if args.generic { ", generic candle ops" } else { "" }
    );
    let mut rng = SplitMix(args.seed ^ 0x5eed);
    let n = args.batch * cfg.num_channels * height * width;
    let pixels = Tensor::from_vec(
        rng.uniforms(n, 0.0, 1.0),
        (args.batch, cfg.num_channels, height, width),
        &Device::Cpu,
    )?
    .to_device(model.device())?;
    let flops = forward_flops(&cfg, args.batch, height, width);
    println!(
        "input {}x{}x{}x{}, {:.2} GFLOP per pass",
        args.batch,
        cfg.num_channels,
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

fn load_model(args: &Args) -> anyhow::Result<Dinov2Model> {
    let load = LoadOptions::default().with_fused_kernels(!args.generic);
    if let Ok(cfg) = Dinov2Config::preset_by_name(&args.model) {
        let load = load.with_device(device(args.device.as_deref())?);
        let store = TensorStore::from_map(
            format!("<random {}>", args.model),
            random_weights(&cfg, args.seed)?,
        );
        let weights = find_backbone(store)?;
        return Ok(Dinov2Model::from_weights(cfg, &weights, &load)?);
    }
    let source = ModelSource::resolve(&ModelArgs {
        model: args.model.clone(),
        device: args.device.clone(),
    })?;
    let weights = dinoreg::model::weights::open_backbone(&source.files.weights)?;
    let load = load.with_device(source.load.device.clone());
    Ok(Dinov2Model::from_weights(
        source.config.clone(),
        &weights,
        &load,
    )?)
}

/// Random HF-layout backbone weights for `cfg`, uniform with these means and standard deviations
/// (uniform rather than normal: the giant model has 1.1 G parameters to draw): linear and conv
/// weights, biases, tokens and positions 0 ± 0.02, norm weights and layer scales 1 ± 0.1.
fn random_weights(cfg: &Dinov2Config, seed: u64) -> anyhow::Result<HashMap<String, Tensor>> {
    let mut rng = SplitMix(seed);
    let mut map = HashMap::new();
    let mut put = |name: String, shape: &[usize], mean: f32, std: f32| -> anyhow::Result<()> {
        let n = shape.iter().product();
        let v = rng.uniforms(n, mean, std);
        map.insert(name, Tensor::from_vec(v, shape, &Device::Cpu)?);
        Ok(())
    };
    let (d, p, c) = (cfg.hidden_size, cfg.patch_size, cfg.num_channels);
    let g = cfg.position_grid();
    put("embeddings.cls_token".into(), &[1, 1, d], 0.0, 0.02)?;
    put("embeddings.mask_token".into(), &[1, d], 0.0, 0.02)?;
    if cfg.num_register_tokens > 0 {
        put(
            "embeddings.register_tokens".into(),
            &[1, cfg.num_register_tokens, d],
            0.0,
            0.02,
        )?;
    }
    put(
        "embeddings.position_embeddings".into(),
        &[1, 1 + g * g, d],
        0.0,
        0.02,
    )?;
    put(
        "embeddings.patch_embeddings.projection.weight".into(),
        &[d, c, p, p],
        0.0,
        0.02,
    )?;
    put(
        "embeddings.patch_embeddings.projection.bias".into(),
        &[d],
        0.0,
        0.02,
    )?;
    for i in 0..cfg.num_hidden_layers {
        let l = format!("encoder.layer.{i}");
        for norm in ["norm1", "norm2"] {
            put(format!("{l}.{norm}.weight"), &[d], 1.0, 0.1)?;
            put(format!("{l}.{norm}.bias"), &[d], 0.0, 0.02)?;
        }
        for qkv in ["query", "key", "value"] {
            linear(&mut put, format!("{l}.attention.attention.{qkv}"), d, d)?;
        }
        linear(&mut put, format!("{l}.attention.output.dense"), d, d)?;
        put(format!("{l}.layer_scale1.lambda1"), &[d], 1.0, 0.1)?;
        put(format!("{l}.layer_scale2.lambda1"), &[d], 1.0, 0.1)?;
        if cfg.use_swiglu_ffn {
            let h = cfg.swiglu_hidden_size();
            linear(&mut put, format!("{l}.mlp.weights_in"), d, 2 * h)?;
            linear(&mut put, format!("{l}.mlp.weights_out"), h, d)?;
        } else {
            let h = cfg.mlp_hidden_size();
            linear(&mut put, format!("{l}.mlp.fc1"), d, h)?;
            linear(&mut put, format!("{l}.mlp.fc2"), h, d)?;
        }
    }
    put("layernorm.weight".into(), &[d], 1.0, 0.1)?;
    put("layernorm.bias".into(), &[d], 0.0, 0.02)?;
    Ok(map)
}

/// A linear layer `name.{weight,bias}` `(output, input)`, `(output,)`.
fn linear(
    put: &mut impl FnMut(String, &[usize], f32, f32) -> anyhow::Result<()>,
    name: String,
    input: usize,
    output: usize,
) -> anyhow::Result<()> {
    put(format!("{name}.weight"), &[output, input], 0.0, 0.02)?;
    put(format!("{name}.bias"), &[output], 0.0, 0.02)
}

/// Multiply-adds ×2 of one forward pass: patch embedding, q/k/v, scores, values, output
/// projection and the feed-forward network of every block.
fn forward_flops(cfg: &Dinov2Config, batch: usize, height: usize, width: usize) -> f64 {
    let p = cfg.patch_size;
    let patches = (height / p) * (width / p);
    let t = (1 + cfg.num_register_tokens + patches) as f64;
    let (b, d) = (batch as f64, cfg.hidden_size as f64);
    let ffn = if cfg.use_swiglu_ffn {
        3.0 * cfg.swiglu_hidden_size() as f64
    } else {
        2.0 * cfg.mlp_hidden_size() as f64
    };
    let per_block = 2.0 * b * t * (4.0 * d * d + d * ffn) + 4.0 * b * t * t * d;
    let embed = 2.0 * b * patches as f64 * (cfg.num_channels * p * p) as f64 * d;
    embed + cfg.num_hidden_layers as f64 * per_block
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

/// SplitMix64: a small seeded generator, enough for benchmark weights.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `n` samples uniform on `mean ± std·√3` (standard deviation `std`).
    fn uniforms(&mut self, n: usize, mean: f32, std: f32) -> Vec<f32> {
        let half = std * 3f32.sqrt();
        (0..n)
            .map(|_| {
                let u = (self.next() >> 40) as f32 / (1u64 << 24) as f32;
                mean + half * (2.0 * u - 1.0)
            })
            .collect()
    }
}
