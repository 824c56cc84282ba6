//! `dinoreg bench` (being written).

/// Arguments of `dinoreg bench`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dinoreg bench` is not available in this build yet")
}
