//! `dinoreg classify` (being written).

/// Arguments of `dinoreg classify`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`dinoreg classify` is not available in this build yet")
}
