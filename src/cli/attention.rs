//! `dinoreg attention` (being written).

/// Arguments of `dinoreg attention`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dinoreg attention` is not available in this build yet")
}
