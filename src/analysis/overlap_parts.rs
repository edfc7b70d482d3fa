//! The shards of an overlap scan and their merge: `mtkit overlap --shard K/N --part FILE.json`
//! writes one shard's tally, `mtkit overlap merge` adds N of them into the table of the whole
//! scan (what `overlap --slurm N` runs as a job array and a merge job).
//!
//! A part holds its corpora's counts, the record indexes of the EVAL items each hits (so that
//! an item hit in two shards counts once) and the (document, item) pairs, with what decides
//! the numbers (EVAL, -n, the tokenizer's SHA-256, the cuts, --ignore-common). The shards of
//! `--shard K/N` partition every corpus's records, and documents are scanned one at a time, so
//! the merge of all N parts is the whole scan exactly: documents, contaminated documents and
//! matched n-grams add; the items hit are the union; the pairs are the concatenation, sorted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::overlap::{Overlap, OverlapPair, OverlapRow};
use crate::data::corpus::Shard;

/// The part format's version.
const FORMAT: u32 = 1;

/// What decides a part's numbers besides its shard: parts merge only when these are equal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartSettings {
    /// The evaluation set's name.
    pub against: String,
    /// The n-gram length.
    pub n: usize,
    /// The tokenizer file's SHA-256.
    pub tokenizer_sha256: String,
    /// The corpora, in the order given.
    pub corpora: Vec<String>,
    /// `--max-chars` (None: whole documents).
    pub max_chars: Option<usize>,
    /// `--max-tokens-per-doc` (None: whole documents).
    pub max_tokens_per_doc: Option<usize>,
    /// `--ignore-common`.
    pub ignore_common: Option<f64>,
}

/// One corpus's tally in a part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartCorpus {
    pub documents: u64,
    pub contaminated_documents: u64,
    pub matched_ngrams: u64,
    /// Record indexes of the EVAL items hit, ascending.
    pub eval_records_hit: Vec<u64>,
}

/// One shard's tally, as `overlap --part` writes it (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverlapPart {
    pub format: u32,
    pub settings: PartSettings,
    pub shard: Shard,
    /// EVAL items read, distinct n-grams kept and dropped by --ignore-common.
    pub eval_items: u64,
    pub eval_ngrams: usize,
    pub eval_ignored: usize,
    /// Per corpus, in the order of `settings.corpora`.
    pub corpora: Vec<PartCorpus>,
    /// (corpus index, record, eval record, shared n-grams, longest span), sorted.
    pub pairs: Vec<(usize, u64, u64, u64, u64)>,
}

impl OverlapPart {
    /// The part of shard `shard` whose scan is `o` (made with `details`, so that the pairs
    /// are there for `overlap merge --details`).
    pub fn of(o: &Overlap, settings: PartSettings, shard: Shard) -> OverlapPart {
        OverlapPart {
            format: FORMAT,
            settings,
            shard,
            eval_items: o.eval_items,
            eval_ngrams: o.eval_ngrams,
            eval_ignored: o.eval_ignored,
            corpora: o
                .rows
                .iter()
                .zip(&o.items_hit)
                .map(|(r, hit)| PartCorpus {
                    documents: r.documents,
                    contaminated_documents: r.contaminated_documents,
                    matched_ngrams: r.matched_ngrams,
                    eval_records_hit: hit.clone(),
                })
                .collect(),
            pairs: o
                .pairs
                .iter()
                .map(|p| {
                    (
                        p.corpus,
                        p.record,
                        p.eval_record,
                        p.shared_ngrams,
                        p.longest_span,
                    )
                })
                .collect(),
        }
    }

    /// Writes the part atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::util::paths::write_atomic_bytes(path, &serde_json::to_vec(self)?)
    }

    /// Reads a part, naming the file when it is not one.
    pub fn load(path: &Path) -> Result<OverlapPart> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the overlap part {}", path.display()))?;
        let part: OverlapPart = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a part of `mtkit overlap --shard K/N --part FILE`",
                path.display()
            )
        })?;
        if part.format != FORMAT {
            bail!(
                "{}: part format {} (this mtkit reads {FORMAT}); scan the shard again",
                path.display(),
                part.format
            );
        }
        if part.shard.index == 0 || part.shard.index > part.shard.count {
            bail!("{}: shard {}: a damaged part", path.display(), part.shard);
        }
        if part.corpora.len() != part.settings.corpora.len() {
            bail!(
                "{}: {} corpus tallies for {} corpora: a damaged part",
                path.display(),
                part.corpora.len(),
                part.settings.corpora.len()
            );
        }
        Ok(part)
    }
}

/// The first setting that differs between two parts, in the words of its flag.
fn difference(a: &PartSettings, b: &PartSettings) -> Option<(&'static str, String, String)> {
    let opt = |x: Option<usize>| x.map_or("none".to_string(), |v| v.to_string());
    let checks: [(&'static str, String, String); 7] = [
        ("--against", a.against.clone(), b.against.clone()),
        ("-n", a.n.to_string(), b.n.to_string()),
        (
            "tokenizer",
            a.tokenizer_sha256[..16.min(a.tokenizer_sha256.len())].to_string(),
            b.tokenizer_sha256[..16.min(b.tokenizer_sha256.len())].to_string(),
        ),
        ("corpora", a.corpora.join(" "), b.corpora.join(" ")),
        ("--max-chars", opt(a.max_chars), opt(b.max_chars)),
        (
            "--max-tokens-per-doc",
            opt(a.max_tokens_per_doc),
            opt(b.max_tokens_per_doc),
        ),
        (
            "--ignore-common",
            a.ignore_common.map_or("none".into(), |f| f.to_string()),
            b.ignore_common.map_or("none".into(), |f| f.to_string()),
        ),
    ];
    checks.into_iter().find(|(_, x, y)| x != y)
}

/// Merges the parts at `paths` (every shard of one split, each once) into the whole scan's
/// table and pairs, with the settings they share. Parts of other settings, a shard missing or
/// given twice, and parts of different splits are refused, naming the files.
pub fn merge_parts(paths: &[PathBuf]) -> Result<(Overlap, PartSettings)> {
    if paths.is_empty() {
        bail!("no parts given to merge");
    }
    let parts: Vec<OverlapPart> = paths
        .iter()
        .map(|p| OverlapPart::load(p))
        .collect::<Result<_>>()?;
    check_one_scan(&parts, paths)?;
    check_every_shard_once(&parts, paths)?;
    Ok((add_up(&parts), parts[0].settings.clone()))
}

/// Refuses parts of different settings, splits or EVAL reads, naming the first part and the
/// one that differs.
fn check_one_scan(parts: &[OverlapPart], paths: &[PathBuf]) -> Result<()> {
    let first = &parts[0];
    for (p, path) in parts.iter().zip(paths).skip(1) {
        if let Some((flag, x, y)) = difference(&first.settings, &p.settings) {
            bail!(
                "different {flag}: {x} in {}, {y} in {}: parts of one scan only",
                paths[0].display(),
                path.display()
            );
        }
        if p.shard.count != first.shard.count {
            bail!(
                "different splits: shard {} in {}, shard {} in {}: parts of one --shard K/N split only",
                first.shard,
                paths[0].display(),
                p.shard,
                path.display()
            );
        }
        if (p.eval_items, p.eval_ngrams) != (first.eval_items, first.eval_ngrams) {
            bail!(
                "EVAL `{}` read differently: {} items ({} n-grams) in {}, {} ({}) in {}: it changed between the shards; scan them again",
                first.settings.against,
                first.eval_items,
                first.eval_ngrams,
                paths[0].display(),
                p.eval_items,
                p.eval_ngrams,
                path.display()
            );
        }
    }
    Ok(())
}

/// Refuses a shard given twice, and missing shards, by name.
fn check_every_shard_once(parts: &[OverlapPart], paths: &[PathBuf]) -> Result<()> {
    let count = parts[0].shard.count;
    let mut seen: Vec<Option<&Path>> = vec![None; count as usize];
    for (p, path) in parts.iter().zip(paths) {
        let slot = &mut seen[(p.shard.index - 1) as usize];
        if let Some(before) = slot {
            bail!(
                "shard {} is given twice: {} and {}",
                p.shard,
                before.display(),
                path.display()
            );
        }
        *slot = Some(path);
    }
    let missing: Vec<String> = (1..=count)
        .filter(|k| seen[(*k - 1) as usize].is_none())
        .map(|k| format!("{k}/{count}"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the parts miss shard{} {} of the split: add {}",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", "),
            if missing.len() > 1 { "them" } else { "it" }
        );
    }
    Ok(())
}

/// The parts' counts added, items united, pairs concatenated and sorted.
fn add_up(parts: &[OverlapPart]) -> Overlap {
    let first = &parts[0];
    let mut rows: Vec<OverlapRow> = first
        .settings
        .corpora
        .iter()
        .map(|c| OverlapRow {
            corpus: c.clone(),
            documents: 0,
            contaminated_documents: 0,
            eval_items_hit: 0,
            matched_ngrams: 0,
        })
        .collect();
    let mut hits: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); rows.len()];
    let mut pairs = Vec::new();
    for p in parts {
        for ((row, hit), c) in rows.iter_mut().zip(&mut hits).zip(&p.corpora) {
            row.documents += c.documents;
            row.contaminated_documents += c.contaminated_documents;
            row.matched_ngrams += c.matched_ngrams;
            hit.extend(&c.eval_records_hit);
        }
        pairs.extend(p.pairs.iter().map(
            |&(corpus, record, eval_record, shared_ngrams, longest_span)| OverlapPair {
                corpus,
                record,
                eval_record,
                shared_ngrams,
                longest_span,
            },
        ));
    }
    for (row, hit) in rows.iter_mut().zip(&hits) {
        row.eval_items_hit = hit.len() as u64;
    }
    pairs.sort_unstable();
    Overlap {
        rows,
        eval_items: first.eval_items,
        eval_ngrams: first.eval_ngrams,
        eval_ignored: first.eval_ignored,
        pairs,
        items_hit: hits.into_iter().map(|h| h.into_iter().collect()).collect(),
    }
}
