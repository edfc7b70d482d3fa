//! `mtkit overlap CORPUS... --against EVAL`: how contaminated each corpus is with an
//! evaluation set, on exact token n-grams; `--shard K/N --part`, `overlap merge` and
//! `--slurm N` for corpora too large for one process.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use mtkit::analysis::overlap::{
    overlap, overlap_csv, pairs_frame, Overlap, OverlapOptions, DEFAULT_N,
};
use mtkit::analysis::overlap_parts::{merge_parts, OverlapPart, PartSettings};
use mtkit::cli_support::args::{
    CatalogArgs, GlobalArgs, SampleArgs, SbatchArgs, TokenizerArgs, WholeDocumentCuts,
};
use mtkit::cli_support::bar::Bar;
use mtkit::cluster::slurm::{PartsSpec, ShardArray};
use mtkit::data::corpus::Shard;
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
///
/// Large corpora: `--shard K/N --part PART.json` scans shard K of N of every corpus (EVAL
/// whole) into a part, and `overlap merge PARTS... --csv FILE` adds the N parts into the
/// whole scan's table exactly; `--slurm N --csv FILE` runs both on Slurm.
#[derive(Args, Debug)]
#[command(mut_arg("max_docs", |a| a
    .default_value("all")
    .help("Documents of each corpus and of EVAL (uniform sample by --seed), or `all`")))]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct OverlapArgs {
    #[command(subcommand)]
    sub: Option<OverlapSub>,
    /// Corpora to check: card names, or files, folders or globs.
    #[arg(required = true, value_name = "CORPUS")]
    corpora: Vec<String>,
    /// The evaluation set (a card name or a path).
    #[arg(long, value_name = "EVAL", required = true)]
    against: Option<String>,
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
    /// Scan only shard K of N (1-based) of every corpus: the records whose index is K-1
    /// modulo N (EVAL is read whole). With --part, for `overlap merge`.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Write this shard's tally as a part (JSON) for `overlap merge`: counts, the EVAL items
    /// hit and the (document, item) pairs. Needs --shard.
    #[arg(long, value_name = "FILE.json", requires = "shard")]
    part: Option<PathBuf>,
    /// Scan on Slurm as a job array of N shards (each `--shard K/N --part` into CSV.parts/,
    /// marked done when written) and a merge job that waits for them (afterok) and writes
    /// --csv (and --details). Running the same command again resubmits only the shards that
    /// are neither done nor queued.
    #[arg(long, value_name = "N", conflicts_with_all = ["shard", "part"])]
    slurm: Option<u32>,
    #[command(flatten)]
    sbatch: SbatchArgs,
    #[command(flatten)]
    array: super::shard_array::ArrayRunArgs,
}

#[derive(Subcommand, Debug)]
enum OverlapSub {
    /// Add the parts of `overlap --shard K/N --part FILE` (every shard of one split, each
    /// once) into the table of the whole scan: documents, contaminated documents and matched
    /// n-grams add, EVAL items hit are counted once.
    Merge {
        /// Part files, or the parts folder of `overlap --slurm N` (refused, naming the shards,
        /// until every shard is done).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// The table, as CSV (the columns of `overlap --csv`).
        #[arg(long, value_name = "FILE", required = true)]
        csv: PathBuf,
        /// The (document, EVAL item) pairs, as parquet (those of `overlap --details`).
        #[arg(long, value_name = "FILE")]
        details: Option<PathBuf>,
        /// No table on stdout.
        #[arg(long, short)]
        quiet: bool,
    },
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

pub fn run(mut a: OverlapArgs, global: &GlobalArgs) -> Result<()> {
    a.corpora = mtkit::cli_support::args::named_once(&a.corpora);
    if let Some(OverlapSub::Merge {
        inputs,
        csv,
        details,
        quiet,
    }) = &a.sub
    {
        return merge(inputs, csv, details.as_deref(), *quiet);
    }
    check_outputs(&a)?;
    if let Some(n) = a.slurm {
        return submit_to_slurm(&a, n, global);
    }
    if a.sbatch.any() {
        bail!("--partition, --account, --time, --cpus-per-task, --mem, --gres and --sbatch-arg go with --slurm N");
    }
    let against = a.against.clone().expect("clap requires --against");
    let mut names = a.corpora.clone();
    names.push(against.clone());
    let cat = a.catalog.load_for(&names)?;
    let corpora = cat.get_all(&a.corpora)?;
    let eval = cat.get(&against)?;
    let tok = a.tokenizer.load()?;
    let mut sample = a.sample.spec();
    sample.max_chars = a.cuts.max_chars();
    let opts = OverlapOptions {
        sample,
        max_tokens_per_doc: a.cuts.max_tokens(),
        n: a.n,
        ignore_common: a.ignore_common,
        // A part keeps the pairs, for `overlap merge --details`.
        details: a.details.is_some() || a.part.is_some(),
        hash_bits: OverlapOptions::hash_bits_from_env()?,
        corpus_shard: a.shard,
    };
    opts.validate()?;
    let bar = Bar::new(a.quiet);
    let _interrupt = InterruptGuard::install();
    let o = overlap(&corpora, eval, &tok, &opts, &bar)?;
    if let (Some(p), Some(shard)) = (&a.part, a.shard) {
        let settings = PartSettings {
            against: eval.name.clone(),
            n: opts.n,
            tokenizer_sha256: tok.sha256.clone(),
            corpora: corpora.iter().map(|c| c.name.clone()).collect(),
            max_chars: opts.sample.max_chars,
            max_tokens_per_doc: opts.max_tokens_per_doc,
            ignore_common: opts.ignore_common,
        };
        OverlapPart::of(&o, settings, shard).save(p)?;
    }
    write_outputs(&o, a.csv.as_deref(), a.details.as_deref())?;
    if a.quiet {
        return Ok(());
    }
    print_table(&o, opts.n, &eval.name);
    for (flag, p) in [("table", &a.csv), ("pairs", &a.details), ("part", &a.part)] {
        if let Some(p) = p {
            println!("{flag} written to {}", p.display());
        }
    }
    Ok(())
}

/// Refuses, before any work, outputs that could not be written and shards that would not
/// merge into the whole scan.
fn check_outputs(a: &OverlapArgs) -> Result<()> {
    if let Some(p) = &a.csv {
        check_output("--csv", p, "csv")?;
    }
    if let Some(p) = &a.details {
        check_output("--details", p, "parquet")?;
    }
    if let Some(p) = &a.part {
        check_output("--part", p, "json")?;
    }
    // The shards of a sample are not a sample of the whole: parts merge exactly only when
    // every record is read.
    let sharded = (a.shard.is_some() && a.part.is_some()) || a.slurm.is_some();
    if sharded && a.sample.max_docs.0.is_some() {
        bail!(
            "--max-docs {}: shards merge into the whole scan only with --max-docs all (the default)",
            a.sample.max_docs
        );
    }
    Ok(())
}

/// Writes the table (--csv) and the pairs (--details) where asked, each atomically.
fn write_outputs(o: &Overlap, csv: Option<&Path>, details: Option<&Path>) -> Result<()> {
    if let Some(p) = csv {
        mtkit::util::paths::write_atomic_bytes(p, &overlap_csv(o)?)?;
    }
    if let Some(p) = details {
        use polars::prelude::ParquetWriter;
        let mut bytes = Vec::new();
        ParquetWriter::new(&mut bytes).finish(&mut pairs_frame(o)?)?;
        mtkit::util::paths::write_atomic_bytes(p, &bytes)?;
    }
    Ok(())
}

/// `overlap merge`: the parts (or a --slurm parts folder) into the whole scan's table.
fn merge(inputs: &[PathBuf], csv: &Path, details: Option<&Path>, quiet: bool) -> Result<()> {
    check_output("--csv", csv, "csv")?;
    if let Some(p) = details {
        check_output("--details", p, "parquet")?;
    }
    let inputs = match inputs {
        [dir] if dir.is_dir() => PartsSpec::complete_parts(dir)?,
        _ => inputs.to_vec(),
    };
    let (o, settings) = merge_parts(&inputs)?;
    write_outputs(&o, Some(csv), details)?;
    if quiet {
        return Ok(());
    }
    println!(
        "merged {} parts of the {}-gram overlap with `{}`",
        inputs.len(),
        settings.n,
        settings.against
    );
    print_table(&o, settings.n, &settings.against);
    for (flag, p) in [("table", Some(csv)), ("pairs", details)] {
        if let Some(p) = p {
            println!("{flag} written to {}", p.display());
        }
    }
    Ok(())
}

/// What one shard task runs, built from the parsed options (paths absolute): the global
/// options, then `overlap CORPUS... --against EVAL -n N` and every sampling, cut, tokenizer
/// and catalog option once.
fn task_args(a: &OverlapArgs, against: &str, global: &GlobalArgs) -> Vec<String> {
    let mut v = global.to_args();
    v.push("overlap".to_string());
    v.extend(a.corpora.iter().cloned());
    v.extend([
        "--against".to_string(),
        against.to_string(),
        "-n".to_string(),
        a.n.to_string(),
        "--max-chars".to_string(),
        a.cuts.max_chars.to_string(),
        "--max-tokens-per-doc".to_string(),
        a.cuts.max_tokens_per_doc.to_string(),
    ]);
    v.extend(a.sample.to_args());
    v.extend(a.catalog.to_args());
    v.extend(a.tokenizer.to_args());
    if let Some(f) = a.ignore_common {
        v.extend(["--ignore-common".to_string(), f.to_string()]);
    }
    v
}

/// `--slurm N`: the job array and the merge job (printed with --dry-run, else submitted).
fn submit_to_slurm(a: &OverlapArgs, n: u32, global: &GlobalArgs) -> Result<()> {
    let Some(csv) = &a.csv else {
        bail!("--slurm N needs --csv FILE: the merge job writes the table there");
    };
    let against = a.against.clone().expect("clap requires --against");
    // Every corpus and EVAL must exist before anything is submitted, and every shard of every
    // corpus must get records.
    let mut names = a.corpora.clone();
    names.push(against.clone());
    let cat = a.catalog.load_for(&names)?;
    cat.get(&against)?;
    super::shard_array::check_shards(n, &cat.get_all(&a.corpora)?)?;
    let output = std::path::absolute(csv)?;
    let mut merge_flags = vec!["--csv".to_string(), output.display().to_string()];
    if let Some(d) = &a.details {
        merge_flags.extend([
            "--details".to_string(),
            std::path::absolute(d)?.display().to_string(),
        ]);
    }
    let eval_name = cat.get(&against)?.name.clone();
    let job = ShardArray {
        name: format!("against-{eval_name}"),
        spec: PartsSpec {
            command: "overlap".into(),
            args: task_args(a, &against, global),
            shards: n,
        },
        merge_flags,
        output,
        mtkit: std::env::current_exe()?,
        workdir: std::env::current_dir()?,
        slurm: a.sbatch.options(),
    };
    super::shard_array::run(&job, n, &a.array, a.quiet)
}

/// The table on stdout.
fn print_table(o: &Overlap, n: usize, eval: &str) {
    println!(
        "{}-gram overlap with `{}`: {} items, {} distinct {}-grams{}",
        n,
        eval,
        o.eval_items,
        o.eval_ngrams,
        n,
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
}
