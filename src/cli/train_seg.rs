//! `dinoreg train-seg` (being written).

/// Arguments of `dinoreg train-seg`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dinoreg train-seg` is not available in this build yet")
}
