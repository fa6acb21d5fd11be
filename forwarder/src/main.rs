//! `weir`: parse the command line, set up logging, run, map errors to an exit code.

use std::process::ExitCode;

use clap::Parser;

// Event processing allocates many short-lived strings; mimalloc does that measurably faster
// than glibc malloc (see the parser benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
