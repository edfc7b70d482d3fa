//! Command-line definitions and dispatch. Each subcommand lives in its own file.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

use mtkit::catalog::Catalog;
use mtkit::corpus::{SampleSpec, Shard};

mod data;
mod doctor;
mod output;
mod profile;
mod progress;
mod proximity;
mod report;
mod suggest_mix;
mod tokenize;
#[cfg(feature = "torch")]
mod train;
#[cfg(feature = "torch")]
mod verify;

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
    /// Worker threads for tokenizing and counting (one more thread reads the corpus) and for
    /// LibTorch on CPU. Default: one per core.
    #[arg(long, global = true, value_name = "N", env = "MTKIT_THREADS")]
    threads: Option<usize>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Known corpora: list them, show documents, pull samples from the Hub.
    #[command(subcommand)]
    Data(data::DataCommand),
    Profile(profile::ProfileArgs),
    Proximity(proximity::ProximityArgs),
    SuggestMix(suggest_mix::SuggestArgs),
    /// Reports: regression of gain on proximity, paper-style tables.
    #[command(subcommand)]
    Report(report::ReportCommand),
    /// Tokenize corpora into token shards for training.
    Tokenize(tokenize::TokenizeArgs),
    #[cfg(feature = "torch")]
    Train(train::TrainArgs),
    #[cfg(feature = "torch")]
    Verify(verify::VerifyArgs),
    /// Model presets.
    #[cfg(feature = "torch")]
    #[command(subcommand)]
    Model(train::ModelCommand),
    /// Check the installation: tokenizer, cache, libtorch.
    Doctor,
}

impl Cli {
    /// Whether the command calls into libtorch.
    #[allow(dead_code)]
    pub fn uses_torch(&self) -> bool {
        #[cfg(feature = "torch")]
        if matches!(
            self.command,
            Command::Train(_) | Command::Model(_) | Command::Verify(_)
        ) {
            return true;
        }
        matches!(self.command, Command::Doctor)
    }
}

/// Dispatches a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| anyhow::anyhow!("cannot start {n} worker threads: {e}"))?;
        #[cfg(feature = "torch")]
        if cli.uses_torch() {
            tch::set_num_threads(n as i32);
            tch::set_num_interop_threads(n as i32);
        }
    }
    match cli.command {
        Command::Data(c) => data::run(c),
        Command::Profile(a) => profile::run(a),
        Command::Proximity(a) => proximity::run(a),
        Command::SuggestMix(a) => suggest_mix::run(a),
        Command::Report(c) => report::run(c),
        Command::Tokenize(a) => tokenize::run(a),
        #[cfg(feature = "torch")]
        Command::Train(a) => train::run(a),
        #[cfg(feature = "torch")]
        Command::Model(c) => train::model(c),
        #[cfg(feature = "torch")]
        Command::Verify(a) => verify::run(a),
        Command::Doctor => doctor::run(),
    }
}

/// `--max-docs N|all`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaxDocs(pub Option<u64>);

impl std::str::FromStr for MaxDocs {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<MaxDocs> {
        if s == "all" {
            return Ok(MaxDocs(None));
        }
        match s.replace('_', "").parse::<u64>() {
            Ok(0) | Err(_) => bail!("expected a positive number of documents or `all`, got {s:?}"),
            Ok(n) => Ok(MaxDocs(Some(n))),
        }
    }
}

/// Options shared by every command that reads corpora.
#[derive(Args, Debug, Clone)]
pub struct CorpusArgs {
    /// A catalog file that adds or overrides dataset cards ([datasets.NAME] tables); repeatable.
    /// Also read from MTKIT_CATALOG (a ':'-separated list), before these.
    #[arg(long = "catalog", value_name = "FILE")]
    pub catalogs: Vec<PathBuf>,
    /// tokenizer.json to use [default: the GPT-NeoX-20B (Pythia) tokenizer installed by
    /// `make setup` in the cache]
    #[arg(long, value_name = "PATH", env = "MTKIT_TOKENIZER")]
    pub tokenizer: Option<PathBuf>,
    /// Documents sampled per corpus (uniformly, by --seed), or `all` for every document in
    /// corpus order. The paper's measurement uses 1000.
    #[arg(long, value_name = "N|all", default_value = "1000")]
    pub max_docs: MaxDocs,
    /// Cut each document to its first C characters before tokenizing (0: no cut).
    #[arg(long, value_name = "C", default_value_t = 10_000)]
    pub max_chars: usize,
    /// Keep each document's first K tokens (0: no cut).
    #[arg(long, value_name = "K", default_value_t = 512)]
    pub max_tokens_per_doc: usize,
    /// Seed of the document sample (and of bootstrap resampling).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Only shard K of N (1-based): the records whose index is K-1 modulo N. The N shards are
    /// disjoint and together are the whole corpus; merge their profiles with `profile merge`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Fail on the first bad record (malformed JSON, missing field, invalid UTF-8, truncated
    /// stream) instead of skipping and counting it.
    #[arg(long)]
    pub strict: bool,
    /// Recompute profiles even when a cached one matches.
    #[arg(long)]
    pub no_cache: bool,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

impl CorpusArgs {
    /// The catalog: built-in cards, MTKIT_CATALOG, then --catalog files.
    pub fn catalog(&self) -> Result<Catalog> {
        Catalog::load(&self.catalogs)
    }

    /// The sample spec these options describe.
    pub fn sample(&self) -> SampleSpec {
        SampleSpec {
            max_docs: self.max_docs.0,
            seed: self.seed,
            max_chars: (self.max_chars > 0).then_some(self.max_chars),
            shard: self.shard,
            strict: self.strict,
        }
    }

    /// Tokens kept per document.
    pub fn max_tokens(&self) -> Option<usize> {
        (self.max_tokens_per_doc > 0).then_some(self.max_tokens_per_doc)
    }
}
