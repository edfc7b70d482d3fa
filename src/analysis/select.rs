//! `mtkit select`: documents of a pool drawn toward a target by importance resampling on the
//! weights of [`super::score`], and the report that says, before any training, how much
//! closer the selection is to the target than a random draw of the same size.
//!
//! **The draw** is Gumbel top-k: each eligible document gets the key `w + G`, with
//! `G = −ln(−ln U)` and `U` uniform in (0, 1) from a seeded hash of (seed, corpus name,
//! record index), and the documents with the largest keys are kept. Taking the k largest of
//! `w + G` is exactly drawing k documents without replacement with probability proportional
//! to `exp(w)` at each step (the Plackett–Luce model; Vieira 2014, Kool et al. 2019), which
//! is what DSIR does. `U` depends on nothing but the seed and the document's identity, so
//! the choice is the same on any number of threads, shards or in any file order.
//!
//! **The weight** `w` is `L · log_weight_per_token` by default (`--length-norm L`, 128): the
//! log importance weight a document of L tokens would have at this document's rate. A plain
//! sum (`--weight sum`, DSIR's form) lets a few long documents decide the draw, and a plain
//! per-token rate is so small next to the Gumbel noise (standard deviation 1.28) that the
//! draw is close to uniform; issue 37 measured both on the shared samples. `--top-k` drops
//! the noise and keeps the largest weights.
//!
//! **Budgets**: a number of documents, of tokens (keys are walked in descending order until
//! the total reaches the budget; the last document may pass it), or a fraction of the pool's
//! documents. `--max-share CORPUS=F` caps a source's share of the budget (in its unit) and
//! `--min-tokens K` leaves shorter documents out. A budget the pool or the caps cannot meet
//! is an error that states the shortfall, never a smaller selection.
//!
//! Ties between keys (equal floats) are broken by corpus (in the pool's order), then record
//! index, ascending.

use std::collections::{BTreeMap, HashSet};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::proximity::{similarity, Dist, Metric, MetricOptions};
use super::score::DocScore;
use crate::data::catalog::Card;
use crate::data::corpus::Document;
use crate::tokenize::pipeline::{scan_tokens, scan_tokens_of, TokenScan};
use crate::util::rng::mix64;

/// What a draw weighs each document by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Weighting {
    /// `L · log_weight_per_token`: the weight of an L-token document at this one's rate.
    PerToken {
        /// L, in tokens.
        length_norm: f64,
    },
    /// `log_weight`, the whole document's sum (DSIR's form).
    Sum,
}

impl Weighting {
    /// The draw weight `w` of one scored document.
    pub fn of(&self, d: &DocScore) -> f64 {
        match self {
            Weighting::PerToken { length_norm } => length_norm * d.per_token(),
            Weighting::Sum => d.log_weight,
        }
    }
}

/// How much to select.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    /// This many documents.
    Docs(u64),
    /// Documents until their tokens reach this many.
    Tokens(u64),
    /// This fraction of the pool's documents (rounded to the nearest whole document).
    Fraction(f64),
}

/// Settings of one draw.
#[derive(Clone, Debug)]
pub struct SelectOptions {
    /// The weight each key starts from.
    pub weighting: Weighting,
    /// Keys without the Gumbel noise: the largest weights, no sampling.
    pub top_k: bool,
    /// Seed of the Gumbel noise (and of the report's random draw).
    pub seed: u64,
    /// How much to select.
    pub budget: Budget,
    /// (corpus, F): that corpus's selected share of the budget (documents or tokens, as the
    /// budget counts) is at most F.
    pub max_share: Vec<(String, f64)>,
    /// Documents with fewer tokens are left out.
    pub min_tokens: u64,
}

/// The scored pool a draw picks from: corpus names (the rows' `corpus` indexes them) and one
/// row per document.
#[derive(Clone, Debug)]
pub struct ScoreTable {
    /// Pool corpus names, in the pool's order.
    pub corpora: Vec<String>,
    /// One row per pool document.
    pub rows: Vec<DocScore>,
}

/// One selected document.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pick {
    /// Its row in the [`ScoreTable`].
    pub row: usize,
    /// Its key (`w + G`, or `w` with top-k).
    pub key: f64,
}

/// A stable 64-bit hash of a corpus name (FNV-1a), so the noise of a document does not
/// depend on where its corpus stands in the pool.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A uniform number in (0, 1), never 0 or 1, fixed by (seed, stream, corpus, record): 53 bits
/// of a SplitMix64 hash chain, centred in their interval. `stream` separates independent
/// uses of one seed (0: the Gumbel noise of the draw, 1: the report's random draw).
pub fn uniform(seed: u64, stream: u64, corpus: &str, record: u64) -> f64 {
    let h = mix64(mix64(mix64(seed ^ mix64(stream)) ^ name_hash(corpus)) ^ record);
    ((h >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// The standard Gumbel noise `−ln(−ln U)` of one document under `seed`.
pub fn gumbel(seed: u64, corpus: &str, record: u64) -> f64 {
    -(-uniform(seed, 0, corpus, record).ln()).ln()
}

/// Descending key, then corpus and record ascending.
fn by_key_desc(a: &(f64, usize, &DocScore), b: &(f64, usize, &DocScore)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0)
        .then(a.2.corpus.cmp(&b.2.corpus))
        .then(a.2.record.cmp(&b.2.record))
}

/// The documents of `table` chosen under `opts`, in descending key order.
pub fn draw(table: &ScoreTable, opts: &SelectOptions) -> Result<Vec<Pick>> {
    let caps = caps(table, opts)?;
    let eligible: Vec<(f64, usize, &DocScore)> = table
        .rows
        .iter()
        .enumerate()
        .filter(|(_, d)| d.tokens >= opts.min_tokens)
        .map(|(i, d)| {
            let w = opts.weighting.of(d);
            let key = if opts.top_k {
                w
            } else {
                w + gumbel(opts.seed, &table.corpora[d.corpus], d.record)
            };
            (key, i, d)
        })
        .collect();
    let short = table.rows.len() - eligible.len();
    let why_fewer = if short > 0 {
        format!(
            " ({short} of its {} have fewer than --min-tokens {})",
            table.rows.len(),
            opts.min_tokens
        )
    } else {
        String::new()
    };
    // What the budget asks, in its unit: documents or tokens.
    let (want, in_tokens) = match opts.budget {
        Budget::Docs(0) | Budget::Tokens(0) => bail!("the budget is 0: nothing to select"),
        Budget::Docs(n) => (n, false),
        Budget::Tokens(n) => (n, true),
        Budget::Fraction(f) => {
            if !(f > 0.0 && f <= 1.0) {
                bail!("--fraction must be in (0, 1], got {f}");
            }
            let n = (f * table.rows.len() as f64).round() as u64;
            if n == 0 {
                bail!(
                    "--fraction {f} of the pool's {} documents rounds to 0 documents",
                    table.rows.len()
                );
            }
            (n, false)
        }
    };
    let unit = if in_tokens { "tokens" } else { "documents" };
    let size = |d: &DocScore| if in_tokens { d.tokens } else { 1 };
    let available: u64 = eligible.iter().map(|e| size(e.2)).sum();
    if available < want {
        bail!(
            "asked for {want} {unit}, but the pool has only {available} {unit} to select from{why_fewer}: {} short",
            want - available
        );
    }
    let mut order = eligible;
    order.sort_unstable_by(by_key_desc);
    let mut taken = 0u64;
    let mut per_corpus = vec![0u64; table.corpora.len()];
    let mut capped: BTreeMap<usize, u64> = BTreeMap::new();
    let mut picks = Vec::new();
    for (key, row, d) in order {
        if taken >= want {
            break;
        }
        let s = size(d);
        if let Some(share) = caps[d.corpus] {
            if per_corpus[d.corpus] + s > (share * want as f64).floor() as u64 {
                *capped.entry(d.corpus).or_insert(0) += 1;
                continue;
            }
        }
        per_corpus[d.corpus] += s;
        taken += s;
        picks.push(Pick { row, key });
    }
    if taken < want {
        let which: Vec<String> = capped
            .iter()
            .map(|(c, skipped)| {
                format!(
                    "{} at {} {unit} ({skipped} documents left out)",
                    table.corpora[*c], per_corpus[*c]
                )
            })
            .collect();
        bail!(
            "the --max-share caps leave only {taken} of the {want} {unit} asked for ({} short): capped {}",
            want - taken,
            which.join(", ")
        );
    }
    Ok(picks)
}

/// Each pool corpus's `--max-share` (None: no cap), checked against the pool.
fn caps(table: &ScoreTable, opts: &SelectOptions) -> Result<Vec<Option<f64>>> {
    let mut caps = vec![None; table.corpora.len()];
    for (name, share) in &opts.max_share {
        let Some(i) = table.corpora.iter().position(|c| c == name) else {
            bail!(
                "--max-share {name}={share}: `{name}` is not a pool corpus (the pool: {})",
                table.corpora.join(", ")
            );
        };
        if !(*share > 0.0 && *share <= 1.0) {
            bail!("--max-share {name}={share}: the share must be in (0, 1]");
        }
        caps[i] = Some(*share);
    }
    Ok(caps)
}

/// A uniform draw of `n` documents of the whole pool, the report's baseline: the `n`
/// smallest of `uniform(seed, 1, corpus, record)` (ties as the draw's), as row indexes.
pub fn random_draw(table: &ScoreTable, n: usize, seed: u64) -> Vec<usize> {
    let mut keys: Vec<(f64, usize, &DocScore)> = table
        .rows
        .iter()
        .enumerate()
        .map(|(i, d)| (-uniform(seed, 1, &table.corpora[d.corpus], d.record), i, d))
        .collect();
    keys.sort_unstable_by(by_key_desc);
    keys.into_iter().take(n).map(|k| k.1).collect()
}

/// Kish's effective sample size (Σv)²/Σv² of the importance weights v = exp(w) of the
/// documents a draw may pick: how many equally weighted documents the weights are worth.
/// Computed with w shifted by its maximum (the ratio is unchanged; exp cannot overflow).
pub fn effective_sample_size(table: &ScoreTable, opts: &SelectOptions) -> f64 {
    let w: Vec<f64> = table
        .rows
        .iter()
        .filter(|d| d.tokens >= opts.min_tokens)
        .map(|d| opts.weighting.of(d))
        .collect();
    let Some(max) = w.iter().copied().reduce(f64::max) else {
        return 0.0;
    };
    let (s1, s2) = w.iter().fold((0.0, 0.0), |(a, b), x| {
        let v = (x - max).exp();
        (a + v, b + v * v)
    });
    s1 * s1 / s2
}

/// Documents and tokens of a set of documents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Size {
    pub documents: u64,
    pub tokens: u64,
}

/// One pool corpus's part of the pool and of the selection.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceShare {
    pub corpus: String,
    pub pool: Size,
    pub selected: Size,
    /// Its share of the pool's tokens.
    pub pool_token_share: f64,
    /// Its share of the selection's tokens.
    pub selected_token_share: f64,
}

/// sim (the paper's metric) to the target, and the proximity advantage over P, of one set.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Closeness {
    pub sim: f64,
    pub pa: f64,
    /// −KL(target ‖ this set's unigram counts smoothed by α = 0.01), in nats.
    pub neg_kl: f64,
}

/// What the selection is, before any training: sizes, sources, and how close it is to the
/// target next to a random draw of the same size and the pool as a whole.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub pool: Size,
    pub selected: Size,
    pub random: Size,
    pub sources: Vec<SourceShare>,
    /// The corpus sim and PA are measured against (`the pool` when none was given).
    pub pretrain: String,
    pub selection: Closeness,
    pub random_draw: Closeness,
    pub whole_pool: Closeness,
    /// DSIR's metric on exact unigrams: KL(T ‖ random) − KL(T ‖ selection), nats, α = 0.01.
    pub kl_reduction: f64,
    /// [`effective_sample_size`] of the draw's weights.
    pub effective_sample_size: f64,
    /// Documents the draw could pick (those with at least --min-tokens tokens).
    pub eligible_documents: u64,
    /// The pool documents left out for sharing n-grams with an evaluation set
    /// (--exclude-overlap), before anything else was counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded_by_overlap: Option<Exclusion>,
    /// The n-grams that raise the pool's weights most (when the pool was scored here, not
    /// read from --scores).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drivers: Option<Vec<super::score::Driver>>,
    /// The pool documents left out as copies of an earlier one (--dedup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicates_left_out: Option<Duplicates>,
}

/// Pool documents left out by `--dedup`: their token ids equal those of a document before
/// them (in the pool's corpus order, then record order), which is kept.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Duplicates {
    /// Documents left out, in all.
    pub documents: u64,
    /// Documents left out per pool corpus, in the pool's order.
    pub by_source: Vec<(String, u64)>,
}

/// Pool documents left out by `--exclude-overlap`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Exclusion {
    /// The evaluation set.
    pub against: String,
    /// The n-gram length.
    pub n: usize,
    /// Documents left out, in all.
    pub documents: u64,
    /// Documents left out per pool corpus, in the pool's order.
    pub by_source: Vec<(String, u64)>,
}

/// Unigram counts of the target, of P (None: the pool is P), and of the pool, the selection
/// and the random draw, as read back from the documents.
pub struct Unigrams {
    pub target: Vec<u64>,
    pub pretrain: Option<(String, Vec<u64>)>,
    pub pool: Vec<u64>,
    pub selected: Vec<u64>,
    pub random: Vec<u64>,
}

/// The report of a draw: `picks` and `random` (row indexes) of `table`, with the unigram
/// counts read back from the documents.
pub fn report(
    table: &ScoreTable,
    opts: &SelectOptions,
    picks: &[Pick],
    random: &[usize],
    u: &Unigrams,
) -> Result<Report> {
    let size_of = |rows: &mut dyn Iterator<Item = usize>| {
        rows.fold(Size::default(), |s, r| Size {
            documents: s.documents + 1,
            tokens: s.tokens + table.rows[r].tokens,
        })
    };
    let pool = size_of(&mut (0..table.rows.len()));
    let selected = size_of(&mut picks.iter().map(|p| p.row));
    let random_size = size_of(&mut random.iter().copied());
    let sources = (0..table.corpora.len())
        .map(|c| {
            let of_c = |r: &usize| table.rows[*r].corpus == c;
            let p = size_of(&mut (0..table.rows.len()).filter(of_c));
            let s = size_of(&mut picks.iter().map(|p| p.row).filter(of_c));
            SourceShare {
                corpus: table.corpora[c].clone(),
                pool: p,
                selected: s,
                pool_token_share: p.tokens as f64 / pool.tokens.max(1) as f64,
                selected_token_share: s.tokens as f64 / selected.tokens.max(1) as f64,
            }
        })
        .collect();
    let dist = |c: &[u64]| Dist::from_counts(&c.iter().map(|&x| x as f64).collect::<Vec<_>>());
    let t = dist(&u.target);
    let (pretrain, p) = match &u.pretrain {
        Some((name, c)) => (name.clone(), dist(c)),
        None => ("the pool".to_string(), dist(&u.pool)),
    };
    let mo = MetricOptions::default();
    let sim_p = similarity(Metric::Paper, &p, &t, &mo)?;
    let closeness = |c: &[u64]| -> Result<Closeness> {
        let x = dist(c);
        let sim = similarity(Metric::Paper, &x, &t, &mo)?;
        Ok(Closeness {
            sim,
            pa: sim - sim_p,
            neg_kl: similarity(Metric::Kl, &x, &t, &mo)?,
        })
    };
    let selection = closeness(&u.selected)?;
    let random_draw = closeness(&u.random)?;
    Ok(Report {
        pool,
        selected,
        random: random_size,
        sources,
        pretrain,
        kl_reduction: selection.neg_kl - random_draw.neg_kl,
        selection,
        random_draw,
        whole_pool: closeness(&u.pool)?,
        effective_sample_size: effective_sample_size(table, opts),
        eligible_documents: table
            .rows
            .iter()
            .filter(|d| d.tokens >= opts.min_tokens)
            .count() as u64,
        excluded_by_overlap: None,
        drivers: None,
        duplicates_left_out: None,
    })
}

/// Which rows of each corpus a read-back pass looks for: record → row, per pool corpus.
pub fn rows_by_record(table: &ScoreTable, rows: &[usize]) -> Vec<BTreeMap<u64, usize>> {
    let mut m = vec![BTreeMap::new(); table.corpora.len()];
    for &r in rows {
        let d = &table.rows[r];
        m[d.corpus].insert(d.record, r);
    }
    m
}

/// Rows of `wanted` that `found` lacks (a score file made from other documents).
pub fn missing_rows(wanted: &[BTreeMap<u64, usize>], found: &HashSet<usize>) -> Vec<usize> {
    wanted
        .iter()
        .flat_map(|m| m.values().copied())
        .filter(|r| !found.contains(r))
        .collect()
}

/// The unigram counts of one corpus, read and tokenized as `how` says.
pub fn unigram_counts(card: &Card, stage: &str, how: TokenScan<'_>) -> Result<Vec<u64>> {
    let v = how.tok.vocab_size;
    let parts = scan_tokens(
        card,
        stage,
        how,
        &|| vec![0u64; v],
        &|c: &mut Vec<u64>, _: &Document, ids: &[u32]| add_ids(c, ids),
    )?;
    Ok(sum_counts(parts.states.iter(), v))
}

fn add_ids(counts: &mut [u64], ids: &[u32]) {
    for &i in ids {
        counts[i as usize] += 1;
    }
}

fn sum_counts<'a>(parts: impl Iterator<Item = &'a Vec<u64>>, v: usize) -> Vec<u64> {
    let mut total = vec![0u64; v];
    for p in parts {
        for (t, c) in total.iter_mut().zip(p) {
            *t += c;
        }
    }
    total
}

/// What a worker gathers while the pool is read back.
struct BackState {
    pool: Vec<u64>,
    selected: Vec<u64>,
    random: Vec<u64>,
    texts: Vec<(usize, String)>,
    /// (row, tokens read now) of selected documents whose token count is not the score's.
    mismatched: Vec<(usize, u64)>,
}

/// The selection read back: its texts in pick order, and the pool's, selection's and random
/// draw's unigram counts (the target's and P's are left empty for the caller).
pub struct ReadBack {
    pub texts: Vec<String>,
    pub pool: Vec<u64>,
    pub selected: Vec<u64>,
    pub random: Vec<u64>,
}

/// What the read-back wants of one corpus: the records picked and drawn at random (record →
/// row), those left out of the pool, and whether the pool's unigrams are already counted
/// (then only these records are tokenized, the left-out ones to be taken off).
struct BackWants<'a> {
    selected: &'a BTreeMap<u64, usize>,
    random: &'a BTreeMap<u64, usize>,
    left_out: &'a [u64],
    pool_counted: bool,
}

/// One corpus of the read-back, each worker's counts and texts apart.
fn read_back_corpus(
    card: &Card,
    wants: &BackWants<'_>,
    table: &ScoreTable,
    how: TokenScan<'_>,
) -> Result<crate::tokenize::pipeline::Scanned<BackState>> {
    let v = how.tok.vocab_size;
    let (sel, rnd) = (wants.selected, wants.random);
    let out_of = |d: &Document| wants.left_out.binary_search(&d.index).is_ok();
    let wanted_here = |d: &Document| {
        !wants.pool_counted || sel.contains_key(&d.index) || rnd.contains_key(&d.index) || out_of(d)
    };
    scan_tokens_of(
        card,
        "reading the selection back",
        how,
        &wanted_here,
        &|| BackState {
            pool: vec![0; v],
            selected: vec![0; v],
            random: vec![0; v],
            texts: Vec::new(),
            mismatched: Vec::new(),
        },
        &|s: &mut BackState, d: &Document, ids: &[u32]| {
            // Counted up from nothing, or (with the pool's counts given) the left-out
            // records counted here to be taken off them.
            if out_of(d) == wants.pool_counted {
                add_ids(&mut s.pool, ids);
            }
            if let Some(&row) = sel.get(&d.index) {
                add_ids(&mut s.selected, ids);
                s.texts.push((row, d.text.clone()));
                if ids.len() as u64 != table.rows[row].tokens {
                    s.mismatched.push((row, ids.len() as u64));
                }
            }
            if rnd.contains_key(&d.index) {
                add_ids(&mut s.random, ids);
            }
        },
    )
}

/// One worker's share of the read-back added into `out` and `texts`; a selected document
/// whose token count is not its score's is an error (a score file of other documents).
fn add_back_state(
    out: &mut ReadBack,
    texts: &mut std::collections::HashMap<usize, String>,
    s: BackState,
    table: &ScoreTable,
) -> Result<()> {
    if let Some(&(row, now)) = s.mismatched.first() {
        let d = &table.rows[row];
        bail!(
            "corpus `{}` record {}: the scores say {} tokens, the document has {now} now: the scores were made from other documents or with other cuts (--max-chars, --max-tokens-per-doc, --max-docs)",
            table.corpora[d.corpus], d.record, d.tokens
        );
    }
    for (acc, part) in [
        (&mut out.pool, &s.pool),
        (&mut out.selected, &s.selected),
        (&mut out.random, &s.random),
    ] {
        for (a, c) in acc.iter_mut().zip(part) {
            *a += c;
        }
    }
    texts.extend(s.texts);
    Ok(())
}

/// Reads the pool again (as it was scored), keeping the texts of `picks` and counting the
/// unigrams of the pool (less the records of `left_out`, per corpus, ascending), the picks
/// and the `random` rows. Fails when a picked document is
/// not found or has another token count than its score says (a score file made with other
/// documents or settings).
///
/// `pool_unigrams`, the whole pool's unigram counts when the scoring pass just counted them
/// ([`super::score::Scores::pool_unigrams`]), spares tokenizing the pool again: only the
/// picks, the random draw and the left-out records are tokenized (the last to be taken off
/// the whole). Without them (a `--scores` file) every document is.
pub fn read_back(
    pool: &[&Card],
    table: &ScoreTable,
    picks: &[Pick],
    random: &[usize],
    left_out: &[Vec<u64>],
    how: TokenScan<'_>,
    pool_unigrams: Option<&[u64]>,
) -> Result<ReadBack> {
    let v = how.tok.vocab_size;
    let picked: Vec<usize> = picks.iter().map(|p| p.row).collect();
    let wanted = rows_by_record(table, &picked);
    let drawn = rows_by_record(table, random);
    let mut out = ReadBack {
        texts: Vec::new(),
        pool: vec![0; v],
        selected: vec![0; v],
        random: vec![0; v],
    };
    let mut texts: std::collections::HashMap<usize, String> = Default::default();
    for (ci, card) in pool.iter().enumerate() {
        let out_of_pool = left_out.get(ci).map(Vec::as_slice).unwrap_or(&[]);
        let wants = BackWants {
            selected: &wanted[ci],
            random: &drawn[ci],
            left_out: out_of_pool,
            pool_counted: pool_unigrams.is_some(),
        };
        for s in read_back_corpus(card, &wants, table, how)?.states {
            add_back_state(&mut out, &mut texts, s, table)?;
        }
    }
    if let Some(whole) = pool_unigrams {
        // out.pool holds the left-out records' counts: the pool less them.
        for (left, all) in out.pool.iter_mut().zip(whole) {
            *left = all.saturating_sub(*left);
        }
    }
    let found: HashSet<usize> = texts.keys().copied().collect();
    if let Some(&row) = missing_rows(&wanted, &found).first() {
        let d = &table.rows[row];
        bail!(
            "corpus `{}` has no record {} as read now, but the scores have it: the scores were made from other documents (another --max-docs or --sample-seed, or a changed file)",
            table.corpora[d.corpus],
            d.record
        );
    }
    out.texts = picks
        .iter()
        .map(|p| texts.remove(&p.row).unwrap_or_default())
        .collect();
    Ok(out)
}

/// A score file of `mtkit score` (.parquet or .csv; columns `corpus`, `record`, `tokens`,
/// `log_weight`; others are ignored) as the table of `pool`, whose corpus names its rows must
/// use. Rows are ordered by corpus (the pool's order), then record. A row of a corpus not in
/// the pool, a pool corpus with no row, a repeated (corpus, record), a missing value or a
/// non-finite weight is an error naming the file, the row and the field.
pub fn load_scores(path: &std::path::Path, pool: &[String]) -> Result<ScoreTable> {
    let raw = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => read_scores_csv(path)?,
        Some("parquet") => read_scores_parquet(path)?,
        _ => bail!(
            "--scores {}: name a .parquet or .csv file written by `mtkit score`",
            path.display()
        ),
    };
    let mut rows = Vec::with_capacity(raw.len());
    for (i, (corpus, record, tokens, log_weight)) in raw.into_iter().enumerate() {
        let Some(c) = pool.iter().position(|p| *p == corpus) else {
            bail!(
                "{} row {}: field `corpus` is `{corpus}`, which is not a pool corpus (the pool: {}); score and select the same pool",
                path.display(),
                i + 1,
                pool.join(", ")
            );
        };
        if !log_weight.is_finite() {
            bail!(
                "{} row {}: field `log_weight` is {log_weight}, not a finite number",
                path.display(),
                i + 1
            );
        }
        rows.push(DocScore {
            corpus: c,
            record,
            tokens,
            log_weight,
        });
    }
    rows.sort_by_key(|d| (d.corpus, d.record));
    if let Some(w) = rows
        .windows(2)
        .find(|w| (w[0].corpus, w[0].record) == (w[1].corpus, w[1].record))
    {
        bail!(
            "{}: corpus `{}` record {} has two rows",
            path.display(),
            pool[w[0].corpus],
            w[0].record
        );
    }
    for (c, name) in pool.iter().enumerate() {
        if !rows.iter().any(|d| d.corpus == c) {
            bail!(
                "{}: no row of pool corpus `{name}`: the scores are of another pool",
                path.display()
            );
        }
    }
    Ok(ScoreTable {
        corpora: pool.to_vec(),
        rows,
    })
}

type RawScore = (String, u64, u64, f64);

fn read_scores_csv(path: &std::path::Path) -> Result<Vec<RawScore>> {
    let mut r = csv::Reader::from_path(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let header = r.headers()?.clone();
    let col = |name: &str| -> Result<usize> {
        header.iter().position(|h| h == name).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no column `{name}` (the columns: {})",
                path.display(),
                header.iter().collect::<Vec<_>>().join(", ")
            )
        })
    };
    let (ci, ri, ti, wi) = (
        col("corpus")?,
        col("record")?,
        col("tokens")?,
        col("log_weight")?,
    );
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        // Line i + 2: the header is line 1.
        let line = i + 2;
        let rec = rec.map_err(|e| anyhow::anyhow!("{} line {line}: {e}", path.display()))?;
        let field = |j: usize, name: &str| -> Result<&str> {
            rec.get(j)
                .ok_or_else(|| anyhow::anyhow!("{} line {line}: no field `{name}`", path.display()))
        };
        let parse_u64 = |j: usize, name: &str| -> Result<u64> {
            let s = field(j, name)?;
            s.parse().map_err(|_| {
                anyhow::anyhow!(
                    "{} line {line}: field `{name}` is `{s}`, not a whole number",
                    path.display()
                )
            })
        };
        let w = field(wi, "log_weight")?;
        let w: f64 = w.parse().map_err(|_| {
            anyhow::anyhow!(
                "{} line {line}: field `log_weight` is `{w}`, not a number",
                path.display()
            )
        })?;
        out.push((
            field(ci, "corpus")?.to_string(),
            parse_u64(ri, "record")?,
            parse_u64(ti, "tokens")?,
            w,
        ));
    }
    Ok(out)
}

fn read_scores_parquet(path: &std::path::Path) -> Result<Vec<RawScore>> {
    use polars::prelude::{DataType, ParquetReader, SerReader};
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    crate::util::polars_io::check_parquet_bytes(path, &bytes)?;
    crate::util::polars_io::catch_polars(path, || {
        let df = ParquetReader::new(std::io::Cursor::new(bytes.as_slice()))
            .finish()
            .with_context(|| format!("{} is not a parquet file", path.display()))?;
        let column = |name: &str, ty: DataType| {
            df.column(name)
                .with_context(|| format!("{}: no column `{name}`", path.display()))?
                .cast(&ty)
                .with_context(|| format!("{}: column `{name}` is not of type {ty}", path.display()))
        };
        let corpus = column("corpus", DataType::String)?;
        let record = column("record", DataType::UInt64)?;
        let tokens = column("tokens", DataType::UInt64)?;
        let weight = column("log_weight", DataType::Float64)?;
        let (corpus, record, tokens, weight) =
            (corpus.str()?, record.u64()?, tokens.u64()?, weight.f64()?);
        let mut out = Vec::with_capacity(df.height());
        for i in 0..df.height() {
            let missing = |name: &str| {
                anyhow::anyhow!("{} row {}: field `{name}` is empty", path.display(), i + 1)
            };
            out.push((
                corpus.get(i).ok_or_else(|| missing("corpus"))?.to_string(),
                record.get(i).ok_or_else(|| missing("record"))?,
                tokens.get(i).ok_or_else(|| missing("tokens"))?,
                weight.get(i).ok_or_else(|| missing("log_weight"))?,
            ));
        }
        Ok(out)
    })
}

/// One line of a selection written as JSON Lines, in this field order.
#[derive(Serialize)]
struct SelectedLine<'a> {
    corpus: &'a str,
    record: u64,
    log_weight: f64,
    text: &'a str,
}

/// The selection as JSON Lines: one object per pick, in pick (descending key) order, with
/// `corpus`, `record`, `log_weight` and `text` (the rendered text the score read).
pub fn selection_jsonl(table: &ScoreTable, picks: &[Pick], texts: &[String]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (p, text) in picks.iter().zip(texts) {
        let d = &table.rows[p.row];
        serde_json::to_writer(
            &mut out,
            &SelectedLine {
                corpus: &table.corpora[d.corpus],
                record: d.record,
                log_weight: d.log_weight,
                text,
            },
        )?;
        out.push(b'\n');
    }
    Ok(out)
}

/// The selection as a table with the columns of [`selection_jsonl`], in the same order.
pub fn selection_frame(
    table: &ScoreTable,
    picks: &[Pick],
    texts: &[String],
) -> Result<polars::prelude::DataFrame> {
    use polars::prelude::{Column, DataFrame};
    let rows: Vec<&DocScore> = picks.iter().map(|p| &table.rows[p.row]).collect();
    Ok(DataFrame::new_infer_height(vec![
        Column::new(
            "corpus".into(),
            rows.iter()
                .map(|d| table.corpora[d.corpus].as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "record".into(),
            rows.iter().map(|d| d.record).collect::<Vec<u64>>(),
        ),
        Column::new(
            "log_weight".into(),
            rows.iter().map(|d| d.log_weight).collect::<Vec<f64>>(),
        ),
        Column::new(
            "text".into(),
            texts.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        ),
    ])?)
}

/// Everything one selection reads: the corpora, the scores' settings and the draw's.
pub struct SelectionRequest<'a> {
    /// The pool's corpora, in order.
    pub pool: &'a [&'a Card],
    /// The target.
    pub target: &'a Card,
    /// P of the report's PA (None: the pool).
    pub pretrain: Option<&'a Card>,
    /// An evaluation set whose n-grams (of the given length) leave pool documents out.
    pub exclude_overlap: Option<(&'a Card, usize)>,
    /// Leave out documents whose token ids equal an earlier pool document's.
    pub dedup: bool,
    /// Scores to draw by (`--scores`); None: the pool is scored here by `score`.
    pub scores: Option<ScoreTable>,
    /// How the pool is read and scored (its sample and cuts are those of every pass).
    pub score: super::score::ScoreOptions,
    /// The draw.
    pub select: SelectOptions,
}

/// A selection: the pool's scores (less any excluded documents), the picks in key order,
/// their texts, and the report.
pub struct Selection {
    pub table: ScoreTable,
    pub picks: Vec<Pick>,
    pub texts: Vec<String>,
    pub report: Report,
}

/// Scores (or takes the scores of) the pool, leaves out what overlaps the evaluation set,
/// draws, reads the picks back and reports: `mtkit select` and `mtkit.select` both.
pub fn select(
    req: SelectionRequest<'_>,
    tok: &crate::tokenize::Tokenizer,
    progress: &dyn crate::util::progress::Progress,
) -> Result<Selection> {
    req.score.validate(tok.vocab_size)?;
    let (mut table, drivers, pool_unigrams) = match req.scores {
        Some(t) => (t, None, None),
        None => {
            let s = super::score::score(req.pool, req.target, tok, &req.score, progress)?;
            let table = ScoreTable {
                corpora: s.corpora,
                rows: s.rows,
            };
            (table, Some(s.drivers), Some(s.pool_unigrams))
        }
    };
    let how = TokenScan {
        tok,
        sample: &req.score.sample,
        max_tokens_per_doc: req.score.max_tokens_per_doc,
        progress,
    };
    let (mut left_out, exclusion) = match req.exclude_overlap {
        Some((eval, n)) => {
            let (left_out, exclusion) = exclude_overlap(req.pool, eval, n, how)?;
            (left_out, Some(exclusion))
        }
        None => (vec![Vec::new(); req.pool.len()], None),
    };
    let duplicates = if req.dedup {
        let copies = duplicate_records(req.pool, how)?;
        let by_source: Vec<(String, u64)> = req
            .pool
            .iter()
            .zip(&copies)
            .map(|(c, r)| (c.name.clone(), r.len() as u64))
            .collect();
        for (out, more) in left_out.iter_mut().zip(copies) {
            out.extend(more);
            out.sort_unstable();
            out.dedup();
        }
        Some(Duplicates {
            documents: by_source.iter().map(|(_, n)| n).sum(),
            by_source,
        })
    } else {
        None
    };
    table
        .rows
        .retain(|r| left_out[r.corpus].binary_search(&r.record).is_err());
    let picks = draw(&table, &req.select)?;
    let random = random_draw(&table, picks.len(), req.select.seed);
    let back = read_back(
        req.pool,
        &table,
        &picks,
        &random,
        &left_out,
        how,
        pool_unigrams.as_deref(),
    )?;
    let unigrams = Unigrams {
        target: unigram_counts(req.target, "target unigrams", how)?,
        pretrain: match req.pretrain {
            Some(p) => Some((
                p.name.clone(),
                unigram_counts(p, "pretraining unigrams", how)?,
            )),
            None => None,
        },
        pool: back.pool,
        selected: back.selected,
        random: back.random,
    };
    let mut rep = report(&table, &req.select, &picks, &random, &unigrams)?;
    rep.excluded_by_overlap = exclusion;
    rep.duplicates_left_out = duplicates;
    rep.drivers = drivers;
    Ok(Selection {
        table,
        picks,
        texts: back.texts,
        report: rep,
    })
}

/// The records of each pool corpus that share an n-gram with `eval` (ascending), and the
/// report's account of them.
fn exclude_overlap(
    pool: &[&Card],
    eval: &Card,
    n: usize,
    how: TokenScan<'_>,
) -> Result<(Vec<Vec<u64>>, Exclusion)> {
    let scans = super::overlap::scan_against_whole_eval(
        pool,
        eval,
        how.tok,
        how.sample,
        how.max_tokens_per_doc,
        n,
        how.progress,
    )?;
    let by_source: Vec<(String, u64)> = scans
        .iter()
        .map(|s| (s.row.corpus.clone(), s.contaminated.len() as u64))
        .collect();
    let exclusion = Exclusion {
        against: eval.name.clone(),
        n,
        documents: by_source.iter().map(|(_, n)| n).sum(),
        by_source,
    };
    Ok((
        scans.into_iter().map(|s| s.contaminated).collect(),
        exclusion,
    ))
}

/// The records of each pool corpus (ascending) whose token ids equal those of a document
/// before them, in the pool's corpus order and then record order (the first copy is kept).
/// Documents are compared by their length and two independent 64-bit hashes of their ids
/// (a false match has a chance of about 2^-128 per pair).
pub fn duplicate_records(pool: &[&Card], how: TokenScan<'_>) -> Result<Vec<Vec<u64>>> {
    let mut seen: HashSet<(u64, u64, u64)> = HashSet::new();
    let mut out = Vec::new();
    for card in pool {
        let parts = scan_tokens(
            card,
            "duplicates",
            how,
            &Vec::new,
            &|v: &mut Vec<(u64, (u64, u64, u64))>, d: &Document, ids: &[u32]| {
                let (mut a, mut b) = (0x243F_6A88_85A3_08D3u64, 0x1319_8A2E_0370_7344u64);
                for &id in ids {
                    a = mix64(a ^ u64::from(id));
                    b = mix64(b.rotate_left(17) ^ u64::from(id) ^ 0xA409_3822_299F_31D0);
                }
                v.push((d.index, (ids.len() as u64, a, b)));
            },
        )?;
        let mut docs: Vec<(u64, (u64, u64, u64))> = parts.states.into_iter().flatten().collect();
        docs.sort_unstable_by_key(|(r, _)| *r);
        out.push(
            docs.into_iter()
                .filter(|(_, key)| !seen.insert(*key))
                .map(|(r, _)| r)
                .collect(),
        );
    }
    Ok(out)
}
