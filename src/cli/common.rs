//! Shared pieces of the subcommands.
