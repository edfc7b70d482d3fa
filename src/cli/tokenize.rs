//! `mtkit tokenize NAME... -o DIR`: token files for training.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use mtkit::cli_support::args::SampleArgs;
use mtkit::cli_support::output::table;
use mtkit::cli_support::progress::Bar;

/// Tokenize corpora into token files for training (DIR/NAME/{train,val}.tokens and .docs,
/// meta.json).
///
/// Token files: a 32-byte header (magic MTKTOKS\0, version u32 = 1, bytes per token u32 = 2
/// when the vocabulary fits in 16 bits else 4, vocabulary size u32, EOS id u32, token count
/// u64), then little-endian ids, each document followed by EOS. Doc files: per document start
/// u64, length u32, prompt length u32 (the card's `prompt` part, masked in SFT). The
/// validation split is a seeded uniform choice of --val-docs documents.
#[derive(Args, Debug)]
// Training data is every document by default; the seed also splits off validation.
#[command(
    mut_arg("max_docs", |a| a
        .default_value("all")
        .help("Documents to take (uniform sample by --seed), or `all`")),
    mut_arg("seed", |a| a.help("Seed of the sample and of the train/validation split"))
)]
pub struct TokenizeArgs {
    /// Corpora to tokenize.
    #[arg(required = true)]
    names: Vec<String>,
    /// Output folder.
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// Documents held out for validation, per corpus.
    #[arg(long, default_value_t = 100)]
    val_docs: u64,
    #[command(flatten)]
    sample: SampleArgs,
    #[command(flatten)]
    catalog: mtkit::cli_support::args::CatalogArgs,
    #[command(flatten)]
    tokenizer: mtkit::cli_support::args::TokenizerArgs,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(a: TokenizeArgs) -> Result<()> {
    let cat = a.catalog.load()?;
    let cards = cat.get_all(&a.names)?;
    let tok = a.tokenizer.load()?;
    let spec = a.sample.spec();
    let bar = Bar::new(a.quiet);
    let mut rows = Vec::new();
    for card in cards {
        let m = mtkit::token_files::write(card, &tok, &spec, a.val_docs, &a.output, &bar)?;
        rows.push(vec![
            m.corpus.clone(),
            m.train_docs.to_string(),
            m.train_tokens.to_string(),
            m.val_docs.to_string(),
            m.val_tokens.to_string(),
            if m.has_prompt {
                "yes".into()
            } else {
                "no".into()
            },
            m.skipped.values().sum::<u64>().to_string(),
        ]);
    }
    print!(
        "{}",
        table(
            &[
                "corpus",
                "train docs",
                "train tokens",
                "val docs",
                "val tokens",
                "prompt mask",
                "skipped"
            ],
            &rows
        )
    );
    println!("written to {}", a.output.display());
    Ok(())
}
