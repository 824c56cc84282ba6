//! `dinoreg preprocess` (being written).

/// Arguments of `dinoreg preprocess`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dinoreg preprocess` is not available in this build yet")
}
