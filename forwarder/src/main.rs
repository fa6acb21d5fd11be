//! `weir`: parse the command line, set up logging, run, map errors to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = weir::cli::Cli::parse();
    weir::telemetry::init_logging();
    match weir::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("weir: error: {error:#}");
            ExitCode::from(2)
        }
    }
}
