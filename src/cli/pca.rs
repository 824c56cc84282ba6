//! `dinoreg pca` (being written).

/// Arguments of `dinoreg pca`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dinoreg pca` is not available in this build yet")
}
