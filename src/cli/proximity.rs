//! `mtkit proximity P M1 [M2 ...] T` and `mtkit proximity --matrix A B ...`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};

use mtkit::analysis::proximity::{
    compute, matrix, matrix_csv, rows_csv, Metric, MetricOptions, MixBy, MixSpec, Query, Row,
};
use mtkit::profile::{cached_or_build, Profile, ProfileOptions};
use mtkit::tokenize::Tokenizer;

use super::profile::NgramArgs;
use super::CorpusArgs;
use mtkit::cli_support::bar::Bar;
use mtkit::cli_support::output::{sig, table};

/// Similarity of each corpus to the target, and each candidate's proximity advantage.
///
/// The first corpus is the pretraining corpus P, the last the fine-tuning target T, those
/// between the midtraining candidates M. PA(M→T) = sim(M,T) − sim(P,T): a candidate with a
/// positive PA is closer to the target than general pretraining data is. Corpora are card
/// names or saved profile files (*.parquet).
///
/// Metrics (higher = closer): paper (0.4·cosine + 0.3·jaccard + 0.3/(1+JSD) over unigram
/// frequencies, no smoothing, natural log: the authors' token similarity), cosine, jaccard,
/// jsd (−JSD), js-sim (1/(1+JSD)), hellinger (1 − Hellinger distance), cross-entropy
/// (−H(T, M̃)), kl (−KL(T‖M̃); its PA is DSIR's KL reduction), ngram-cosine (mean cosine over
/// orders 1..N; approximate with --ngram-buckets). M̃: counts smoothed additively with α.
#[derive(Args, Debug)]
pub struct ProximityArgs {
    /// P M1 [M2 ...] T (with --matrix: any two or more corpora).
    #[arg(required = true, value_name = "CORPUS")]
    corpora: Vec<String>,
    /// Similarity metric.
    #[arg(long, default_value = "paper")]
    metric: Metric,
    /// Report every metric (one block of rows each).
    #[arg(long)]
    all_metrics: bool,
    /// Also write the table as CSV: corpus,role,metric,sim,cosine,jaccard,jsd,pa (then
    /// mix_token_weight with --mix, sim_lo,sim_hi,pa_lo,pa_hi with --bootstrap, and
    /// contaminated_share with --overlap).
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Print JSON lines (one object per row) instead of the table.
    #[arg(long)]
    json: bool,
    /// Mixture-aware variant: score each candidate blended with P, the candidate's share W.
    #[arg(long, value_name = "W")]
    mix: Option<f64>,
    /// What --mix W is a share of: tokens (exact), or documents as the authors' code blends
    /// (converted to tokens with each corpus's mean tokens per document).
    #[arg(long, value_enum, default_value = "tokens")]
    mix_by: MixByArg,
    /// Resample documents B times and report 95% percentile intervals of sim and PA.
    #[arg(long, value_name = "B")]
    bootstrap: Option<usize>,
    /// Additive smoothing α of the scored corpus's counts for cross-entropy and kl.
    #[arg(long, value_name = "ALPHA", default_value_t = 0.01)]
    smoothing: f64,
    /// Print the full similarity matrix (entry = sim(row, column)) as CSV instead.
    #[arg(long)]
    matrix: bool,
    /// With --matrix: draw it as a heatmap, SVG or PNG by the file's extension (repeat the
    /// flag for both).
    #[arg(long, value_name = "FILE.svg|FILE.png", requires = "matrix")]
    plot: Vec<PathBuf>,
    /// Also say, for each corpus, the share of its documents (those the profile counts) that
    /// share an n-gram of --overlap-n tokens with EVAL (every item of it, whole), as
    /// `mtkit overlap` finds them: a PA that comes from copies of the target's evaluation
    /// items shows as such.
    #[arg(long, value_name = "EVAL", conflicts_with = "matrix")]
    overlap: Option<String>,
    /// The n-gram length of --overlap, in tokens.
    #[arg(long, value_name = "N", default_value_t = mtkit::analysis::overlap::DEFAULT_N, requires = "overlap")]
    overlap_n: usize,
    #[command(flatten)]
    ngrams: NgramArgs,
    #[command(flatten)]
    corpus: CorpusArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MixByArg {
    Tokens,
    Docs,
}

pub fn run(a: ProximityArgs) -> Result<()> {
    // Ctrl-C and SIGTERM stop the work (readers check between records) instead of the
    // process, so that temporary files and folders are removed on the way out.
    let _interrupt = mtkit::util::progress::InterruptGuard::install();
    // Profiles of corpora not yet cached are counted here too (see `profile`).
    mtkit::util::memory::prefer_small_pages();
    let metrics: Vec<Metric> = if a.all_metrics {
        Metric::ALL.to_vec()
    } else {
        vec![a.metric]
    };
    if !a.matrix {
        mtkit::analysis::proximity::check_corpus_count(a.corpora.len())?;
    }
    if a.matrix && a.corpora.len() < 2 {
        bail!("--matrix needs at least two corpora");
    }
    if a.smoothing <= 0.0 {
        bail!("--smoothing must be positive (it keeps log 0 out of cross-entropy and kl)");
    }
    for path in &a.plot {
        mtkit::analysis::plot::ImageFormat::of(path)?;
    }
    if let Some(b) = a.bootstrap {
        mtkit::analysis::stats::check_bootstrap(b, "--bootstrap")?;
    }
    let opts = profile_options(&a, &metrics);
    let profiles = load_profiles(&a.corpora, &a.corpus, &opts)?;
    let refs: Vec<&Profile> = profiles.iter().collect();
    let mo = MetricOptions {
        smoothing: a.smoothing,
    };
    if a.matrix {
        return write_matrix(&a, &refs, metrics[0], &mo);
    }
    let bar = mtkit::cli_support::bar::Bar::new(a.corpus.quiet);
    let q = Query {
        mix: a.mix.map(|w| MixSpec {
            weight: w,
            by: match a.mix_by {
                MixByArg::Tokens => MixBy::Tokens,
                MixByArg::Docs => MixBy::Docs,
            },
        }),
        bootstrap: a.bootstrap.map(|b| (b, a.corpus.sample.seed)),
        ..Query::of_list(&refs, metrics, mo, &bar)?
    };
    let mut rows = compute(&q)?;
    if let Some(eval) = &a.overlap {
        let shares = contaminated_shares(&a, eval, &bar)?;
        for r in rows.iter_mut() {
            r.contaminated_share = shares.get(&r.corpus).copied();
        }
    }
    let csv = rows_csv(&rows, q.mix.is_some(), q.bootstrap.is_some());
    if let Some(f) = &a.csv {
        mtkit::util::paths::write_atomic_bytes(f, csv.as_bytes())?;
    }
    if a.json {
        let stdout = std::io::stdout();
        let mut w = stdout.lock();
        for r in &rows {
            writeln!(w, "{}", serde_json::to_string(&json_row(r))?)?;
        }
        eprint!("{}", partial_notes(&profiles));
    } else {
        print!("{}", human(&rows, &profiles));
    }
    Ok(())
}

/// `--overlap EVAL`: each corpus's share of documents (sampled and cut as its profile) that
/// share an n-gram with EVAL (whole), by corpus name.
fn contaminated_shares(
    a: &ProximityArgs,
    eval: &str,
    bar: &mtkit::cli_support::bar::Bar,
) -> Result<std::collections::HashMap<String, f64>> {
    if let Some(saved) = a.corpora.iter().find(|n| {
        n.ends_with(".parquet") && mtkit::data::files::is_mtkit_output(Path::new(n.as_str()))
    }) {
        bail!("--overlap reads each corpus's documents: {saved} is a saved profile; name the corpus instead");
    }
    let mut names = a.corpora.clone();
    names.push(eval.to_string());
    let cat = a.corpus.catalog_for(&names)?;
    let scans = mtkit::analysis::overlap::scan_against_whole_eval(
        &cat.get_all(&a.corpora)?,
        cat.get(eval)?,
        &a.corpus.tokenizer.load()?,
        &a.corpus.sample(),
        a.corpus.max_tokens(),
        a.overlap_n,
        bar,
    )?;
    Ok(scans
        .into_iter()
        .map(|s| (s.row.corpus.clone(), s.row.contaminated_share()))
        .collect())
}

/// What the profiles must hold for `metrics` (see [`mtkit::analysis::proximity::profile_options`]).
fn profile_options(a: &ProximityArgs, metrics: &[Metric]) -> ProfileOptions {
    let base = ProfileOptions {
        sample: a.corpus.sample(),
        max_tokens_per_doc: a.corpus.max_tokens(),
        ngram: a.ngrams.ngram,
        ngram_mode: a.ngrams.mode(),
        keep_docs: false,
    };
    mtkit::analysis::proximity::profile_options(base, metrics, a.bootstrap.is_some())
}

/// `--matrix`: the similarity matrix as CSV (stdout or --csv) and the heatmaps of --plot.
fn write_matrix(
    a: &ProximityArgs,
    refs: &[&Profile],
    metric: Metric,
    mo: &MetricOptions,
) -> Result<()> {
    let m = matrix(refs, metric, mo)?;
    let names: Vec<String> = refs.iter().map(|p| p.meta.corpus.clone()).collect();
    let out = matrix_csv(&names, &m);
    match &a.csv {
        Some(f) => mtkit::util::paths::write_atomic_bytes(f, out.as_bytes())?,
        None => print!("{out}"),
    }
    let figure = mtkit::analysis::plot::Heatmap {
        title: format!("{metric} similarity: row scored against column"),
        labels: &names,
        values: &m,
    };
    for path in &a.plot {
        mtkit::analysis::plot::save(&figure, path)?;
        eprintln!("heatmap written to {}", path.display());
    }
    Ok(())
}

fn load_profiles(names: &[String], ca: &CorpusArgs, opts: &ProfileOptions) -> Result<Vec<Profile>> {
    // Saved profiles are loaded (a damaged one is an error, as before); every other name is a
    // card or a corpus given as a path, a parquet corpus file among them.
    let is_profile = |n: &String| {
        let p = Path::new(n);
        n.ends_with(".parquet")
            && p.is_file()
            && (mtkit::data::files::is_mtkit_output(p)
                || mtkit::util::polars_io::check_parquet_footer(p).is_err())
    };
    let corpora: Vec<&String> = names.iter().filter(|n| !is_profile(n)).collect();
    let cat = ca.catalog_for(&corpora)?;
    let mut tok: Option<Tokenizer> = None;
    let bar = Bar::new(ca.quiet);
    let mut out: Vec<Profile> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        // A corpus named twice (P = T, say) is read once.
        if let Some(j) = names[..i].iter().position(|n| n == name) {
            out.push(out[j].clone());
            continue;
        }
        let path = Path::new(name);
        if is_profile(name) {
            let p = Profile::load(path)?;
            if opts.keep_docs {
                bail!("--bootstrap needs per-document counts, which saved profile {} does not hold: name the corpus instead", path.display());
            }
            out.push(p);
            continue;
        }
        let card = cat.get(name)?;
        if tok.is_none() {
            tok = Some(ca.tokenizer.load()?);
        }
        let (p, _) = cached_or_build(card, tok.as_ref().unwrap(), opts, !ca.no_cache, &bar)?;
        if let Some(note) =
            mtkit::cli_support::output::skipped_note(&p.meta.corpus, &p.totals.skipped, &[])
        {
            eprintln!("{note}");
        }
        out.push(p);
    }
    Ok(out)
}

fn json_row(r: &Row) -> serde_json::Value {
    let mut v = serde_json::json!({
        "corpus": r.corpus,
        "role": r.role,
        "metric": r.metric,
        "sim": r.sim,
        "cosine": r.parts.map(|p| p.cosine),
        "jaccard": r.parts.map(|p| p.jaccard),
        "jsd": r.parts.map(|p| p.jsd),
        "pa": r.pa,
        "mix_token_weight": r.mix_token_weight,
        "sim_ci": r.sim_ci.map(|c| [c.0, c.1]),
        "pa_ci": r.pa_ci.map(|c| [c.0, c.1]),
    });
    if let Some(x) = r.contaminated_share {
        v["contaminated_share"] = x.into();
    }
    v
}

fn human(rows: &[Row], profiles: &[Profile]) -> String {
    let mut out = String::new();
    let target = &profiles.last().unwrap().meta.corpus;
    let boot = rows.iter().any(|r| r.sim_ci.is_some());
    let overlap = rows.iter().any(|r| r.contaminated_share.is_some());
    let mut metric_seen = Vec::new();
    for r in rows {
        if !metric_seen.contains(&r.metric) {
            metric_seen.push(r.metric);
        }
    }
    for m in metric_seen {
        let block: Vec<&Row> = rows.iter().filter(|r| r.metric == m).collect();
        let paper = m == Metric::Paper;
        let mut header = vec!["corpus", "role", "sim"];
        if paper {
            header.extend(["cosine", "jaccard", "jsd"]);
        }
        header.push("PA");
        if boot {
            header.extend(["sim 95% CI", "PA 95% CI"]);
        }
        if overlap {
            header.push("contaminated");
        }
        let body: Vec<Vec<String>> = block
            .iter()
            .map(|r| {
                let mut name = r.corpus.clone();
                if let Some(w) = r.mix_token_weight {
                    name = format!("{name} (blend, {} tokens)", sig(w, 3));
                }
                let mut c = vec![name, r.role.to_string(), sig(r.sim, 6)];
                if let Some(p) = r.parts {
                    c.extend([sig(p.cosine, 6), sig(p.jaccard, 6), sig(p.jsd, 6)]);
                }
                c.push(
                    r.pa.map(|x| format!("{}{}", if x >= 0.0 { "+" } else { "" }, sig(x, 5)))
                        .unwrap_or_default(),
                );
                if boot {
                    let ci = |c: Option<(f64, f64)>| {
                        c.map(|(a, b)| format!("[{}, {}]", sig(a, 4), sig(b, 4)))
                            .unwrap_or_default()
                    };
                    c.extend([ci(r.sim_ci), ci(r.pa_ci)]);
                }
                if overlap {
                    c.push(
                        r.contaminated_share
                            .map(|x| format!("{:.4}", x))
                            .unwrap_or_default(),
                    );
                }
                c
            })
            .collect();
        out.push_str(&format!(
            "metric {m}: similarity to target `{target}`; PA(M→T) = sim(M,T) − sim(P,T)\n"
        ));
        out.push_str(&table(&header, &body));
        out.push('\n');
    }
    let sizes: Vec<String> = profiles
        .iter()
        .map(|p| {
            format!(
                "{} {} docs / {} tokens",
                p.meta.corpus, p.totals.documents, p.totals.tokens
            )
        })
        .collect();
    out.push_str(&format!("sample: {}\n", sizes.join("; ")));
    out.push_str(&partial_notes(profiles));
    out
}

/// Notes on what the numbers mean where the input makes them surprising: a profile that
/// covers only some shards of its corpus (`profile merge --partial`), whose numbers are of that
/// part alone; and a pretraining corpus whose tokens are the target's (the same corpus named
/// twice, say), where sim(P,T) is the largest possible and no PA can be positive.
fn partial_notes(profiles: &[Profile]) -> String {
    let mut out = String::new();
    if let [p, .., t] = profiles {
        if p.unigram == t.unigram && p.totals.tokens > 0 {
            out.push_str(&format!(
                "note: the pretraining corpus `{}` and the target `{}` have the same token counts (the same text): sim(P,T) is already the largest possible, so no candidate can have a positive PA\n",
                p.meta.corpus, t.meta.corpus
            ));
        }
    }
    for p in profiles {
        if let Some(shards) = &p.meta.shards {
            out.push_str(&format!(
                "note: the profile of `{}` covers shards {} of its corpus only, not the whole\n",
                p.meta.corpus,
                shards
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    out
}
