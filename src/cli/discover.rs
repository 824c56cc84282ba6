//! `dinoreg discover` (being written).

/// Arguments of `dinoreg discover`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dinoreg discover` is not available in this build yet")
}
