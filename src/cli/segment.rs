//! `dinoreg segment` (being written).

/// Arguments of `dinoreg segment`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dinoreg segment` is not available in this build yet")
}
