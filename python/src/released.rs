//! The library at work while Python waits: its errors as Python exceptions (Ctrl-C as
//! KeyboardInterrupt, a callback's own exception as itself), its progress handed to the
//! caller's callback, and the GIL released while it runs (the calling thread wakes every
//! 50 ms for signals and progress).

use anyhow::{anyhow, Result};
use mtkit::util::progress::Progress;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

create_exception!(
    _mtkit,
    MtkitError,
    PyException,
    "An error of mtkit's, with the command line's message (file, line or record, field)."
);

/// A Python exception raised inside a callback (the records iterator, say), carried through
/// the library as an error and raised again as itself.
#[derive(Debug)]
pub(crate) struct FromPython(pub(crate) PyErr);

impl std::fmt::Display for FromPython {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for FromPython {}

/// The library's error as a Python exception: Ctrl-C as KeyboardInterrupt, a Python error
/// from a callback as itself, anything else as MtkitError with the CLI's message.
pub(crate) fn to_py(e: anyhow::Error) -> PyErr {
    if e.downcast_ref::<mtkit::util::progress::Interrupted>()
        .is_some()
    {
        return PyKeyboardInterrupt::new_err("interrupted");
    }
    match e.downcast::<FromPython>() {
        Ok(FromPython(err)) => err,
        Err(e) => MtkitError::new_err(in_python_words(&format!("{e:#}"))),
    }
}

/// The library's messages name the command line's flags; a Python caller passed keyword
/// arguments. Each flag the Python functions share becomes its keyword (`--max-docs` →
/// `max_docs=`, `--catalog FILE` → `catalog=FILE`, `--strict` → `strict=True`), outside
/// backquotes (a quoted command stays a command). Flags Python has no keyword for
/// (`--slurm`, `--csv`) stay as they are.
pub(crate) fn in_python_words(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    let mut rest = message;
    while let Some(c) = rest.chars().next() {
        if c == '`' {
            quoted = !quoted;
        } else if !quoted
            && rest.starts_with("--")
            && !out.ends_with(|c: char| c.is_alphanumeric() || c == '-')
        {
            let flag_len = 2 + rest[2..]
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
                .unwrap_or(rest.len() - 2);
            if let Some(keyword) = python_keyword(&rest[..flag_len]) {
                out.push_str(keyword);
                rest = &rest[flag_len..];
                // `--catalog FILE` → `catalog=FILE`, `--ngram-buckets 4096` → `ngram_buckets=4096`:
                // a metavariable or a number joins its keyword.
                if keyword.ends_with('=') {
                    if let Some(value) = rest.strip_prefix(' ') {
                        let word = value
                            .find(|c: char| {
                                !(c.is_ascii_uppercase() || c.is_ascii_digit() || "/._".contains(c))
                            })
                            .unwrap_or(value.len());
                        let joins = value[..word].trim_end_matches(['.', '_']).len();
                        let word = joins;
                        if word > 0
                            && value[..word]
                                .chars()
                                .any(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                        {
                            out.push_str(&value[..word]);
                            rest = &value[word..];
                        }
                    }
                }
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The Python keyword of a command-line flag, for the flags the Python functions take.
fn python_keyword(flag: &str) -> Option<&'static str> {
    Some(match flag {
        "--catalog" => "catalog=",
        "--max-docs" => "max_docs=",
        "--max-chars" => "max_chars=",
        "--max-tokens-per-doc" => "max_tokens_per_doc=",
        "--ngram" => "ngram=",
        "--ngram-buckets" => "ngram_buckets=",
        "--seed" => "seed=",
        "--sample-seed" => "sample_seed=",
        "--strict" => "strict=True",
        "--text" => "text=",
        "--tokenizer" => "tokenizer=",
        "--encoder" => "encoder=",
        "--shard" => "shard=",
        "--memory" => "memory=",
        "--tmp" => "tmp=",
        "--no-cache" => "cache=False",
        "--partial" => "partial=True",
        "--metric" => "metric=",
        "--all-metrics" => "all_metrics=True",
        "--mix" => "mix=",
        "--mix-by" => "mix_by=",
        "--bootstrap" => "bootstrap=",
        "--smoothing" => "smoothing=",
        "--overlap" => "overlap=",
        "--overlap-n" => "overlap_n=",
        "--against" => "against=",
        "--ignore-common" => "ignore_common=",
        "--details" => "details=True",
        "--target" => "target=",
        "--pretrain" => "pretrain=",
        "--lambda" => "lambda_=",
        "--weight" => "weight=",
        "--length-norm" => "length_norm=",
        "--top-k" => "top_k=True",
        "--docs" => "n=",
        "--tokens" => "tokens=",
        "--fraction" => "fraction=",
        "--max-share" => "max_share=",
        "--min-tokens" => "min_tokens=",
        "--dedup" => "dedup=True",
        "--exclude-overlap" => "exclude_overlap=",
        "--format" => "format=",
        "--val-docs" => "val_docs=",
        "--olmo-file-size" => "olmo_file_size=",
        "--litdata-chunk-tokens" => "litdata_chunk_tokens=",
        "--total-steps" => "total_steps=",
        "--tokens-per-step" => "tokens_per_step=",
        "--max-repeat" => "max_repeat=",
        "--min-general" => "min_general=",
        "--min-weight" => "min_weight=",
        "--start" => "start=",
        "--available" => "available=",
        "--fit" => "fit=",
        "--top" => "top=",
        "--preset" => "preset=",
        "--seq-len" => "seq_len=",
        "--lr" => "lr=",
        "--sft-epochs" => "sft_epochs=",
        _ => return None,
    })
}

/// Progress as the library reports it, kept in atomics for the waiting thread to hand on.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) stage: AtomicU64,
    pub(crate) label: Mutex<(String, Option<u64>, String)>,
    pub(crate) done: AtomicU64,
    pub(crate) tokens: AtomicU64,
    pub(crate) finished: AtomicBool,
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
pub(crate) fn run_released<T: Send>(
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
