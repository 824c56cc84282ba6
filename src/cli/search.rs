//! `dinoreg search` (being written).

/// Arguments of `dinoreg search`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dinoreg search` is not available in this build yet")
}
