//! The `usergraph` binary: parse arguments, dispatch to `cli`.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    usergraph::cli::run(usergraph::cli::Cli::parse())
}
