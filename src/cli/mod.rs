//! Subcommands of the `dinoreg` binary, one file each; `common` holds what they share (model and
//! input loading, output writing).

use clap::{Parser, Subcommand};

pub mod common;

mod attention;
mod bench;
mod bench_dinov3;
mod classify;
mod corloc;
mod depth;
mod discover;
mod embed;
mod features;
mod pca;
mod preprocess;
mod search;
mod segment;
mod train_seg;

/// DINOv2 with registers as a dense-prediction backbone: features, classification, segmentation,
/// depth, object discovery and retrieval, with the numbers of HF transformers.
#[derive(Debug, Parser)]
#[command(name = "dinoreg", version, about)]
pub struct Cli {
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
