//! `mtkit select POOL... --target T -n DOCS -o OUT.jsonl`: documents of a pool drawn toward a
//! target by importance resampling, and a report of how close they are before any training.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};

use mtkit::analysis::score::ScoreOptions;
use mtkit::analysis::select::{
    load_scores, select, Budget, Pick, Report, ScoreTable, SelectOptions, Selection,
    SelectionRequest, Weighting,
};
use mtkit::cli_support::args::{CatalogArgs, MaxDocs, TokenizerArgs, WholeDocumentCuts};
use mtkit::cli_support::bar::Bar;
use mtkit::data::corpus::SampleSpec;
use mtkit::export::tokens::trainer_formats::{Format, FormatOptions};
use mtkit::util::progress::InterruptGuard;

/// Select documents of a pool toward a target: importance resampling on exact token n-grams.
///
/// Each pool document is scored as `mtkit score` does (log_weight, Σ over its n-grams of
/// ln(λ·p_T/p_R + 1 − λ); see `mtkit score --help`), or its scores are read from --scores.
/// The draw is Gumbel top-k without replacement: key = w + G, G = −ln(−ln U), U uniform
/// from a hash of (--seed, corpus, record), so the choice does not depend on threads or
/// file order, and the largest keys are kept: a draw in proportion to exp(w), as DSIR's.
/// w = L · log_weight_per_token (L = --length-norm, 128: the weight a document of L tokens
/// would have at this rate), or w = log_weight with --weight sum (DSIR's form, where long
/// documents decide the draw). --top-k keeps the largest w without noise.
///
/// Budget: -n documents, --tokens (keys walked in descending order until the total reaches
/// N), or --fraction of the pool's documents. --max-share caps a source, --min-tokens drops
/// short documents, --exclude-overlap drops documents that share an n-gram with an
/// evaluation set (see `mtkit overlap`); a budget they or the pool cannot meet is an error
/// saying by how much.
///
/// Output (-o): OUT.jsonl or OUT.parquet, one row per selected document in descending key
/// order: corpus, record, log_weight, text (the selected texts are held in memory while
/// written). The report (printed, and --report FILE.json) gives sizes, each source's share
/// before and after, and the selection's sim and PA to the target (paper metric, unigrams,
/// against --pretrain P or the pool) next to a random draw of the same size and the whole
/// pool; the KL reduction KL(T‖random) − KL(T‖selection) (DSIR's metric, on exact
/// unigrams, α = 0.01); and the effective sample size (Σv)²/Σv² of the weights v = exp(w).
/// The selection's sim equals `mtkit proximity` on the written file with --max-docs all
/// --max-chars 0 --max-tokens-per-doc 0.
#[derive(Args, Debug)]
pub struct SelectArgs {
    /// Pool corpora: card names, or files, folders or globs.
    #[arg(required = true, value_name = "POOL")]
    pool: Vec<String>,
    /// The target corpus (a card name or a path).
    #[arg(long, value_name = "T")]
    target: String,
    /// Output file: .jsonl or .parquet; with --format, a folder.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Write token files instead of text: mtkit, megatron, olmo-core or litdata. -o is then
    /// a folder, and the selection goes into OUT/selection/ in key order, exactly as
    /// `mtkit tokenize selection.jsonl --format F --val-docs 0 -o OUT` writes the .jsonl
    /// output (the formats' default file sizes).
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Select this many documents.
    #[arg(short = 'n', long = "docs", value_name = "DOCS", group = "budget")]
    docs: Option<u64>,
    /// Select documents until their tokens reach N (the last one may pass it).
    #[arg(long, value_name = "N", group = "budget")]
    tokens: Option<u64>,
    /// Select this fraction of the pool's documents (rounded to a whole document).
    #[arg(long, value_name = "F", group = "budget")]
    fraction: Option<f64>,
    /// What the draw weighs a document by: per-token (L · log_weight_per_token) or sum
    /// (log_weight).
    #[arg(long, value_enum, default_value = "per-token")]
    weight: WeightArg,
    /// L of --weight per-token, in tokens.
    #[arg(long, value_name = "L", default_value_t = 128.0)]
    length_norm: f64,
    /// Keep the largest weights, without the Gumbel noise.
    #[arg(long)]
    top_k: bool,
    /// Seed of the draw's noise (and of the report's random draw).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Scores written by `mtkit score` for the same pool (.parquet or .csv): no scoring pass.
    #[arg(long, value_name = "FILE")]
    scores: Option<PathBuf>,
    /// Cap a source: CORPUS's share of the budget (documents or tokens) is at most F.
    /// Repeatable.
    #[arg(long, value_name = "CORPUS=F", value_parser = parse_share)]
    max_share: Vec<(String, f64)>,
    /// Leave out every pool document that shares an n-gram of --overlap-n tokens with EVAL
    /// (a card name or a path; every item of it, whole), as `mtkit overlap` finds them,
    /// before the draw and the report.
    #[arg(long, value_name = "EVAL")]
    exclude_overlap: Option<String>,
    /// Keep one copy of documents whose token ids are identical (the first, in the pool's
    /// corpus order and then record order).
    #[arg(long)]
    dedup: bool,
    /// The n-gram length of --exclude-overlap, in tokens.
    #[arg(long, value_name = "N", default_value_t = mtkit::analysis::overlap::DEFAULT_N, requires = "exclude_overlap")]
    overlap_n: usize,
    /// Leave out documents with fewer than K tokens (documents with none are never drawn).
    #[arg(long, value_name = "K", default_value_t = 1)]
    min_tokens: u64,
    /// The pretraining corpus P of the report's PA (default: the pool).
    #[arg(long, value_name = "P")]
    pretrain: Option<String>,
    /// Also write the report as JSON.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Highest n-gram order N of the scores: orders 1..N.
    #[arg(long, default_value_t = 2, value_name = "N", conflicts_with = "scores")]
    ngram: usize,
    /// λ of the scores' interpolation λ·p_T + (1 − λ)·p_R, in (0, 1).
    #[arg(
        long,
        default_value_t = 0.5,
        value_name = "λ",
        conflicts_with = "scores"
    )]
    lambda: f64,
    #[command(flatten)]
    cuts: WholeDocumentCuts,
    /// Documents of each corpus read (a uniform sample by --sample-seed), or `all`.
    #[arg(long, value_name = "N|all", default_value = "all")]
    max_docs: MaxDocs,
    /// Seed of the --max-docs sample.
    #[arg(long, default_value_t = 42)]
    sample_seed: u64,
    /// Fail on the first bad record instead of skipping and counting it.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    catalog: CatalogArgs,
    #[command(flatten)]
    tokenizer: TokenizerArgs,
    /// No progress bars and no report on stdout (the files are the result).
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum WeightArg {
    PerToken,
    Sum,
}

fn parse_share(s: &str) -> Result<(String, f64), String> {
    let (name, f) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("`{s}`: write CORPUS=F, e.g. c4=0.5"))?;
    let f: f64 = f
        .parse()
        .map_err(|_| format!("`{s}`: the share `{f}` is not a number"))?;
    Ok((name.to_string(), f))
}

/// What -o receives.
enum Output {
    Jsonl,
    Parquet,
    Tokens(Format),
}

/// The output's kind: token files with --format, else by the file's extension.
fn output_kind(path: &Path, format: Option<&str>) -> Result<Output> {
    if let Some(f) = format {
        return Ok(Output::Tokens(f.parse()?));
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl") => Ok(Output::Jsonl),
        Some("parquet") => Ok(Output::Parquet),
        _ => bail!(
            "-o {}: name a .jsonl or a .parquet file (or a folder, with --format)",
            path.display()
        ),
    }
}

/// The selection as token files in `dir`/selection/, through `tokenize`'s writers: its JSON
/// Lines (in key order) in a temporary folder beside `dir`, read as a corpus of that file.
fn write_tokens(
    jsonl: &[u8],
    dir: &Path,
    format: Format,
    tok: &mtkit::tokenize::Tokenizer,
    bar: &Bar,
) -> Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".mtkit-selection-")
        .tempdir_in(&parent)?;
    let file = tmp.path().join("selection.jsonl");
    std::fs::write(&file, jsonl)?;
    let card = mtkit::data::catalog::Card::for_files(
        "selection",
        vec![file.display().to_string()],
        "{text}",
    );
    let every = SampleSpec {
        max_docs: None,
        seed: 0,
        max_chars: None,
        shard: None,
        strict: true,
    };
    mtkit::export::tokens::write_format(
        &card,
        tok,
        &every,
        0,
        dir,
        format,
        &FormatOptions::default(),
        &[],
        bar,
    )?;
    Ok(())
}

pub fn run(mut a: SelectArgs) -> Result<()> {
    a.pool = mtkit::cli_support::args::named_once(&a.pool);
    let output = output_kind(&a.output, a.format.as_deref())?;
    let opts = select_options(&a)?;
    let mut names = a.pool.clone();
    names.push(a.target.clone());
    names.extend(a.pretrain.clone());
    names.extend(a.exclude_overlap.clone());
    let cat = a.catalog.load_for(&names)?;
    let pool = cat.get_all(&a.pool)?;
    let target = cat.get(&a.target)?;
    let pretrain = a.pretrain.as_ref().map(|p| cat.get(p)).transpose()?;
    let tok = a.tokenizer.load()?;
    let score_opts = score_options(&a);
    score_opts.validate(tok.vocab_size)?;
    for out in std::iter::once(&a.output).chain(&a.report) {
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        mtkit::util::paths::check_writable_folder(&dir)
            .map_err(|e| e.context(format!("{}", out.display())))?;
    }
    let bar = Bar::new(a.quiet);
    let _interrupt = InterruptGuard::install();
    let scores = match &a.scores {
        Some(f) => Some(load_scores(
            f,
            &pool.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
        )?),
        None => None,
    };
    let exclude = match &a.exclude_overlap {
        Some(e) => Some((cat.get(e)?, a.overlap_n)),
        None => None,
    };
    let Selection {
        table,
        picks,
        texts,
        report: rep,
    } = select(
        SelectionRequest {
            pool: &pool,
            target,
            pretrain,
            exclude_overlap: exclude,
            dedup: a.dedup,
            scores,
            score: score_opts,
            select: opts.clone(),
        },
        &tok,
        &bar,
    )?;
    write_selection(&a, output, (&table, &picks, &texts), &tok, &bar)?;
    if let Some(f) = &a.report {
        write_report(f, &target.name, &a, &opts, &rep)?;
    }
    if !a.quiet {
        print!("{}", human(&rep, &target.name, &a, &opts));
    }
    Ok(())
}

/// The draw's options from the flags: exactly one budget, the weighting and its length.
fn select_options(a: &SelectArgs) -> Result<SelectOptions> {
    let budget = match (a.docs, a.tokens, a.fraction) {
        (Some(n), _, _) => Budget::Docs(n),
        (_, Some(n), _) => Budget::Tokens(n),
        (_, _, Some(f)) => Budget::Fraction(f),
        _ => bail!("say how much to select: -n DOCS, --tokens N or --fraction F"),
    };
    if !(a.length_norm > 0.0 && a.length_norm.is_finite()) {
        bail!(
            "--length-norm must be a positive number of tokens, got {}",
            a.length_norm
        );
    }
    Ok(SelectOptions {
        weighting: match a.weight {
            WeightArg::PerToken => Weighting::PerToken {
                length_norm: a.length_norm,
            },
            WeightArg::Sum => Weighting::Sum,
        },
        top_k: a.top_k,
        seed: a.seed,
        budget,
        max_share: a.max_share.clone(),
        min_tokens: a.min_tokens,
    })
}

/// The scores' options from the flags (the pool and the target read alike).
fn score_options(a: &SelectArgs) -> ScoreOptions {
    let sample = SampleSpec {
        max_docs: a.max_docs.0,
        seed: a.sample_seed,
        max_chars: a.cuts.max_chars(),
        shard: None,
        strict: a.strict,
    };
    ScoreOptions {
        sample,
        max_tokens_per_doc: a.cuts.max_tokens(),
        ngram: a.ngram,
        lambda: a.lambda,
    }
}

/// The selection in the output's form: parquet, JSON Lines, or a trainer's token files.
fn write_selection(
    a: &SelectArgs,
    output: Output,
    (table, picks, texts): (&ScoreTable, &[Pick], &[String]),
    tok: &mtkit::tokenize::Tokenizer,
    bar: &Bar,
) -> Result<()> {
    match output {
        Output::Parquet => {
            use polars::prelude::ParquetWriter;
            let mut b = Vec::new();
            ParquetWriter::new(&mut b).finish(&mut mtkit::analysis::select::selection_frame(
                table, picks, texts,
            )?)?;
            mtkit::util::paths::write_atomic_bytes(&a.output, &b)?;
        }
        Output::Jsonl => {
            let b = mtkit::analysis::select::selection_jsonl(table, picks, texts)?;
            mtkit::util::paths::write_atomic_bytes(&a.output, &b)?;
        }
        Output::Tokens(format) => {
            let b = mtkit::analysis::select::selection_jsonl(table, picks, texts)?;
            write_tokens(&b, &a.output, format, tok, bar)?;
        }
    }
    Ok(())
}

/// `--report FILE.json`: the draw's settings, then the report's figures.
fn write_report(
    f: &Path,
    target: &str,
    a: &SelectArgs,
    opts: &SelectOptions,
    rep: &Report,
) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(&ReportFile {
        target,
        weight: match opts.weighting {
            Weighting::PerToken { .. } => "per-token",
            Weighting::Sum => "sum",
        },
        length_norm: matches!(opts.weighting, Weighting::PerToken { .. }).then_some(a.length_norm),
        top_k: a.top_k,
        seed: a.seed,
        report: rep,
    })?;
    json.push(b'\n');
    mtkit::util::paths::write_atomic_bytes(f, &json)?;
    Ok(())
}

/// The report file: the draw's settings, then the report's figures.
#[derive(serde::Serialize)]
struct ReportFile<'a> {
    target: &'a str,
    weight: &'a str,
    length_norm: Option<f64>,
    top_k: bool,
    seed: u64,
    #[serde(flatten)]
    report: &'a Report,
}

/// The printed report.
fn human(r: &Report, target: &str, a: &SelectArgs, opts: &SelectOptions) -> String {
    use std::fmt::Write;
    let weight = match (opts.weighting, opts.top_k) {
        (Weighting::PerToken { length_norm }, false) => {
            format!(
                "{length_norm}·log_weight_per_token + Gumbel noise, seed {}",
                opts.seed
            )
        }
        (Weighting::PerToken { length_norm }, true) => {
            format!("top-k of {length_norm}·log_weight_per_token")
        }
        (Weighting::Sum, false) => format!("log_weight + Gumbel noise, seed {}", opts.seed),
        (Weighting::Sum, true) => "top-k of log_weight".to_string(),
    };
    let mut s = String::new();
    if let Some(d) = &r.duplicates_left_out {
        let _ = writeln!(
            s,
            "left out {} pool documents as copies of an earlier one (--dedup)",
            d.documents
        );
    }
    if let Some(x) = &r.excluded_by_overlap {
        let each: Vec<String> = x
            .by_source
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let _ = writeln!(
            s,
            "left out {} pool documents sharing a {}-gram with `{}`{}",
            x.documents,
            x.n,
            x.against,
            if each.is_empty() {
                String::new()
            } else {
                format!(" ({})", each.join(", "))
            }
        );
    }
    let _ = writeln!(
        s,
        "selected {} of {} documents ({} of {} tokens) toward `{target}`; key: {weight}",
        r.selected.documents, r.pool.documents, r.selected.tokens, r.pool.tokens
    );
    tables(&mut s, r);
    footer(&mut s, r, a);
    s
}

/// The report's tables: each source's share of the pool and of the selection, and how close
/// the selection, a random draw and the pool are to the target.
fn tables(s: &mut String, r: &Report) {
    use std::fmt::Write;
    let _ = writeln!(
        s,
        "\n{:<24} {:>12} {:>8} {:>12} {:>8}",
        "source", "pool tokens", "share", "selected", "share"
    );
    for src in &r.sources {
        let _ = writeln!(
            s,
            "{:<24} {:>12} {:>7.1}% {:>12} {:>7.1}%",
            src.corpus,
            src.pool.tokens,
            100.0 * src.pool_token_share,
            src.selected.tokens,
            100.0 * src.selected_token_share
        );
    }
    let _ = writeln!(
        s,
        "\n{:<24} {:>10} {:>10} {:>10}",
        "to the target", "sim", "PA", "-KL(T||.)"
    );
    for (name, c) in [
        ("selection", &r.selection),
        ("random draw, same size", &r.random_draw),
        ("whole pool", &r.whole_pool),
    ] {
        let _ = writeln!(
            s,
            "{name:<24} {:>10.6} {:>+10.6} {:>10.6}",
            c.sim, c.pa, c.neg_kl
        );
    }
    let _ = writeln!(
        s,
        "\nPA against {}; sim = the paper's metric on unigrams. KL reduction against the random draw: {:+.6} nats",
        r.pretrain, r.kl_reduction
    );
    let _ = writeln!(
        s,
        "effective sample size of the weights: {:.2} of {} eligible documents",
        r.effective_sample_size, r.eligible_documents
    );
}

/// The n-grams that drive the weights, and where the selection was written.
fn footer(s: &mut String, r: &Report, a: &SelectArgs) {
    use std::fmt::Write;
    if let Some(d) = &r.drivers {
        let _ = writeln!(
            s,
            "\nn-grams that raise the weights most (ln(λ·p_T/p_R + 1 − λ) per occurrence × pool occurrences):"
        );
        for g in d.iter().take(5) {
            let _ = writeln!(
                s,
                "  {:<28} {:>+8.3} × {:>7} = {:>+10.1}",
                format!("{:?}", g.text),
                g.lift,
                g.pool_count,
                g.total
            );
        }
    }
    match &a.format {
        Some(f) => {
            let _ = write!(
                s,
                "written to {} ({f} token files)",
                a.output.join("selection").display()
            );
        }
        None => {
            let _ = write!(s, "written to {}", a.output.display());
        }
    }
    if let Some(f) = &a.report {
        let _ = write!(s, " (report: {})", f.display());
    }
    s.push('\n');
}
