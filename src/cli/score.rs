//! `mtkit score POOL... --target T -o scores.parquet`: each pool document's importance weight
//! toward a target.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use mtkit::analysis::score::{score, scores_frame, ScoreOptions};
use mtkit::cli_support::args::{CatalogArgs, SampleArgs, TokenizerArgs, WholeDocumentCuts};
use mtkit::cli_support::bar::Bar;
use mtkit::util::progress::InterruptGuard;

/// Weigh each document of a pool toward a target: the log importance weight of importance
/// resampling (DSIR's, on the model tokenizer's exact n-grams), one row per document.
///
/// For each order n = 1..N, p_T,n(g) = c_T(g) / C_T,n over the target's documents and
/// p_R,n(g) = c_R(g) / C_R,n over every document of the pool (all POOL corpora together);
/// then
///
///   log_weight(x) = Σ_n Σ_{g in x} ln(λ·p_T,n(g)/p_R,n(g) + (1 − λ))
///
/// over every n-gram occurrence of document x (token ids, no special tokens, inside one
/// document): the target's n-gram model interpolated with the pool's (Jelinek-Mercer) against
/// the pool's alone. An n-gram the target lacks weighs ln(1 − λ); no pseudo-count is needed.
/// Memory holds the target's n-grams only; the pool is read twice.
///
/// Output (-o FILE.parquet, or FILE.csv): columns corpus (the card or file name), record (the
/// record's index within its corpus, as --shard and --max-docs sampling count), tokens,
/// log_weight and log_weight_per_token (log_weight / max(tokens, 1)), by corpus then record.
/// Whole documents of every record by default: --max-docs, --max-chars and
/// --max-tokens-per-doc cut them, alike for the pool and the target.
#[derive(Args, Debug)]
#[command(mut_arg("max_docs", |a| a
    .default_value("all")
    .help("Documents of each corpus (pool and target; uniform sample by --seed), or `all`")))]
pub struct ScoreArgs {
    /// Pool corpora: card names, or files, folders or globs.
    #[arg(required = true, value_name = "POOL")]
    pool: Vec<String>,
    /// The target corpus (a card name or a path).
    #[arg(long, value_name = "T")]
    target: String,
    /// Output file: .parquet (default) or .csv.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Highest n-gram order N: orders 1..N are used.
    #[arg(long, default_value_t = 2, value_name = "N")]
    ngram: usize,
    /// λ of the interpolation λ·p_T + (1 − λ)·p_R, between 0 and 1 (both excluded).
    #[arg(long, default_value_t = 0.5, value_name = "λ")]
    lambda: f64,
    #[command(flatten)]
    cuts: WholeDocumentCuts,
    #[command(flatten)]
    sample: SampleArgs,
    #[command(flatten)]
    catalog: CatalogArgs,
    #[command(flatten)]
    tokenizer: TokenizerArgs,
    /// No progress bars and no summary (the file is the result). Errors still go to stderr.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(mut a: ScoreArgs) -> Result<()> {
    a.pool = mtkit::cli_support::args::named_once(&a.pool);
    let csv = match a.output.extension().and_then(|e| e.to_str()) {
        Some("csv") => true,
        Some("parquet") => false,
        _ => bail!("-o {}: name a .parquet or a .csv file", a.output.display()),
    };
    let mut names = a.pool.clone();
    names.push(a.target.clone());
    let cat = a.catalog.load_for(&names)?;
    let pool = cat.get_all(&a.pool)?;
    let target = cat.get(&a.target)?;
    let tok = a.tokenizer.load()?;
    let mut sample = a.sample.spec();
    sample.max_chars = a.cuts.max_chars();
    let opts = ScoreOptions {
        sample,
        max_tokens_per_doc: a.cuts.max_tokens(),
        ngram: a.ngram,
        lambda: a.lambda,
    };
    opts.validate(tok.vocab_size)?;
    let dir = match a.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    mtkit::util::paths::check_writable_folder(&dir)
        .map_err(|e| e.context(format!("-o {}", a.output.display())))?;
    let bar = Bar::new(a.quiet);
    let _interrupt = InterruptGuard::install();
    let s = score(&pool, target, &tok, &opts, &bar)?;
    let mut bytes = Vec::new();
    if csv {
        // Floats as Rust writes them: the shortest text that reads back as the same f64.
        let mut w = csv::Writer::from_writer(&mut bytes);
        w.write_record([
            "corpus",
            "record",
            "tokens",
            "log_weight",
            "log_weight_per_token",
        ])?;
        for r in &s.rows {
            w.write_record([
                s.corpora[r.corpus].clone(),
                r.record.to_string(),
                r.tokens.to_string(),
                r.log_weight.to_string(),
                r.per_token().to_string(),
            ])?;
        }
        w.flush()?;
    } else {
        use polars::prelude::ParquetWriter;
        ParquetWriter::new(&mut bytes).finish(&mut scores_frame(&s)?)?;
    }
    mtkit::util::paths::write_atomic_bytes(&a.output, &bytes)?;
    if !a.quiet {
        let n: Vec<String> = (0..opts.ngram)
            .map(|i| {
                format!(
                    "order {}: target {} n-grams ({} distinct), pool {}",
                    i + 1,
                    s.target_ngrams[i],
                    s.target_distinct[i],
                    s.pool_ngrams[i]
                )
            })
            .collect();
        println!(
            "scored {} pool documents toward `{}` ({} documents); λ = {}\n{}\nwritten to {}",
            s.rows.len(),
            target.name,
            s.target_documents,
            opts.lambda,
            n.join("\n"),
            a.output.display()
        );
    }
    Ok(())
}
