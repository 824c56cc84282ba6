//! `dinoreg corloc` (being written).

/// Arguments of `dinoreg corloc`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dinoreg corloc` is not available in this build yet")
}
