//! `dinoreg features` (being written).

/// Arguments of `dinoreg features`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dinoreg features` is not available in this build yet")
}
