//! `mtkit score`: each document of a pool weighed by how much more likely it is under the
//! target's token n-gram distribution than under the pool's own, the importance weight that
//! importance resampling (DSIR, Xie et al. 2023) draws documents by.
//!
//! For each order n = 1..N (token-id n-grams inside one document, no special tokens), with
//! c_T(g) the count of n-gram g over the target's documents and C_T,n the target's n-grams of
//! order n, and c_R(g), C_R,n the same over **every** document of the pool (all pool corpora
//! together):
//!
//! ```text
//! log_weight(x) = Σ_n Σ_{g in x} ln(λ · p_T,n(g) / p_R,n(g) + (1 − λ))
//!     p_T,n(g) = c_T(g) / C_T,n      p_R,n(g) = c_R(g) / C_R,n
//! ```
//!
//! summed over every occurrence of g in document x. This is the log ratio of two models of
//! the document, the target's n-gram distribution interpolated with the pool's (Jelinek-Mercer
//! smoothing, λ·p_T + (1−λ)·p_R) against the pool's alone. Why this estimator rather than
//! DSIR's: DSIR hashes word n-grams into 10,000 buckets and adds a pseudo-count ε to both
//! distributions, so its ratio is that of two smoothed, hashed tables; distinct n-grams that
//! share a bucket are merged and ε is arbitrary. Here the n-grams are exact (the model's own
//! tokens, packed into 64-bit keys) and no pseudo-count is needed: every n-gram of a pool
//! document occurs in the pool, so p_R > 0, and an n-gram the target lacks contributes
//! ln(1 − λ), finite for λ < 1. Only the target's n-grams need a table (the others all weigh
//! ln(1 − λ)), so memory is bounded by the target, not the pool; the pool is read twice
//! (its counts of the target's n-grams, then the weights), streamed.
//!
//! `log_weight_per_token` is `log_weight / max(tokens, 1)`: a sum grows with the document, so
//! the per-token rate compares documents of different lengths.

use anyhow::{bail, Result};
use hashbrown::HashMap;

use crate::data::catalog::Card;
use crate::data::corpus::{Document, SampleSpec};
use crate::profile::{id_bits, pack};
use crate::tokenize::pipeline::{scan_tokens, TokenScan};
use crate::tokenize::Tokenizer;
use crate::util::progress::Progress;

/// What `score` reads and how it weighs.
#[derive(Clone, Debug)]
pub struct ScoreOptions {
    /// Which documents of each corpus (pool and target alike), and their character cut.
    pub sample: SampleSpec,
    /// Each document's first K tokens (None: whole documents).
    pub max_tokens_per_doc: Option<usize>,
    /// The highest n-gram order N (orders 1..=N are used).
    pub ngram: usize,
    /// λ of the interpolation, in (0, 1).
    pub lambda: f64,
}

impl ScoreOptions {
    /// Refuses settings the weight is not defined for, naming the flag.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        if !(self.lambda > 0.0 && self.lambda < 1.0) {
            bail!(
                "--lambda must be between 0 and 1, both excluded (got {}): at 1 an n-gram the target lacks would weigh ln 0, at 0 every weight is 0",
                self.lambda
            );
        }
        let bits = id_bits(vocab_size);
        let max = (64 / bits) as usize;
        if self.ngram == 0 || self.ngram > max {
            bail!(
                "--ngram must be between 1 and {max} for this tokenizer ({vocab_size} ids, {bits} bits each: an n-gram is packed into 64 bits), got {}",
                self.ngram
            );
        }
        Ok(())
    }
}

/// One pool document's weight.
#[derive(Clone, Debug, PartialEq)]
pub struct DocScore {
    /// Index of its corpus among the pool corpora.
    pub corpus: usize,
    /// Its record index within that corpus (the index --shard and sampling use).
    pub record: u64,
    /// Its tokens (after any cut).
    pub tokens: u64,
    /// The sum above.
    pub log_weight: f64,
}

impl DocScore {
    /// `log_weight / max(tokens, 1)`.
    pub fn per_token(&self) -> f64 {
        self.log_weight / self.tokens.max(1) as f64
    }
}

/// The scores of a pool: one row per document, by corpus then record index, and the figures
/// behind them.
#[derive(Debug)]
pub struct Scores {
    /// Pool corpus names, as the rows' `corpus` indexes them.
    pub corpora: Vec<String>,
    /// One row per pool document.
    pub rows: Vec<DocScore>,
    /// C_T,n for n = 1..N.
    pub target_ngrams: Vec<u64>,
    /// C_R,n for n = 1..N.
    pub pool_ngrams: Vec<u64>,
    /// The pool's unigram counts, by token id (every document, as scored): what select's
    /// report needs of the whole pool, counted in the first pass so that the read-back
    /// tokenizes only the picks.
    pub pool_unigrams: Vec<u64>,
    /// Distinct n-grams of the target, per order.
    pub target_distinct: Vec<usize>,
    /// Target documents read.
    pub target_documents: u64,
    /// The n-grams that raise the pool's weights most, largest first (at most
    /// [`DRIVERS_SHOWN`]).
    pub drivers: Vec<Driver>,
}

/// How many [`Driver`]s a score keeps.
pub const DRIVERS_SHOWN: usize = 10;

/// An n-gram of the target that raises the weights of the pool's documents: by how much
/// each occurrence does, and in all.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Driver {
    /// Its token ids.
    pub ids: Vec<u32>,
    /// Its text, decoded.
    pub text: String,
    /// c_T(g).
    pub target_count: u64,
    /// c_R(g).
    pub pool_count: u64,
    /// ln(λ·p_T/p_R + 1 − λ): what one occurrence adds to a document's log weight, 0 for an
    /// n-gram as frequent in the target as in the pool.
    pub lift: f64,
    /// pool_count × lift, over the whole pool.
    pub total: f64,
}

/// Scores every document of `pool` toward `target` (see the module's formula).
pub fn score(
    pool: &[&Card],
    target: &Card,
    tok: &Tokenizer,
    opts: &ScoreOptions,
    progress: &dyn Progress,
) -> Result<Scores> {
    opts.validate(tok.vocab_size)?;
    if pool.is_empty() {
        bail!("no pool corpora given");
    }
    let run = Run {
        tok,
        opts,
        progress,
        bits: id_bits(tok.vocab_size),
    };
    let t = run.target_counts(target)?;
    let (pool_hits, pool_ngrams, pool_unigrams) = run.pool_counts(pool, &t.counts)?;
    // Each target n-gram's term; any other n-gram of the pool weighs ln(1 − λ).
    let lambda = opts.lambda;
    let terms: Vec<HashMap<u64, f64>> = (0..opts.ngram)
        .map(|n| {
            pool_hits[n]
                .iter()
                .map(|(k, &c_r)| {
                    let p_t = t.counts[n][k] as f64 / t.ngrams[n] as f64;
                    let p_r = c_r as f64 / pool_ngrams[n] as f64;
                    (*k, (lambda * p_t / p_r + (1.0 - lambda)).ln())
                })
                .collect()
        })
        .collect();
    let miss = (1.0 - lambda).ln();
    let drivers = drivers(tok, &t.counts, &pool_hits, &terms, run.bits)?;
    let mut rows = Vec::new();
    for (ci, card) in pool.iter().enumerate() {
        rows.extend(run.weigh(ci, card, &terms, miss)?);
    }
    Ok(Scores {
        drivers,
        corpora: pool.iter().map(|c| c.name.clone()).collect(),
        rows,
        target_distinct: t.counts.iter().map(|m| m.len()).collect(),
        target_ngrams: t.ngrams,
        pool_ngrams,
        pool_unigrams,
        target_documents: t.documents,
    })
}

/// The [`DRIVERS_SHOWN`] n-grams of largest summed lift over the pool, lift measured from an
/// n-gram as frequent in the target as in the pool (ties: lower order, then smaller key,
/// first).
fn drivers(
    tok: &Tokenizer,
    target: &[HashMap<u64, u64>],
    pool_hits: &[HashMap<u64, u64>],
    terms: &[HashMap<u64, f64>],
    bits: u32,
) -> Result<Vec<Driver>> {
    let mut all: Vec<(f64, usize, u64)> = Vec::new();
    for (n, hits) in pool_hits.iter().enumerate() {
        for (k, &c) in hits {
            all.push((c as f64 * terms[n][k], n, *k));
        }
    }
    // Only the first few are wanted: partition around the last of them, then sort those.
    let order = |a: &(f64, usize, u64), b: &(f64, usize, u64)| {
        b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
    };
    if all.len() > DRIVERS_SHOWN {
        all.select_nth_unstable_by(DRIVERS_SHOWN, order);
        all.truncate(DRIVERS_SHOWN);
    }
    all.sort_by(order);
    all.into_iter()
        .take(DRIVERS_SHOWN)
        .map(|(total, n, k)| {
            let ids = crate::profile::unpack(k, n + 1, bits);
            Ok(Driver {
                text: tok.decode(&ids)?,
                target_count: target[n][&k],
                pool_count: pool_hits[n][&k],
                lift: terms[n][&k],
                total,
                ids,
            })
        })
        .collect()
}

/// What one `score` call reads with.
struct Run<'a> {
    tok: &'a Tokenizer,
    opts: &'a ScoreOptions,
    progress: &'a dyn Progress,
    bits: u32,
}

/// The target's n-gram counts per order, their totals, and its documents.
struct TargetCounts {
    counts: Vec<HashMap<u64, u64>>,
    ngrams: Vec<u64>,
    documents: u64,
}

/// The first pool pass's counts: c_R of the target's n-grams by order, C_R,n, and the pool's
/// unigram counts by token id.
type PoolCounts = (Vec<HashMap<u64, u64>>, Vec<u64>, Vec<u64>);

impl Run<'_> {
    /// How every pass reads.
    fn how(&self) -> TokenScan<'_> {
        TokenScan {
            tok: self.tok,
            sample: &self.opts.sample,
            max_tokens_per_doc: self.opts.max_tokens_per_doc,
            progress: self.progress,
        }
    }

    /// Pass over the target: c_T(g) for every n-gram, and C_T,n.
    fn target_counts(&self, target: &Card) -> Result<TargetCounts> {
        let (orders, bits) = (self.opts.ngram, self.bits);
        let parts = scan_tokens(
            target,
            "target n-grams",
            self.how(),
            &|| vec![HashMap::new(); orders],
            &|t: &mut Vec<HashMap<u64, u64>>, _: &Document, ids: &[u32]| {
                for_each_ngram(ids, orders, bits, |n, key| {
                    *t[n].entry(key).or_insert(0) += 1
                });
            },
        )?;
        if parts.documents == 0 {
            bail!("target `{}` has no documents", target.name);
        }
        let mut counts: Vec<HashMap<u64, u64>> = vec![HashMap::new(); orders];
        let mut ngrams = vec![0u64; orders];
        for part in parts.states {
            for (n, m) in part.into_iter().enumerate() {
                for (k, c) in m {
                    *counts[n].entry(k).or_insert(0) += c;
                    ngrams[n] += c;
                }
            }
        }
        Ok(TargetCounts {
            counts,
            ngrams,
            documents: parts.documents,
        })
    }

    /// First pass over the pool: c_R(g) for the target's n-grams only, C_R,n, and the pool's
    /// unigram counts by id.
    fn pool_counts(&self, pool: &[&Card], target: &[HashMap<u64, u64>]) -> Result<PoolCounts> {
        let (orders, bits, v) = (self.opts.ngram, self.bits, self.tok.vocab_size);
        let mut hits: Vec<HashMap<u64, u64>> = vec![HashMap::new(); orders];
        let mut ngrams = vec![0u64; orders];
        let mut unigrams = vec![0u64; v];
        let fresh = || {
            (
                vec![HashMap::new(); orders],
                vec![0u64; orders],
                vec![0u64; v],
            )
        };
        let visit = |(h, totals, ids_seen): &mut PoolCounts, _: &Document, ids: &[u32]| {
            for &id in ids {
                ids_seen[id as usize] += 1;
            }
            for_each_ngram(ids, orders, bits, |n, key| {
                totals[n] += 1;
                if target[n].contains_key(&key) {
                    *h[n].entry(key).or_insert(0) += 1;
                }
            });
        };
        for card in pool {
            let stage = "pool counts (1/2)";
            let parts = scan_tokens(card, stage, self.how(), &fresh, &visit)?;
            for (h, totals, ids_seen) in parts.states {
                for n in 0..orders {
                    ngrams[n] += totals[n];
                    for (k, c) in &h[n] {
                        *hits[n].entry(*k).or_insert(0) += c;
                    }
                }
                for (a, c) in unigrams.iter_mut().zip(&ids_seen) {
                    *a += c;
                }
            }
        }
        Ok((hits, ngrams, unigrams))
    }

    /// Second pass over pool corpus `ci`: each document's sum, in the document's own order
    /// (so the same on any thread count), rows by record index.
    fn weigh(
        &self,
        ci: usize,
        card: &Card,
        terms: &[HashMap<u64, f64>],
        miss: f64,
    ) -> Result<Vec<DocScore>> {
        let (orders, bits) = (self.opts.ngram, self.bits);
        let visit = |out: &mut Vec<DocScore>, d: &Document, ids: &[u32]| {
            let mut lw = 0.0f64;
            for_each_ngram(ids, orders, bits, |n, key| {
                lw += terms[n].get(&key).copied().unwrap_or(miss);
            });
            out.push(DocScore {
                corpus: ci,
                record: d.index,
                tokens: ids.len() as u64,
                log_weight: lw,
            });
        };
        let stage = "weights (2/2)";
        let parts = scan_tokens(card, stage, self.how(), &Vec::new, &visit)?;
        let mut rows: Vec<DocScore> = parts.states.into_iter().flatten().collect();
        rows.sort_unstable_by_key(|d| d.record);
        Ok(rows)
    }
}

/// Calls `f(n − 1, key)` for every n-gram of orders 1..=`orders` of `ids`, by position, order
/// by order.
fn for_each_ngram(ids: &[u32], orders: usize, bits: u32, mut f: impl FnMut(usize, u64)) {
    for n in 1..=orders {
        for w in ids.windows(n) {
            f(n - 1, pack(w, bits));
        }
    }
}

/// The scores as a table: `corpus`, `record`, `tokens`, `log_weight`,
/// `log_weight_per_token`, one row per pool document.
pub fn scores_frame(s: &Scores) -> Result<polars::prelude::DataFrame> {
    use polars::prelude::{Column, DataFrame};
    let corpus: Vec<&str> = s
        .rows
        .iter()
        .map(|r| s.corpora[r.corpus].as_str())
        .collect();
    Ok(DataFrame::new_infer_height(vec![
        Column::new("corpus".into(), corpus),
        Column::new(
            "record".into(),
            s.rows.iter().map(|r| r.record).collect::<Vec<u64>>(),
        ),
        Column::new(
            "tokens".into(),
            s.rows.iter().map(|r| r.tokens).collect::<Vec<u64>>(),
        ),
        Column::new(
            "log_weight".into(),
            s.rows.iter().map(|r| r.log_weight).collect::<Vec<f64>>(),
        ),
        Column::new(
            "log_weight_per_token".into(),
            s.rows.iter().map(|r| r.per_token()).collect::<Vec<f64>>(),
        ),
    ])?)
}
