//! `dinoreg depth` (being written).

/// Arguments of `dinoreg depth`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dinoreg depth` is not available in this build yet")
}
