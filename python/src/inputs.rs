//! Python's arguments as the library's types: the sampling and counting settings, the
//! tokenizer (cached between calls), corpora given as cards, files or records, catalogs, and
//! profiles as `NativeProfile` objects.

use anyhow::Result;
use mtkit::analysis::proximity::Metric;
use mtkit::data::catalog::{Card, Catalog};
use mtkit::data::corpus::SampleSpec;
use mtkit::profile::{NgramMode, Profile, ProfileOptions};
use mtkit::tokenize::{EngineChoice, Tokenizer};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::released::*;

/// The tokenizer last loaded, kept between calls (a load parses tokenizer.json and builds the
/// fast path): keyed by the file, its size and modification time, and the encoder choice.
pub(crate) type TokenizerKey = (PathBuf, u64, Option<std::time::SystemTime>, String);

pub(crate) static TOKENIZER: Mutex<Option<(TokenizerKey, Arc<Tokenizer>)>> = Mutex::new(None);

pub(crate) fn tokenizer(path: Option<&str>, encoder: &str) -> Result<Arc<Tokenizer>> {
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
pub(crate) struct NativeProfile {
    pub(crate) inner: Arc<Profile>,
    /// The card's `tokens` (its full size) when the profile came from a catalog card.
    pub(crate) card_tokens: Option<u64>,
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

pub(crate) fn wrap(p: Profile, card_tokens: Option<u64>) -> NativeProfile {
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
pub(crate) struct Settings {
    pub(crate) options: ProfileOptions,
    pub(crate) tokenizer: Option<String>,
    pub(crate) encoder: String,
}

#[pymethods]
impl Settings {
    #[new]
    #[pyo3(signature = (*, ngram, ngram_buckets, max_docs, max_chars, max_tokens_per_doc, seed, strict, keep_document_counts, tokenizer, encoder, shard=None))]
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
        shard: Option<String>,
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
                    shard: shard
                        .map(|s| s.parse::<mtkit::data::corpus::Shard>())
                        .transpose()
                        .map_err(to_py)?,
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

pub(crate) fn parse_metrics(names: &[String]) -> PyResult<Vec<Metric>> {
    names
        .iter()
        .map(|m| m.parse::<Metric>().map_err(to_py))
        .collect()
}

/// The catalog: built-in cards, MTKIT_CATALOG, then `catalogs`.
pub(crate) fn catalog(catalogs: &[PathBuf]) -> Result<Catalog> {
    Catalog::load(catalogs)
}

/// A corpus as Python names it: the card `name` (`files` None), or `files` (paths, globs or
/// folders) rendered by `text`. A bare name (no folder, no glob) that is a card is the card,
/// even where a file or folder of that name lies in the working directory: cards come first,
/// as on the command line (`Catalog::add_paths`).
pub(crate) fn card_of(
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
pub(crate) type CorpusSpec = (String, Option<Vec<String>>, Option<String>);

/// The pool's cards and the target's.
pub(crate) fn pool_and_target(
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

/// Whether `s` could be a card's name: no folder separator and no glob character.
pub(crate) fn is_bare(s: &str) -> bool {
    !s.contains(['/', std::path::MAIN_SEPARATOR, '*', '?', '['])
}

pub(crate) fn profiles_of(list: &[Py<NativeProfile>]) -> Vec<Arc<Profile>> {
    list.iter().map(|p| p.get().inner.clone()).collect()
}
