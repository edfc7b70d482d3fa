//! `mtkit tokenize NAME... -o DIR`: token files for training.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use mtkit::cli_support::args::SampleArgs;
use mtkit::cli_support::bar::Bar;
use mtkit::cli_support::output::table;
use mtkit::export::tokens::trainer_formats::{Format, FormatOptions};

/// Tokenize corpora into token files for training: mtkit's (the default), or the files
/// Megatron-LM, OLMo-core or LitGPT (litdata) read (--format).
///
/// --format mtkit: DIR/NAME/{train,val}.tokens and .docs, meta.json. Token files: a 32-byte
/// header (magic MTKTOKS\0, version u32 = 1, bytes per token u32 = 2
/// when the vocabulary fits in 16 bits else 4, vocabulary size u32, EOS id u32, token count
/// u64), then little-endian ids, each document followed by EOS. Doc files: per document start
/// u64, length u32, prompt length u32 (the card's `prompt` part, masked in SFT). The
/// validation split is a seeded uniform choice of --val-docs documents.
///
/// --format megatron: DIR/NAME/NAME_text_document.{bin,idx}, megatron-core's indexed dataset
/// (one document per sequence, EOS appended as preprocess_data.py --append-eod does; uint16 ids
/// below 65,500 ids of vocabulary, else int32); --data-path DIR/NAME/NAME_text_document.
/// --format olmo-core: DIR/NAME/part-NNNNN.npy (flat ids, EOS after each document, uint16 or
/// uint32 as OLMo-core's NumpyDatasetConfig picks) with part-NNNNN.csv.gz (start,end per
/// document). --format litdata: DIR/NAME/chunk-0-K.bin and index.json, as litdata's optimize
/// with TokensLoader writes them (int32 ids), for LitGPT and litdata.StreamingDataset.
/// Trainer formats take no validation split and hold mtkit-tokenize.json (tokenizer SHA-256,
/// settings, tokens per file). Every corpus folder is written whole and put in place at the
/// end: byte-identical from run to run, never half-written.
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
    /// Documents held out for validation, per corpus [default: 100 for --format mtkit, 0
    /// otherwise: the trainer formats take no validation split].
    #[arg(long, value_name = "N")]
    val_docs: Option<u64>,
    /// mtkit, megatron, olmo-core or litdata.
    #[arg(long, default_value = "mtkit", value_name = "FORMAT")]
    format: String,
    /// olmo-core: the most bytes of one .npy file (documents are not split; K, M, G suffixes).
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = file_size)]
    olmo_file_size: u64,
    /// litdata: the most tokens of one chunk (optimize's chunk_size; LitGPT's scripts use
    /// 2049 × 8192).
    #[arg(long, value_name = "TOKENS", default_value_t = 2049 * 8192,
          value_parser = clap::value_parser!(u64).range(1..))]
    litdata_chunk_tokens: u64,
    /// Leave out every document that shares an n-gram of --overlap-n tokens with EVAL (a
    /// card name or a path; every item of it, whole), as `mtkit overlap` finds them. With a
    /// whole corpus (--max-docs all), --val-docs are picked before the exclusion, so the
    /// validation split may hold fewer.
    #[arg(long, value_name = "EVAL")]
    exclude_overlap: Option<String>,
    /// The n-gram length of --exclude-overlap, in tokens.
    #[arg(long, value_name = "N", default_value_t = mtkit::analysis::overlap::DEFAULT_N, requires = "exclude_overlap")]
    overlap_n: usize,
    #[command(flatten)]
    sample: SampleArgs,
    #[command(flatten)]
    catalog: mtkit::cli_support::args::CatalogArgs,
    #[command(flatten)]
    tokenizer: mtkit::cli_support::args::TokenizerArgs,
    /// No progress bars and no summary table (what a script wants; the token files are the
    /// result). Warnings, skipped records and errors still go to stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// `--olmo-file-size`: a size in the one size grammar ([`mtkit::util::memory::parse_size`]), at
/// least one byte.
fn file_size(s: &str) -> Result<u64> {
    match mtkit::util::memory::parse_size(s)? {
        0 => bail!("must be at least one byte"),
        n => Ok(n),
    }
}

pub fn run(mut a: TokenizeArgs) -> Result<()> {
    a.names = mtkit::cli_support::args::named_once(&a.names);
    // Ctrl-C and SIGTERM stop the work (readers check between records) instead of the
    // process, so that temporary files and folders are removed on the way out.
    let _interrupt = mtkit::util::progress::InterruptGuard::install();
    let format: Format = a.format.parse()?;
    let options = FormatOptions {
        olmo_file_bytes: a.olmo_file_size,
        litdata_chunk_tokens: a.litdata_chunk_tokens,
    };
    let mut names = a.names.clone();
    names.extend(a.exclude_overlap.clone());
    let cat = a.catalog.load_for(&names)?;
    let cards = cat.get_all(&a.names)?;
    let tok = a.tokenizer.load()?;
    let spec = a.sample.spec();
    let bar = Bar::new(a.quiet);
    let exclude = match &a.exclude_overlap {
        Some(e) => Some((cat.get(e)?, a.overlap_n)),
        None => None,
    };
    let written = mtkit::export::tokens::write_corpora(
        &cards, &tok, &spec, a.val_docs, &a.output, format, &options, exclude, &bar,
    )?;
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for (m, left) in written {
        if let Some(e) = &a.exclude_overlap {
            notes.push(format!(
                "{}: left out {left} documents sharing a {}-gram with `{e}`",
                m.corpus, a.overlap_n
            ));
        }
        rows.push(vec![
            m.corpus.clone(),
            m.train_docs.to_string(),
            m.train_tokens.to_string(),
            m.val_docs.to_string(),
            m.val_tokens.to_string(),
            if m.has_prompt {
                "yes".into()
            } else if m.prompt_mask_dropped {
                format!("dropped (no mask in {})", format.name())
            } else {
                "no".into()
            },
            m.skipped.values().sum::<u64>().to_string(),
        ]);
        if let Some(note) =
            mtkit::cli_support::output::skipped_note(&m.corpus, &m.skipped, &m.skipped_examples)
        {
            eprintln!("{note}");
        }
    }
    // One meaning of -q in every command: only the result on stdout. The result of tokenize
    // is its files, so with -q nothing is printed (as `profile -o ... -q`).
    if a.quiet {
        return Ok(());
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
    for n in &notes {
        println!("{n}");
    }
    println!(
        "written to {} ({} format)",
        a.output.display(),
        format.name()
    );
    Ok(())
}
