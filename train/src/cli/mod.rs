//! The `mtkit-train` command line (shown to users as `mtkit train|verify|model`).

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

use mtkit::cli_support::args::set_verbose;

mod doctor;
mod train;
mod verify;

/// mtkit's LibTorch commands: training runs, verification grids, model presets.
#[derive(Parser, Debug)]
#[command(
    name = "mtkit",
    bin_name = "mtkit",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Threads for LibTorch on CPU (and for tokenizing in `verify`). Default: one per core.
    #[arg(long, global = true, value_name = "N", env = "MTKIT_THREADS")]
    threads: Option<usize>,
    /// Say more on stderr.
    #[arg(long, short = 'v', global = true)]
    verbose: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    Train(train::TrainArgs),
    Verify(verify::VerifyArgs),
    /// Model presets.
    #[command(subcommand)]
    Model(train::ModelCommand),
    /// The LibTorch part of `mtkit doctor`: which libtorch is loaded, and a tensor operation.
    Doctor,
}

/// Dispatches a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    set_verbose(cli.verbose);
    if let Some(n) = cli.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| anyhow::anyhow!("cannot start {n} worker threads: {e}"))?;
        tch::set_num_threads(n as i32);
        tch::set_num_interop_threads(n as i32);
    }
    match cli.command {
        Command::Train(a) => train::run(a),
        Command::Model(c) => train::model(c),
        Command::Verify(a) => verify::run(a),
        Command::Doctor => doctor::run(),
    }
}
