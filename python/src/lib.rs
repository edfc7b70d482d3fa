//! `mtkit._mtkit`: the Python package's native module, a thin layer over the `mtkit` library.
//!
//! The rule: no logic of its own. Each function converts Python arguments into the library's
//! types, runs the library with the GIL released, and hands back what the library produced
//! (tables as Arrow IPC stream bytes, which `polars.read_ipc_stream` reads without a second
//! build of polars; metadata as JSON). The pure-Python layer (`python/mtkit/`) shapes
//! arguments and results; every number comes from here.
//!
//! While the library works, the calling thread waits with the GIL released and wakes every
//! 50 ms to check for Ctrl-C (only the main thread may run Python's signal handlers) and to
//! hand progress to the caller's callback. A Python iterable of records is pulled in batches
//! by the library's reader thread, which takes the GIL only for each batch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Value};

use mtkit::analysis::proximity::{Metric, MetricOptions, MixBy, MixSpec, Query};
use mtkit::data::catalog::{Card, Catalog};
use mtkit::data::corpus::SampleSpec;
use mtkit::profile::{NgramMode, Profile, ProfileOptions};
use mtkit::tokenize::{EngineChoice, Tokenizer};
use mtkit::util::progress::Progress;

// The same allocator as the command line (the tokenizer's small vectors; see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

create_exception!(
    _mtkit,
    MtkitError,
    PyException,
    "An error of mtkit's, with the command line's message (file, line or record, field)."
);

/// A Python exception raised inside a callback (the records iterator, say), carried through
/// the library as an error and raised again as itself.
#[derive(Debug)]
struct FromPython(PyErr);

impl std::fmt::Display for FromPython {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for FromPython {}

/// The library's error as a Python exception: Ctrl-C as KeyboardInterrupt, a Python error
/// from a callback as itself, anything else as MtkitError with the CLI's message.
fn to_py(e: anyhow::Error) -> PyErr {
    if e.downcast_ref::<mtkit::util::progress::Interrupted>()
        .is_some()
    {
        return PyKeyboardInterrupt::new_err("interrupted");
    }
    match e.downcast::<FromPython>() {
        Ok(FromPython(err)) => err,
        Err(e) => MtkitError::new_err(format!("{e:#}")),
    }
}

/// Progress as the library reports it, kept in atomics for the waiting thread to hand on.
#[derive(Default)]
struct Shared {
    stage: AtomicU64,
    label: Mutex<(String, Option<u64>, String)>,
    done: AtomicU64,
    tokens: AtomicU64,
    finished: AtomicBool,
}

impl Progress for Shared {
    fn start(&self, label: &str, total: Option<u64>) {
        self.start_counting_units(label, total, "docs");
    }
    fn start_counting(&self, label: &str, total: u64, unit: &str) {
        self.start_counting_units(label, Some(total), unit);
    }
    fn advance(&self, docs: u64, _bytes: u64, tokens: u64) {
        self.done.fetch_add(docs, Ordering::Relaxed);
        self.tokens.fetch_add(tokens, Ordering::Relaxed);
    }
    fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }
}

impl Shared {
    fn start_counting_units(&self, label: &str, total: Option<u64>, unit: &str) {
        *self.label.lock().unwrap() = (label.to_string(), total, unit.to_string());
        self.done.store(0, Ordering::Relaxed);
        self.tokens.store(0, Ordering::Relaxed);
        self.finished.store(false, Ordering::Relaxed);
        self.stage.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `work` with the GIL released, waking every 50 ms to check for Ctrl-C (which asks the
/// library to stop) and to call `callback(stage, label, done, total, unit, tokens, finished)`.
fn run_released<T: Send>(
    py: Python<'_>,
    callback: Option<&Py<PyAny>>,
    work: impl FnOnce(&Shared) -> Result<T> + Send,
) -> PyResult<T> {
    mtkit::util::progress::clear_interrupt();
    let shared = Shared::default();
    let mut pending: Option<PyErr> = None;
    let result = py.detach(|| {
        std::thread::scope(|s| {
            // The worker says when it is done, so a short call returns at once rather than
            // at the next 50 ms tick (a tick per call cost 50 ms on every small profile).
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let shared_ref = &shared;
            let handle = s.spawn(move || {
                let r = work(shared_ref);
                let _ = done_tx.send(());
                r
            });
            let mut last = (0u64, u64::MAX, false);
            loop {
                let finished =
                    done_rx.recv_timeout(Duration::from_millis(50)).is_ok() || handle.is_finished();
                Python::attach(|py| {
                    if pending.is_none() {
                        if let Err(e) = py.check_signals() {
                            mtkit::util::progress::interrupt();
                            pending = Some(e);
                        }
                    }
                    if let Some(cb) = callback {
                        let now = (
                            shared.stage.load(Ordering::Relaxed),
                            shared.done.load(Ordering::Relaxed),
                            shared.finished.load(Ordering::Relaxed),
                        );
                        if now.0 > 0 && now != last {
                            last = now;
                            let (label, total, unit) = shared.label.lock().unwrap().clone();
                            let args = (
                                now.0,
                                label,
                                now.1,
                                total,
                                unit,
                                shared.tokens.load(Ordering::Relaxed),
                                now.2,
                            );
                            // A failing progress callback must not lose the work's result.
                            if let Err(e) = cb.call1(py, args) {
                                e.write_unraisable(py, None);
                            }
                        }
                    }
                });
                if finished {
                    break;
                }
            }
            handle
                .join()
                .unwrap_or_else(|_| Err(anyhow!("mtkit panicked; this is a bug")))
        })
    });
    if let Some(e) = pending {
        // Ctrl-C (or a signal handler's exception) wins over whatever the work returned.
        return Err(e);
    }
    result.map_err(to_py)
}

/// The tokenizer last loaded, kept between calls (a load parses tokenizer.json and builds the
/// fast path): keyed by the file, its size and modification time, and the encoder choice.
type TokenizerKey = (PathBuf, u64, Option<std::time::SystemTime>, String);
static TOKENIZER: Mutex<Option<(TokenizerKey, Arc<Tokenizer>)>> = Mutex::new(None);

fn tokenizer(path: Option<&str>, encoder: &str) -> Result<Arc<Tokenizer>> {
    let engine: EngineChoice = encoder.parse()?;
    let resolved = match path {
        Some(p) => PathBuf::from(p),
        None => match std::env::var_os("MTKIT_TOKENIZER").filter(|p| !p.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => mtkit::tokenize::default_tokenizer_path(),
        },
    };
    let stat = std::fs::metadata(&resolved).ok();
    let key = (
        resolved.clone(),
        stat.as_ref().map(|m| m.len()).unwrap_or(0),
        stat.and_then(|m| m.modified().ok()),
        encoder.to_string(),
    );
    let mut slot = TOKENIZER.lock().unwrap();
    if let Some((k, t)) = slot.as_ref() {
        if *k == key {
            return Ok(t.clone());
        }
    }
    let t = Arc::new(Tokenizer::load_with(path.map(Path::new), engine)?);
    *slot = Some((key, t.clone()));
    Ok(t)
}

/// A corpus's token profile (`mtkit.Profile` wraps it).
#[pyclass(name = "NativeProfile", module = "mtkit._mtkit", frozen)]
struct NativeProfile {
    inner: Arc<Profile>,
    /// The card's `tokens` (its full size) when the profile came from a catalog card.
    card_tokens: Option<u64>,
}

#[pymethods]
impl NativeProfile {
    /// The counts of order `n` as Arrow IPC stream bytes ([`Profile::frame`]).
    fn frame<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyBytes>> {
        let p = self.inner.clone();
        let bytes = py
            .detach(move || mtkit::util::polars_io::ipc_stream_bytes(&mut p.frame(n)?))
            .map_err(to_py)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// What was counted and how, as JSON.
    fn meta_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner.meta).map_err(|e| to_py(e.into()))
    }

    /// Documents, tokens, bytes and skipped records, as JSON.
    fn totals_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner.totals).map_err(|e| to_py(e.into()))
    }

    /// The corpus name.
    #[getter]
    fn name(&self) -> String {
        self.inner.meta.corpus.clone()
    }

    /// The card's full size in tokens, when known.
    #[getter]
    fn card_tokens(&self) -> Option<u64> {
        self.card_tokens
    }

    /// Whether per-document counts (for a bootstrap) are held.
    #[getter]
    fn has_document_counts(&self) -> bool {
        self.inner.docs.is_some()
    }

    /// Saves the profile as `mtkit profile -o` does (parquet, written whole or not at all).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let p = self.inner.clone();
        py.detach(move || p.save(&path)).map_err(to_py)
    }
}

fn wrap(p: Profile, card_tokens: Option<u64>) -> NativeProfile {
    NativeProfile {
        inner: Arc::new(p),
        card_tokens,
    }
}

/// The sampling and counting options of every profile, as the CLI's flags give them.
#[derive(Clone)]
#[pyclass(
    name = "ProfileSettings",
    module = "mtkit._mtkit",
    frozen,
    from_py_object
)]
struct Settings {
    options: ProfileOptions,
    tokenizer: Option<String>,
    encoder: String,
}

#[pymethods]
impl Settings {
    #[new]
    #[pyo3(signature = (*, ngram, ngram_buckets, max_docs, max_chars, max_tokens_per_doc, seed, strict, keep_document_counts, tokenizer, encoder))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        ngram: usize,
        ngram_buckets: Option<u64>,
        max_docs: Option<u64>,
        max_chars: usize,
        max_tokens_per_doc: usize,
        seed: u64,
        strict: bool,
        keep_document_counts: bool,
        tokenizer: Option<String>,
        encoder: String,
    ) -> PyResult<Settings> {
        if max_docs == Some(0) {
            return Err(MtkitError::new_err(
                "max_docs must be a positive number of documents or None (all)",
            ));
        }
        Ok(Settings {
            options: ProfileOptions {
                sample: SampleSpec {
                    max_docs,
                    seed,
                    max_chars: (max_chars > 0).then_some(max_chars),
                    shard: None,
                    strict,
                },
                max_tokens_per_doc: (max_tokens_per_doc > 0).then_some(max_tokens_per_doc),
                ngram,
                ngram_mode: match ngram_buckets {
                    Some(buckets) => NgramMode::Hashed { buckets },
                    None => NgramMode::Exact,
                },
                keep_docs: keep_document_counts,
            },
            tokenizer,
            encoder,
        })
    }

    /// These settings as a proximity question with `metrics` needs them
    /// ([`mtkit::analysis::proximity::profile_options`]).
    fn for_proximity(&self, metrics: Vec<String>, bootstrap: bool) -> PyResult<Settings> {
        let metrics = parse_metrics(&metrics)?;
        Ok(Settings {
            options: mtkit::analysis::proximity::profile_options(
                self.options.clone(),
                &metrics,
                bootstrap,
            ),
            ..self.clone()
        })
    }

    /// The same settings with unigrams only (what suggest-mix reads).
    fn unigrams_only(&self) -> Settings {
        Settings {
            options: ProfileOptions {
                ngram: 1,
                ngram_mode: NgramMode::Exact,
                keep_docs: false,
                ..self.options.clone()
            },
            ..self.clone()
        }
    }
}

fn parse_metrics(names: &[String]) -> PyResult<Vec<Metric>> {
    names
        .iter()
        .map(|m| m.parse::<Metric>().map_err(to_py))
        .collect()
}

/// The catalog: built-in cards, MTKIT_CATALOG, then `catalogs`.
fn catalog(catalogs: &[PathBuf]) -> Result<Catalog> {
    Catalog::load(catalogs)
}

/// Profiles a catalog card (`files` None) or the files, globs or folders `files` (rendered by
/// `text`), through the profile cache unless `cache` is false.
#[pyfunction]
#[pyo3(signature = (name, settings, *, catalogs, files, text, cache, progress))]
#[allow(clippy::too_many_arguments)]
fn profile_corpus(
    py: Python<'_>,
    name: String,
    settings: Settings,
    catalogs: Vec<PathBuf>,
    files: Option<Vec<String>>,
    text: Option<String>,
    cache: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<NativeProfile> {
    run_released(py, progress.as_ref(), move |bar| {
        let card = card_of(&name, files, text, &catalogs)?;
        let tok = tokenizer(settings.tokenizer.as_deref(), &settings.encoder)?;
        let (p, _) = mtkit::profile::cached_or_build(&card, &tok, &settings.options, cache, bar)?;
        Ok(wrap(p, card.tokens))
    })
}

/// A corpus as Python names it: the card `name` (`files` None), or `files` (paths, globs or
/// folders) rendered by `text`. A bare name (no folder, no glob) that is a card is the card,
/// even where a file or folder of that name lies in the working directory: cards come first,
/// as on the command line (`Catalog::add_paths`).
fn card_of(
    name: &str,
    files: Option<Vec<String>>,
    text: Option<String>,
    catalogs: &[PathBuf],
) -> Result<Card> {
    let (files, card_name) = match files {
        Some(paths) if paths.len() == 1 && is_bare(&paths[0]) => {
            match catalog(catalogs)?.get(&paths[0]) {
                Ok(_) => (None, paths[0].clone()),
                Err(_) => (Some(paths), name.to_string()),
            }
        }
        other => (other, name.to_string()),
    };
    Ok(match files {
        Some(paths) => Card::for_files(name, paths, text.as_deref().unwrap_or("{text}")),
        None => {
            let mut card = catalog(catalogs)?.get(&card_name)?.clone();
            if let Some(t) = text {
                card.text = t;
            }
            card
        }
    })
}

/// A corpus given to [`overlap`]: (name, files, text), as [`card_of`] takes them.
type CorpusSpec = (String, Option<Vec<String>>, Option<String>);

/// `mtkit overlap`: the table (Arrow IPC bytes, the columns of `--csv`) and, with `details`,
/// the (document, EVAL item) pairs.
#[pyfunction]
#[pyo3(signature = (corpora, against, n, settings, *, ignore_common, details, catalogs, progress))]
#[allow(clippy::too_many_arguments)]
fn overlap<'py>(
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
fn contaminated_shares(
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

/// `mtkit score`: one row per pool document (Arrow IPC bytes, the columns of `-o`).
#[pyfunction]
#[pyo3(signature = (pool, target, settings, *, ngram, lambda_, catalogs, progress))]
#[allow(clippy::too_many_arguments)]
fn score<'py>(
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

/// The pool's cards and the target's.
fn pool_and_target(
    pool: Vec<CorpusSpec>,
    target: CorpusSpec,
    catalogs: &[PathBuf],
) -> Result<(Vec<Card>, Card)> {
    let pool = pool
        .into_iter()
        .map(|(name, files, text)| card_of(&name, files, text, catalogs))
        .collect::<Result<Vec<Card>>>()?;
    let (name, files, text) = target;
    Ok((pool, card_of(&name, files, text, catalogs)?))
}

/// `mtkit select`: the selection (Arrow IPC bytes: corpus, record, log_weight, text, in key
/// order) and the report as JSON (the `--report` file's figures).
#[pyfunction]
#[pyo3(signature = (pool, target, settings, *, docs, tokens, fraction, weight, length_norm, top_k, seed, max_share, min_tokens, pretrain, exclude_overlap, overlap_n, dedup, ngram, lambda_, catalogs, progress))]
#[allow(clippy::too_many_arguments)]
fn select<'py>(
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

/// Whether `s` could be a card's name: no folder separator and no glob character.
fn is_bare(s: &str) -> bool {
    !s.contains(['/', std::path::MAIN_SEPARATOR, '*', '?', '['])
}

/// Profiles the records a Python iterator of batches yields: each batch a list of `str`
/// (rendered as `{"text": s}`), a list of dicts, or a dict of equal-length column lists. Only
/// the template's fields are converted.
#[pyfunction]
#[pyo3(signature = (name, batches, template, settings, *, progress))]
fn profile_records(
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

/// The next batch of records from `iterator` (None at its end), the template's `fields` of
/// each as JSON values. `first` is the index of the batch's first record, for messages.
fn next_batch(
    py: Python<'_>,
    iterator: &Py<PyAny>,
    fields: &[String],
    first: u64,
) -> Result<Option<Vec<Map<String, Value>>>> {
    let batch = match iterator.bind(py).call_method0("__next__") {
        Ok(b) => b,
        Err(e) if e.is_instance_of::<PyStopIteration>(py) => return Ok(None),
        Err(e) => return Err(FromPython(e).into()),
    };
    let mut out = Vec::new();
    if let Ok(columns) = batch.cast::<PyDict>() {
        // Columnar: {field: [values...]}, as datasets' `iter(batch_size=...)` yields.
        let mut picked = Vec::new();
        let mut rows: Option<usize> = None;
        for f in fields {
            let Some(col) = columns.get_item(f).map_err(FromPython)? else {
                bail!(
                    "record {}: no field `{f}` (the batch has {})",
                    first + 1,
                    column_names(columns)
                );
            };
            let n = col.len().map_err(FromPython)?;
            if rows.is_some_and(|r| r != n) {
                bail!(
                    "a batch's columns differ in length ({} and {n})",
                    rows.unwrap()
                );
            }
            rows = Some(n);
            picked.push((f.clone(), col));
        }
        let rows = rows.unwrap_or(0);
        for i in 0..rows {
            let mut m = Map::new();
            for (f, col) in &picked {
                let v = col.get_item(i).map_err(FromPython)?;
                m.insert(
                    f.clone(),
                    to_json(&v).map_err(|e| located(e, first + i as u64, f))?,
                );
            }
            out.push(m);
        }
        return Ok(Some(out));
    }
    let list = batch.cast::<PyList>().map_err(|_| {
        anyhow!(
            "a batch must be a list or a dict of columns (got {})",
            type_name(&batch)
        )
    })?;
    for (i, item) in list.iter().enumerate() {
        let index = first + i as u64;
        let mut m = Map::new();
        if let Ok(s) = item.cast::<PyString>() {
            let text = s.to_str().map_err(FromPython)?;
            m.insert("text".into(), Value::String(text.to_string()));
        } else if let Ok(d) = item.cast::<PyDict>() {
            for f in fields {
                // An absent field stays absent: the reader reports it as a file's would.
                if let Some(v) = d.get_item(f).map_err(FromPython)? {
                    m.insert(f.clone(), to_json(&v).map_err(|e| located(e, index, f))?);
                }
            }
        } else {
            bail!(
                "record {}: expected a str or a dict, got {}",
                index + 1,
                type_name(&item)
            );
        }
        out.push(m);
    }
    Ok(Some(out))
}

fn located(e: anyhow::Error, index: u64, field: &str) -> anyhow::Error {
    anyhow!("record {}: field `{field}`: {e}", index + 1)
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn column_names(d: &Bound<'_, PyDict>) -> String {
    let names: Vec<String> = d.keys().iter().map(|k| k.to_string()).collect();
    format!("columns {}", names.join(", "))
}

/// A Python value as the JSON value a JSONL record of it would hold (`json.dumps`'s mapping);
/// NaN and infinities, which JSON cannot hold, become null, and other types are refused.
fn to_json(v: &Bound<'_, PyAny>) -> Result<Value> {
    if v.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Value::String(s.to_str().map_err(FromPython)?.to_string()));
    }
    if v.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(v.extract::<bool>().map_err(FromPython)?));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = v.extract::<u64>() {
            return Ok(Value::from(u));
        }
        bail!("an integer too large for JSON's 64 bits");
    }
    if v.is_instance_of::<PyFloat>() {
        let x: f64 = v.extract().map_err(FromPython)?;
        return Ok(serde_json::Number::from_f64(x)
            .map(Value::Number)
            .unwrap_or(Value::Null));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut m = Map::new();
        for (k, x) in d.iter() {
            let key = k
                .cast::<PyString>()
                .map_err(|_| anyhow!("a dict key that is not a str"))?
                .to_str()
                .map_err(FromPython)?
                .to_string();
            m.insert(key, to_json(&x)?);
        }
        return Ok(Value::Object(m));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let mut a = Vec::new();
        for x in v.try_iter().map_err(FromPython)? {
            a.push(to_json(&x.map_err(FromPython)?)?);
        }
        return Ok(Value::Array(a));
    }
    bail!(
        "a {} value, which has no JSON form (convert it to str first)",
        type_name(v)
    )
}

/// Reads a profile saved by `mtkit profile -o` or `Profile.save`.
#[pyfunction]
fn load_profile(py: Python<'_>, path: PathBuf) -> PyResult<NativeProfile> {
    py.detach(move || Profile::load(&path))
        .map(|p| wrap(p, None))
        .map_err(to_py)
}

fn profiles_of(list: &[Py<NativeProfile>]) -> Vec<Arc<Profile>> {
    list.iter().map(|p| p.get().inner.clone()).collect()
}

/// The proximity table of P (first), the candidates and T (last), as Arrow IPC bytes with the
/// columns of `proximity --csv`.
#[pyfunction]
#[pyo3(signature = (profiles, metrics, *, mix, mix_by, bootstrap, seed, smoothing, progress))]
#[allow(clippy::too_many_arguments)]
fn proximity<'py>(
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
fn similarity_matrix<'py>(
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
fn suggest_mix<'py>(
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
    let (bytes, notes) = run_released(py, None, move |_| {
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
fn export(
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
fn regress<'py>(
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
fn template_fields(template: &str) -> PyResult<Vec<String>> {
    Ok(mtkit::data::template::Template::parse(template)
        .map_err(to_py)?
        .fields()
        .into_iter()
        .map(String::from)
        .collect())
}

/// The metrics' names, `paper` first.
#[pyfunction]
fn metric_names() -> Vec<&'static str> {
    Metric::ALL.iter().map(|m| m.name()).collect()
}

/// Where the default tokenizer is expected (`make setup` installs it there).
#[pyfunction]
fn default_tokenizer_path() -> PathBuf {
    mtkit::tokenize::default_tokenizer_path()
}

#[pymodule]
fn _mtkit(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", mtkit::VERSION)?;
    m.add("MtkitError", m.py().get_type::<MtkitError>())?;
    m.add_class::<NativeProfile>()?;
    m.add_class::<Settings>()?;
    m.add_function(wrap_pyfunction!(profile_corpus, m)?)?;
    m.add_function(wrap_pyfunction!(profile_records, m)?)?;
    m.add_function(wrap_pyfunction!(load_profile, m)?)?;
    m.add_function(wrap_pyfunction!(proximity, m)?)?;
    m.add_function(wrap_pyfunction!(similarity_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(suggest_mix, m)?)?;
    m.add_function(wrap_pyfunction!(export, m)?)?;
    m.add_function(wrap_pyfunction!(regress, m)?)?;
    m.add_function(wrap_pyfunction!(overlap, m)?)?;
    m.add_function(wrap_pyfunction!(contaminated_shares, m)?)?;
    m.add_function(wrap_pyfunction!(score, m)?)?;
    m.add_function(wrap_pyfunction!(select, m)?)?;
    m.add_function(wrap_pyfunction!(template_fields, m)?)?;
    m.add_function(wrap_pyfunction!(metric_names, m)?)?;
    m.add_function(wrap_pyfunction!(default_tokenizer_path, m)?)?;
    Ok(())
}
