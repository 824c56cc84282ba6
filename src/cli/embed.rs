//! `dinoreg embed` (being written).

/// Arguments of `dinoreg embed`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dinoreg embed` is not available in this build yet")
}
