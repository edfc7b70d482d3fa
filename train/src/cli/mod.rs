//! The `mtkit-train` command line (shown to users as `mtkit train|verify|model`).

use anyhow::Result;
use clap::{Parser, Subcommand};

use mtkit::cli_support::args::GlobalArgs;

mod doctor;
mod model;
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
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    Train(train::TrainArgs),
    Verify(verify::VerifyArgs),
    /// Model presets, Hugging Face export, greedy generation.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// The LibTorch part of `mtkit doctor`: which libtorch is loaded, and a tensor operation.
    Doctor,
}

/// Dispatches a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    cli.global.apply()?;
    if let Some(n) = cli.global.threads {
        tch::set_num_threads(n as i32);
        tch::set_num_interop_threads(n as i32);
    }
    match cli.command {
        Command::Train(a) => train::run(a),
        Command::Model(c) => model::run(c),
        Command::Verify(a) => verify::run(a),
        Command::Doctor => doctor::run(),
    }
}
