//! `mtkit overlap CORPUS... --against EVAL`: how contaminated each corpus is with an
//! evaluation set, on exact token n-grams.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;

use mtkit::analysis::overlap::{overlap, overlap_csv, pairs_frame, OverlapOptions, DEFAULT_N};
use mtkit::cli_support::args::{CatalogArgs, SampleArgs, TokenizerArgs, WholeDocumentCuts};
use mtkit::cli_support::bar::Bar;
use mtkit::util::progress::InterruptGuard;

/// Check corpora for contamination with an evaluation set: exact token n-gram overlap.
///
/// Every distinct n-gram (-n tokens of the model tokenizer, 13 by default, inside one
/// document, no special tokens) of EVAL's items goes into a table; every document of each
/// CORPUS is then scanned for them. A window counts only when its token ids equal an n-gram
/// of EVAL's (a hash finds candidates; a hash collision is never reported).
///
/// Per corpus (printed, and --csv FILE with these columns): documents scanned,
/// contaminated_documents (with at least one n-gram of EVAL) and contaminated_share,
/// eval_items_hit (EVAL items sharing at least one n-gram with the corpus) and
/// eval_items_share, matched_ngrams (occurrences in the corpus of n-grams EVAL has).
/// --details FILE.parquet: one row per (corpus, record, eval_record) pair sharing n-grams,
/// with shared_ngrams (the document's windows whose n-gram the item has) and longest_span
/// (the longest run of such consecutive windows, in tokens: run + n − 1).
///
/// Whole documents of every record of each corpus and of EVAL by default; --max-docs,
/// --max-chars and --max-tokens-per-doc cut both alike. --ignore-common F drops n-grams
/// found in more than a share F of EVAL's items (shared boilerplate); off by default.
#[derive(Args, Debug)]
#[command(mut_arg("max_docs", |a| a
    .default_value("all")
    .help("Documents of each corpus and of EVAL (uniform sample by --seed), or `all`")))]
pub struct OverlapArgs {
    /// Corpora to check: card names, or files, folders or globs.
    #[arg(required = true, value_name = "CORPUS")]
    corpora: Vec<String>,
    /// The evaluation set (a card name or a path).
    #[arg(long, value_name = "EVAL")]
    against: String,
    /// The n-gram length, in tokens.
    #[arg(short, default_value_t = DEFAULT_N, value_name = "N")]
    n: usize,
    /// Also write the table as CSV.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Write the (document, EVAL item) pairs that share n-grams, as parquet.
    #[arg(long, value_name = "FILE")]
    details: Option<PathBuf>,
    /// Ignore n-grams occurring in more than this share of EVAL's items (0 < F ≤ 1).
    #[arg(long, value_name = "F")]
    ignore_common: Option<f64>,
    #[command(flatten)]
    cuts: WholeDocumentCuts,
    #[command(flatten)]
    sample: SampleArgs,
    #[command(flatten)]
    catalog: CatalogArgs,
    #[command(flatten)]
    tokenizer: TokenizerArgs,
    /// No progress bars and no table (the files are the result). Errors still go to stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// Refuses an output path that could not be written, before any work.
fn check_output(flag: &str, path: &Path, ext: &str) -> Result<()> {
    if path.extension().and_then(|e| e.to_str()) != Some(ext) {
        bail!("{flag} {}: name a .{ext} file", path.display());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    mtkit::util::paths::check_writable_folder(&dir)
        .map_err(|e| e.context(format!("{flag} {}", path.display())))
}

pub fn run(a: OverlapArgs) -> Result<()> {
    if let Some(p) = &a.csv {
        check_output("--csv", p, "csv")?;
    }
    if let Some(p) = &a.details {
        check_output("--details", p, "parquet")?;
    }
    let mut names = a.corpora.clone();
    names.push(a.against.clone());
    let cat = a.catalog.load_for(&names)?;
    let corpora = cat.get_all(&a.corpora)?;
    let eval = cat.get(&a.against)?;
    let tok = a.tokenizer.load()?;
    let mut sample = a.sample.spec();
    sample.max_chars = a.cuts.max_chars();
    let opts = OverlapOptions {
        sample,
        max_tokens_per_doc: a.cuts.max_tokens(),
        n: a.n,
        ignore_common: a.ignore_common,
        details: a.details.is_some(),
        hash_bits: OverlapOptions::hash_bits_from_env()?,
    };
    opts.validate()?;
    let bar = Bar::new(a.quiet);
    let _interrupt = InterruptGuard::install();
    let o = overlap(&corpora, eval, &tok, &opts, &bar)?;
    if let Some(p) = &a.csv {
        mtkit::util::paths::write_atomic_bytes(p, &overlap_csv(&o)?)?;
    }
    if let Some(p) = &a.details {
        use polars::prelude::ParquetWriter;
        let mut bytes = Vec::new();
        ParquetWriter::new(&mut bytes).finish(&mut pairs_frame(&o)?)?;
        mtkit::util::paths::write_atomic_bytes(p, &bytes)?;
    }
    if a.quiet {
        return Ok(());
    }
    println!(
        "{}-gram overlap with `{}`: {} items, {} distinct {}-grams{}",
        opts.n,
        eval.name,
        o.eval_items,
        o.eval_ngrams,
        opts.n,
        if o.eval_ignored > 0 {
            format!(" ({} ignored by --ignore-common)", o.eval_ignored)
        } else {
            String::new()
        }
    );
    let width = o
        .rows
        .iter()
        .map(|r| r.corpus.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "{:<width$}  {:>10}  {:>12}  {:>8}  {:>10}  {:>8}  {:>15}",
        "corpus", "documents", "contaminated", "share", "items hit", "share", "matched n-grams"
    );
    for r in &o.rows {
        println!(
            "{:<width$}  {:>10}  {:>12}  {:>8.4}  {:>10}  {:>8.4}  {:>15}",
            r.corpus,
            r.documents,
            r.contaminated_documents,
            r.contaminated_share(),
            r.eval_items_hit,
            o.eval_items_share(r),
            r.matched_ngrams
        );
    }
    for (flag, p) in [("table", &a.csv), ("pairs", &a.details)] {
        if let Some(p) = p {
            println!("{flag} written to {}", p.display());
        }
    }
    Ok(())
}
