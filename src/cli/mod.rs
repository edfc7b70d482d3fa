//! The `mtkit` command line: definitions and dispatch. Each subcommand lives in its own file.
//! The commands that train (`train`, `verify`, `model`) run in the `mtkit-train` binary, which
//! links LibTorch; this one does not, so data commands start at once.

use std::ffi::OsString;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub use mtkit::cli_support::args::CorpusArgs;
use mtkit::cli_support::args::GlobalArgs;

mod check_encoder;
mod data;
mod doctor;
mod exec_trainer;
mod overlap;
mod profile;
mod proximity;
mod report;
mod score;
mod select;
mod shard_array;
mod suggest_mix;
mod tokenize;

/// mtkit: decide what data to mix in between pretraining and fine-tuning.
///
/// Token distributions of corpora, their similarity, and the proximity advantage of each
/// midtraining candidate for a fine-tuning target (Liu, Neubig, Xiong 2025). Corpora are named
/// by dataset cards: built-in ones (`mtkit data list`) and your own catalogs (--catalog).
#[derive(Parser, Debug)]
#[command(
    name = "mtkit",
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
    /// Known corpora: list them, show documents, pull samples from the Hub.
    #[command(subcommand)]
    Data(data::DataCommand),
    Profile(profile::ProfileArgs),
    CheckEncoder(check_encoder::CheckEncoderArgs),
    Proximity(proximity::ProximityArgs),
    SuggestMix(suggest_mix::SuggestArgs),
    /// Reports: regression of gain on proximity, paper-style tables.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Tokenize corpora into token files for training.
    Tokenize(tokenize::TokenizeArgs),
    Score(score::ScoreArgs),
    Select(select::SelectArgs),
    Overlap(overlap::OverlapArgs),
    /// Train a model through the phases of a run config (runs `mtkit-train train`; see
    /// `mtkit train --help`).
    #[command(disable_help_flag = true)]
    Train(exec_trainer::Passthrough),
    /// Verify mixture proposals by training a plan's grid of runs (runs `mtkit-train verify`;
    /// see `mtkit verify --help`).
    #[command(disable_help_flag = true)]
    Verify(exec_trainer::Passthrough),
    /// Model presets (runs `mtkit-train model`; see `mtkit model --help`).
    #[command(disable_help_flag = true)]
    Model(exec_trainer::Passthrough),
    /// Check the installation: tokenizer, cache, libtorch.
    Doctor,
}

/// Dispatches a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    cli.global.apply()?;
    let handed = |name: &str, args: Vec<OsString>| {
        let mut v: Vec<OsString> = vec![name.into()];
        v.extend(args);
        v.extend(cli.global.to_args().into_iter().map(OsString::from));
        v
    };
    match cli.command {
        Command::Data(c) => data::run(c),
        Command::Profile(a) => profile::run(a, &cli.global),
        Command::CheckEncoder(a) => check_encoder::run(a),
        Command::Proximity(a) => proximity::run(a),
        Command::SuggestMix(a) => suggest_mix::run(a),
        Command::Score(a) => score::run(a),
        Command::Select(a) => select::run(a),
        Command::Overlap(a) => overlap::run(a, &cli.global),
        Command::Report(c) => report::run(c),
        Command::Tokenize(a) => tokenize::run(a),
        Command::Train(a) => exec_trainer::exec(handed("train", a.args)),
        Command::Verify(a) => exec_trainer::exec(handed("verify", a.args)),
        Command::Model(a) => exec_trainer::exec(handed("model", a.args)),
        Command::Doctor => doctor::run(handed("doctor", Vec::new())),
    }
}
