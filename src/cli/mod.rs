//! Subcommands of the `dinoreg` binary, one file each; `common` holds what they share (model and
//! input loading, output writing).

use clap::{Parser, Subcommand};

pub mod common;

mod attention;
mod bench;
mod classify;
mod corloc;
mod depth;
mod discover;
mod embed;
mod features;
mod output;
mod pca;
mod preprocess;
pub mod progress;
mod search;
mod segment;
mod shard;
mod train_seg;

/// DINOv2 with registers as a dense-prediction backbone: features, classification, segmentation,
/// depth, object discovery and retrieval, with the numbers of HF transformers.
#[derive(Debug, Parser)]
#[command(name = "dinoreg", version, about)]
pub struct Cli {
    /// No progress bars and no status lines ("wrote …") on stderr; results and errors still print.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Backbone feature maps (HF `Dinov2WithRegistersBackbone`) to a safetensors file.
    Features(features::Args),
    /// The pixel tensor the model would see (HF BitImageProcessor) to a .npy file.
    Preprocess(preprocess::Args),
    /// Top-k ImageNet (or `id2label`) classes of an image-classification checkpoint.
    Classify(classify::Args),
    /// Depth maps from a Depth-Anything-V2 checkpoint or a dinov2 depth head.
    Depth(depth::Args),
    /// Semantic segmentation with a dinov2 BNHead (linear or multi-scale).
    Segment(segment::Args),
    /// Train a linear segmentation probe on your own images and label maps.
    TrainSeg(train_seg::Args),
    /// Unsupervised object discovery (LOST or TokenCut).
    Discover(discover::Args),
    /// CorLoc of object discovery on a VOC-style folder or a COCO JSON.
    Corloc(corloc::Args),
    /// L2-normalised embeddings of a folder of images, for retrieval.
    Embed(embed::Args),
    /// Nearest neighbours in an embedding index.
    Search(search::Args),
    /// The DINOv2 PCA picture of patch features.
    Pca(pca::Args),
    /// CLS attention maps and patch-norm maps (the registers paper's picture).
    Attention(attention::Args),
    /// Time the forward pass.
    Bench(bench::Args),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    progress::set_quiet(cli.quiet);
    match cli.command {
        Command::Features(a) => features::run(a),
        Command::Preprocess(a) => preprocess::run(a),
        Command::Classify(a) => classify::run(a),
        Command::Depth(a) => depth::run(a),
        Command::Segment(a) => segment::run(a),
        Command::TrainSeg(a) => train_seg::run(a),
        Command::Discover(a) => discover::run(a),
        Command::Corloc(a) => corloc::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Search(a) => search::run(a),
        Command::Pca(a) => pca::run(a),
        Command::Attention(a) => attention::run(a),
        Command::Bench(a) => bench::run(a),
    }
}

/// The one-line message of `err`: its causes outermost first, joined by `: `, each cause left out
/// when the message before it already ends with it (a `dinoreg::Error::Io` shows its OS error, which
/// is also its source).
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain().map(|e| e.to_string()) {
        if line.ends_with(&cause) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&cause);
    }
    line
}
