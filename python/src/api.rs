//! The functions of `mtkit._mtkit`, one per command of the CLI: each converts its arguments,
//! runs the library with the GIL released (`released::run_released`) and hands back what the
//! library produced (tables as Arrow IPC stream bytes, metadata as JSON).

use anyhow::{bail, Result};
use mtkit::analysis::proximity::{Metric, MetricOptions, MixBy, MixSpec, Query};
use mtkit::data::catalog::Card;
use mtkit::profile::Profile;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

use crate::{inputs::*, records::*, released::*};

/// Profiles a catalog card (`files` None) or the files, globs or folders `files` (rendered by
/// `text`), through the profile cache unless `cache` is false. With `memory` (bytes) or `tmp`,
/// exact n-grams are counted as `mtkit profile --memory` counts them: held to that budget
/// (default: `mtkit profile`'s), runs spilled to a temporary folder in `tmp` (default: the
/// cache folder) and merged into the cache file, which is then loaded.
#[pyfunction]
#[pyo3(signature = (name, settings, *, catalogs, files, text, cache, progress, memory=None, tmp=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn profile_corpus(
    py: Python<'_>,
    name: String,
    settings: Settings,
    catalogs: Vec<PathBuf>,
    files: Option<Vec<String>>,
    text: Option<String>,
    cache: bool,
    progress: Option<Py<PyAny>>,
    memory: Option<u64>,
    tmp: Option<PathBuf>,
) -> PyResult<NativeProfile> {
    run_released(py, progress.as_ref(), move |bar| {
        let card = card_of(&name, files, text, &catalogs)?;
        let tok = tokenizer(settings.tokenizer.as_deref(), &settings.encoder)?;
        let p = match (memory, tmp) {
            (None, None) => {
                mtkit::profile::cached_or_build(&card, &tok, &settings.options, cache, bar)?.0
            }
            (memory, tmp) => {
                let spill = mtkit::profile::SpillOptions {
                    memory: memory.unwrap_or_else(mtkit::profile::spill::default_memory),
                    dir: tmp.unwrap_or_else(mtkit::util::paths::cache_dir),
                };
                let _interrupt = mtkit::util::progress::InterruptGuard::install();
                let w = mtkit::profile::cached_or_write(
                    &card,
                    &tok,
                    &settings.options,
                    cache,
                    bar,
                    &spill,
                )?;
                Profile::load(&w.path)?
            }
        };
        Ok(wrap(p, card.tokens))
    })
}

/// `memory=` as bytes (a number of bytes, or a size such as "512M" or "2G", the grammar of
/// `--memory`), and what to warn of when it is more than this process can hold.
#[pyfunction]
pub(crate) fn memory_budget(memory: String) -> PyResult<(u64, Option<String>)> {
    let bytes =
        mtkit::util::memory::parse_size(&memory).map_err(|e| to_py(e.context("memory=")))?;
    Ok((
        bytes,
        mtkit::util::memory::over_limit_warning(bytes, "memory="),
    ))
}

/// `profile merge` of loaded profiles: shard profiles of one corpus, counted with the same
/// settings, add exactly; parts that miss shards of their split are refused unless
/// `partial`.
#[pyfunction]
pub(crate) fn merge_profiles(
    py: Python<'_>,
    parts: Vec<PyRef<'_, NativeProfile>>,
    partial: bool,
) -> PyResult<NativeProfile> {
    let profiles: Vec<Profile> = parts.iter().map(|p| p.inner.as_ref().clone()).collect();
    let tokens = parts.first().and_then(|p| p.card_tokens);
    drop(parts);
    py.detach(move || -> Result<NativeProfile> {
        if profiles.is_empty() {
            bail!("merge_profiles needs at least one profile");
        }
        let merged = Profile::merge(&profiles)?;
        mtkit::profile::check_coverage(&merged.meta, partial)?;
        Ok(wrap(merged, tokens))
    })
    .map_err(to_py)
}

/// `mtkit overlap`: the table (Arrow IPC bytes, the columns of `--csv`) and, with `details`,
/// the (document, EVAL item) pairs.
#[pyfunction]
#[pyo3(signature = (corpora, against, n, settings, *, ignore_common, details, catalogs, progress))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn overlap<'py>(
    py: Python<'py>,
    corpora: Vec<CorpusSpec>,
    against: CorpusSpec,
    n: usize,
    settings: Settings,
    ignore_common: Option<f64>,
    details: bool,
    catalogs: Vec<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>)> {
    use mtkit::analysis::overlap::{overlap_frame, pairs_frame, OverlapOptions};
    let (table, pairs) = run_released(py, progress.as_ref(), move |bar| {
        let (cards, eval) = pool_and_target(corpora, against, &catalogs)?;
        let opts = OverlapOptions {
            sample: settings.options.sample.clone(),
            max_tokens_per_doc: settings.options.max_tokens_per_doc,
            n,
            ignore_common,
            details,
            hash_bits: OverlapOptions::hash_bits_from_env()?,
            corpus_shard: None,
        };
        let tok = tokenizer(settings.tokenizer.as_deref(), &settings.encoder)?;
        let refs: Vec<&Card> = cards.iter().collect();
        let o = mtkit::analysis::overlap::overlap(&refs, &eval, &tok, &opts, bar)?;
        let table = mtkit::util::polars_io::ipc_stream_bytes(&mut overlap_frame(&o)?)?;
        let pairs = if details {
            Some(mtkit::util::polars_io::ipc_stream_bytes(&mut pairs_frame(
                &o,
            )?)?)
        } else {
            None
        };
        Ok((table, pairs))
    })?;
    Ok((
        PyBytes::new(py, &table),
        pairs.map(|p| PyBytes::new(py, &p)),
    ))
}

/// `mtkit proximity --overlap EVAL`: each corpus's contaminated share, its documents read as
/// `settings` sample and cut them (as its profile), against every item of EVAL, whole.
#[pyfunction]
#[pyo3(signature = (corpora, against, n, settings, *, catalogs, progress))]
pub(crate) fn contaminated_shares(
    py: Python<'_>,
    corpora: Vec<CorpusSpec>,
    against: CorpusSpec,
    n: usize,
    settings: Settings,
    catalogs: Vec<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Vec<f64>> {
    run_released(py, progress.as_ref(), move |bar| {
        let (cards, eval) = pool_and_target(corpora, against, &catalogs)?;
        let tok = tokenizer(settings.tokenizer.as_deref(), &settings.encoder)?;
        let refs: Vec<&Card> = cards.iter().collect();
        let scans = mtkit::analysis::overlap::scan_against_whole_eval(
            &refs,
            &eval,
            &tok,
            &settings.options.sample,
            settings.options.max_tokens_per_doc,
            n,
            bar,
        )?;
        Ok(scans.iter().map(|s| s.row.contaminated_share()).collect())
    })
}

/// `mtkit tokenize`: each corpus's token files in `output/NAME/` in `format`, as the CLI
/// writes them (the same library function, so the same bytes); returns each corpus's summary
/// as JSON (meta.json's fields, and whether a prompt mask had no place in the format).
#[pyfunction]
#[pyo3(signature = (corpora, output, format, settings, *, val_docs, olmo_file_size, litdata_chunk_tokens, exclude_overlap, overlap_n, catalogs, progress))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn tokenize(
    py: Python<'_>,
    corpora: Vec<CorpusSpec>,
    output: PathBuf,
    format: String,
    settings: Settings,
    val_docs: Option<u64>,
    olmo_file_size: String,
    litdata_chunk_tokens: u64,
    exclude_overlap: Option<CorpusSpec>,
    overlap_n: usize,
    catalogs: Vec<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    use mtkit::export::tokens::trainer_formats::{Format, FormatOptions};
    run_released(py, progress.as_ref(), move |bar| {
        let format: Format = format.parse()?;
        let olmo_file_bytes = match mtkit::util::memory::parse_size(&olmo_file_size) {
            Ok(0) => bail!("olmo_file_size= must be at least one byte"),
            Ok(n) => n,
            Err(e) => bail!("olmo_file_size={olmo_file_size:?}: {e:#}"),
        };
        if litdata_chunk_tokens == 0 {
            bail!("litdata_chunk_tokens= must be at least 1");
        }
        let options = FormatOptions {
            olmo_file_bytes,
            litdata_chunk_tokens,
        };
        let cards = corpora
            .into_iter()
            .map(|(name, files, text)| card_of(&name, files, text, &catalogs))
            .collect::<Result<Vec<Card>>>()?;
        let eval = exclude_overlap
            .map(|(name, files, text)| card_of(&name, files, text, &catalogs))
            .transpose()?;
        let tok = tokenizer(settings.tokenizer.as_deref(), &settings.encoder)?;
        let refs: Vec<&Card> = cards.iter().collect();
        let written = mtkit::export::tokens::write_corpora(
            &refs,
            &tok,
            &settings.options.sample,
            val_docs,
            &output,
            format,
            &options,
            eval.as_ref().map(|e| (e, overlap_n)),
            bar,
        )?;
        let mut summaries = Vec::new();
        for (m, left) in written {
            let mut v = serde_json::to_value(&m)?;
            v["prompt_mask_dropped"] = m.prompt_mask_dropped.into();
            v["left_out_by_overlap"] = (left as u64).into();
            summaries.push(v);
        }
        Ok(serde_json::to_string(&summaries)?)
    })
}

/// `mtkit score`: one row per pool document (Arrow IPC bytes, the columns of `-o`).
#[pyfunction]
#[pyo3(signature = (pool, target, settings, *, ngram, lambda_, catalogs, progress))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn score<'py>(
    py: Python<'py>,
    pool: Vec<CorpusSpec>,
    target: CorpusSpec,
    settings: Settings,
    ngram: usize,
    lambda_: f64,
    catalogs: Vec<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = run_released(py, progress.as_ref(), move |bar| {
        let (pool, target) = pool_and_target(pool, target, &catalogs)?;
        let opts = mtkit::analysis::score::ScoreOptions {
            sample: settings.options.sample.clone(),
            max_tokens_per_doc: settings.options.max_tokens_per_doc,
            ngram,
            lambda: lambda_,
        };
        let tok = tokenizer(settings.tokenizer.as_deref(), &settings.encoder)?;
        let refs: Vec<&Card> = pool.iter().collect();
        let s = mtkit::analysis::score::score(&refs, &target, &tok, &opts, bar)?;
        mtkit::util::polars_io::ipc_stream_bytes(&mut mtkit::analysis::score::scores_frame(&s)?)
    })?;
    Ok(PyBytes::new(py, &bytes))
}

/// `mtkit select`: the selection (Arrow IPC bytes: corpus, record, log_weight, text, in key
/// order) and the report as JSON (the `--report` file's figures).
#[pyfunction]
#[pyo3(signature = (pool, target, settings, *, docs, tokens, fraction, weight, length_norm, top_k, seed, max_share, min_tokens, pretrain, exclude_overlap, overlap_n, dedup, ngram, lambda_, catalogs, progress))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn select<'py>(
    py: Python<'py>,
    pool: Vec<CorpusSpec>,
    target: CorpusSpec,
    settings: Settings,
    docs: Option<u64>,
    tokens: Option<u64>,
    fraction: Option<f64>,
    weight: String,
    length_norm: f64,
    top_k: bool,
    seed: u64,
    max_share: Vec<(String, f64)>,
    min_tokens: u64,
    pretrain: Option<CorpusSpec>,
    exclude_overlap: Option<CorpusSpec>,
    overlap_n: usize,
    dedup: bool,
    ngram: usize,
    lambda_: f64,
    catalogs: Vec<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Bound<'py, PyBytes>, String)> {
    use mtkit::analysis::select::{Budget, SelectOptions, SelectionRequest, Weighting};
    let (frame, report) = run_released(py, progress.as_ref(), move |bar| {
        let budget = match (docs, tokens, fraction) {
            (Some(n), None, None) => Budget::Docs(n),
            (None, Some(n), None) => Budget::Tokens(n),
            (None, None, Some(f)) => Budget::Fraction(f),
            _ => bail!("say how much to select with exactly one of n=, tokens= or fraction="),
        };
        let weighting = match weight.as_str() {
            "per-token" | "per_token" => {
                if !(length_norm > 0.0 && length_norm.is_finite()) {
                    bail!("length_norm must be a positive number of tokens, got {length_norm}");
                }
                Weighting::PerToken { length_norm }
            }
            "sum" => Weighting::Sum,
            other => bail!("weight must be \"per-token\" or \"sum\", got {other:?}"),
        };
        let (pool, target) = pool_and_target(pool, target, &catalogs)?;
        let pretrain = pretrain
            .map(|(n, f, t)| card_of(&n, f, t, &catalogs))
            .transpose()?;
        let eval = exclude_overlap
            .map(|(n, f, t)| card_of(&n, f, t, &catalogs))
            .transpose()?;
        let tok = tokenizer(settings.tokenizer.as_deref(), &settings.encoder)?;
        let refs: Vec<&Card> = pool.iter().collect();
        let sel = mtkit::analysis::select::select(
            SelectionRequest {
                pool: &refs,
                target: &target,
                pretrain: pretrain.as_ref(),
                exclude_overlap: eval.as_ref().map(|e| (e, overlap_n)),
                dedup,
                scores: None,
                score: mtkit::analysis::score::ScoreOptions {
                    sample: settings.options.sample.clone(),
                    max_tokens_per_doc: settings.options.max_tokens_per_doc,
                    ngram,
                    lambda: lambda_,
                },
                select: SelectOptions {
                    weighting,
                    top_k,
                    seed,
                    budget,
                    max_share,
                    min_tokens,
                },
            },
            &tok,
            bar,
        )?;
        let mut df = mtkit::analysis::select::selection_frame(&sel.table, &sel.picks, &sel.texts)?;
        Ok((
            mtkit::util::polars_io::ipc_stream_bytes(&mut df)?,
            serde_json::to_string(&sel.report)?,
        ))
    })?;
    Ok((PyBytes::new(py, &frame), report))
}

/// Profiles the records a Python iterator of batches yields: each batch a list of `str`
/// (rendered as `{"text": s}`), a list of dicts, or a dict of equal-length column lists. Only
/// the template's fields are converted.
#[pyfunction]
#[pyo3(signature = (name, batches, template, settings, *, progress))]
pub(crate) fn profile_records(
    py: Python<'_>,
    name: String,
    batches: Py<PyAny>,
    template: String,
    settings: Settings,
    progress: Option<Py<PyAny>>,
) -> PyResult<NativeProfile> {
    let fields: Vec<String> = mtkit::data::template::Template::parse(&template)
        .map_err(to_py)?
        .fields()
        .into_iter()
        .map(String::from)
        .collect();
    let iterator = batches.bind(py).try_iter()?.into_any().unbind();
    run_released(py, progress.as_ref(), move |bar| {
        let tok = tokenizer(settings.tokenizer.as_deref(), &settings.encoder)?;
        let records = |visit: &mut dyn FnMut(Map<String, Value>) -> Result<()>| -> Result<()> {
            let mut index = 0u64;
            loop {
                let batch = Python::attach(|py| next_batch(py, &iterator, &fields, index))?;
                let Some(batch) = batch else {
                    return Ok(());
                };
                for record in batch {
                    index += 1;
                    visit(record)?;
                }
            }
        };
        let p = mtkit::profile::build_from_records(
            &name,
            &template,
            &records,
            &tok,
            &settings.options,
            bar,
        )?;
        Ok(wrap(p, None))
    })
}

/// Reads a profile saved by `mtkit profile -o` or `Profile.save`.
#[pyfunction]
pub(crate) fn load_profile(py: Python<'_>, path: PathBuf) -> PyResult<NativeProfile> {
    py.detach(move || Profile::load(&path))
        .map(|p| wrap(p, None))
        .map_err(to_py)
}

/// The proximity table of P (first), the candidates and T (last), as Arrow IPC bytes with the
/// columns of `proximity --csv`.
#[pyfunction]
#[pyo3(signature = (profiles, metrics, *, mix, mix_by, bootstrap, seed, smoothing, progress))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn proximity<'py>(
    py: Python<'py>,
    profiles: Vec<Py<NativeProfile>>,
    metrics: Vec<String>,
    mix: Option<f64>,
    mix_by: String,
    bootstrap: Option<usize>,
    seed: u64,
    smoothing: f64,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let metrics = parse_metrics(&metrics)?;
    let all = profiles_of(&profiles);
    let by = match mix_by.as_str() {
        "tokens" => MixBy::Tokens,
        "docs" => MixBy::Docs,
        other => {
            return Err(MtkitError::new_err(format!(
                "mix_by must be \"tokens\" or \"docs\", got {other:?}"
            )))
        }
    };
    let bytes = run_released(py, progress.as_ref(), move |bar| {
        if smoothing <= 0.0 {
            bail!("smoothing must be positive (it keeps log 0 out of cross-entropy and kl)");
        }
        if let Some(b) = bootstrap {
            mtkit::analysis::stats::check_bootstrap(b, "bootstrap")?;
        }
        let refs: Vec<&Profile> = all.iter().map(|p| p.as_ref()).collect();
        let q = Query {
            mix: mix.map(|weight| MixSpec { weight, by }),
            bootstrap: bootstrap.map(|b| (b, seed)),
            ..Query::of_list(&refs, metrics, MetricOptions { smoothing }, bar)?
        };
        let rows = mtkit::analysis::proximity::compute(&q)?;
        let mut df =
            mtkit::analysis::proximity::rows_frame(&rows, q.mix.is_some(), q.bootstrap.is_some())?;
        mtkit::util::polars_io::ipc_stream_bytes(&mut df)
    })?;
    Ok(PyBytes::new(py, &bytes))
}

/// The similarity matrix (entry = sim(row, column)) as Arrow IPC bytes.
#[pyfunction]
pub(crate) fn similarity_matrix<'py>(
    py: Python<'py>,
    profiles: Vec<Py<NativeProfile>>,
    metric: String,
    smoothing: f64,
) -> PyResult<Bound<'py, PyBytes>> {
    let metric: Metric = metric.parse().map_err(to_py)?;
    let all = profiles_of(&profiles);
    let bytes = run_released(py, None, move |_| {
        if all.len() < 2 {
            bail!("a similarity matrix needs at least two corpora");
        }
        if smoothing <= 0.0 {
            bail!("smoothing must be positive");
        }
        let refs: Vec<&Profile> = all.iter().map(|p| p.as_ref()).collect();
        let m = mtkit::analysis::proximity::matrix(&refs, metric, &MetricOptions { smoothing })?;
        let names: Vec<String> = refs.iter().map(|p| p.meta.corpus.clone()).collect();
        mtkit::util::polars_io::ipc_stream_bytes(&mut mtkit::analysis::proximity::matrix_frame(
            &names, &m,
        )?)
    })?;
    Ok(PyBytes::new(py, &bytes))
}

/// Mixture proposals of `suggest-mix` from the profiles of P, the candidates and T (in that
/// order, named by `names`): the proposals table as Arrow IPC bytes, and the notes.
#[pyfunction]
#[pyo3(signature = (names, profiles, *, total_steps, tokens_per_step, max_repeat, min_general, min_weight, start, available, metric, fit, top))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn suggest_mix<'py>(
    py: Python<'py>,
    names: Vec<String>,
    profiles: Vec<Py<NativeProfile>>,
    total_steps: u64,
    tokens_per_step: u64,
    max_repeat: f64,
    min_general: f64,
    min_weight: f64,
    start: String,
    available: Vec<String>,
    metric: String,
    fit: Option<PathBuf>,
    top: usize,
) -> PyResult<(Bound<'py, PyBytes>, Vec<String>)> {
    let metric: Metric = metric.parse().map_err(to_py)?;
    let card_tokens: Vec<Option<u64>> = profiles.iter().map(|p| p.get().card_tokens).collect();
    let all = profiles_of(&profiles);
    let (bytes, notes) = run_released(py, None, move |bar| {
        if names.len() < 3 || names.len() != all.len() {
            bail!("suggest_mix needs P, at least one candidate and T");
        }
        let n = names.len();
        let budget = mtkit::analysis::mix::Budget {
            total_steps,
            tokens_per_step,
            max_repeat,
            min_general,
        };
        let request = mtkit::analysis::mix::Request::new(
            &names[0],
            &names[1..n - 1],
            &names[n - 1],
            budget,
            metric,
            min_weight,
            &start,
            &available,
        )?;
        let owned: Vec<Profile> = all.iter().map(|p| p.as_ref().clone()).collect();
        let found = mtkit::analysis::mix::suggest_from_profiles(
            &request,
            &owned,
            &card_tokens,
            fit.as_deref(),
            top,
            bar,
        )?;
        let mut df = mtkit::export::emit::proposals_frame(&found, &request)?;
        Ok((
            mtkit::util::polars_io::ipc_stream_bytes(&mut df)?,
            found.notes,
        ))
    })?;
    Ok((PyBytes::new(py, &bytes), notes))
}

/// A proposal (the `proposal` column of suggest_mix's table) as trainer config `format`: the
/// text `suggest-mix --emit` prints.
#[pyfunction]
#[pyo3(signature = (proposal, format, *, preset, seq_len, data, lr, sft_epochs))]
pub(crate) fn export(
    proposal: &str,
    format: &str,
    preset: String,
    seq_len: u64,
    data: Option<String>,
    lr: f64,
    sft_epochs: f64,
) -> PyResult<String> {
    let e: mtkit::export::emit::Emit = format.parse().map_err(to_py)?;
    let x: mtkit::export::emit::Exportable = serde_json::from_str(proposal)
        .map_err(|err| MtkitError::new_err(format!("not a proposal of suggest_mix: {err}")))?;
    let o = mtkit::export::emit::EmitOptions {
        preset,
        seq_len,
        data,
        lr,
        sft_epochs,
        // The proposal does not record the catalog it was computed with.
        tokenize_args: String::new(),
    };
    mtkit::export::emit::emit(e, &x, &o).map_err(to_py)
}

/// Regressions of `report regress` on CSV text (`label` names it in messages): the results
/// as Arrow IPC bytes, and the number of rows left out for an empty x or y.
#[pyfunction]
#[pyo3(signature = (csv, label, x, y, *, by, bootstrap, seed))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn regress<'py>(
    py: Python<'py>,
    csv: Vec<u8>,
    label: String,
    x: String,
    y: String,
    by: Option<String>,
    bootstrap: usize,
    seed: u64,
) -> PyResult<(Bound<'py, PyBytes>, usize)> {
    let (bytes, left_out) = run_released(py, None, move |_| {
        mtkit::analysis::stats::check_bootstrap(bootstrap, "bootstrap")?;
        let runs = mtkit::analysis::stats::Table::from_reader(Path::new(&label), csv.as_slice())?;
        let groups = mtkit::analysis::report::Groups::of(&runs, &x, &y, by.as_deref())?;
        if groups.pairs.is_empty() {
            bail!("{label}: no rows with both `{x}` and `{y}`");
        }
        let fits = groups.regress(bootstrap, seed)?;
        let mut df = mtkit::analysis::report::regressions_frame(&fits, &x, &y)?;
        Ok((
            mtkit::util::polars_io::ipc_stream_bytes(&mut df)?,
            groups.left_out,
        ))
    })?;
    Ok((PyBytes::new(py, &bytes), left_out))
}

/// The fields a text template reads, in order.
#[pyfunction]
pub(crate) fn template_fields(template: &str) -> PyResult<Vec<String>> {
    Ok(mtkit::data::template::Template::parse(template)
        .map_err(to_py)?
        .fields()
        .into_iter()
        .map(String::from)
        .collect())
}

/// The metrics' names, `paper` first.
#[pyfunction]
pub(crate) fn metric_names() -> Vec<&'static str> {
    Metric::ALL.iter().map(|m| m.name()).collect()
}

/// Where the default tokenizer is expected (`make setup` installs it there).
#[pyfunction]
pub(crate) fn default_tokenizer_path() -> PathBuf {
    mtkit::tokenize::default_tokenizer_path()
}
