//! The `dinoreg` command line: a thin layer that parses arguments, calls the library and writes files.
//! The contract (flags, outputs, exit status) is in the README and `DESIGN.md`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::progress::install_ctrlc();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(dinoreg::Error::Interrupted { done, total }) =
                err.chain().find_map(|e| e.downcast_ref::<dinoreg::Error>())
            {
                eprintln!("{}", cli::progress::interrupted_message(*done, *total));
                return ExitCode::from(cli::progress::INTERRUPTED_STATUS);
            }
            eprintln!("error: {}", cli::error_line(&err));
            ExitCode::FAILURE
        }
    }
}
