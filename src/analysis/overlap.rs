//! `mtkit overlap`: how much of an evaluation set each corpus contains, as exact token-id
//! n-grams of the model tokenizer (13 by default, GPT-3's contamination length).
//!
//! The evaluation side (EVAL) is small, so every distinct n-gram of its items goes into one
//! table with the items it occurs in; each corpus then streams past the table at tokenizer
//! speed, memory bounded by EVAL. A window of a corpus document is looked up by a 64-bit hash
//! of its ids, but a match is reported only when the ids are equal to the stored n-gram's: a
//! hash collision is never counted as contamination (tests force collisions by narrowing the
//! hash to a few bits through the environment variable `MTKIT_OVERLAP_HASH_BITS`, a testing
//! knob that changes only speed, never a result).
//!
//! Per corpus: documents scanned, documents with at least one EVAL n-gram (contaminated),
//! EVAL items sharing at least one n-gram with the corpus, and the occurrences in the corpus
//! of n-grams EVAL has (matched n-grams). Per (document, EVAL item) pair, on request: the
//! document's windows whose n-gram occurs in that item (shared n-grams) and the longest run of
//! consecutive such windows, as tokens (run + n − 1: the longest span of the document every
//! n-gram of which the item has; a verbatim copy of the item's first k ≥ n tokens gives k).
//!
//! `--ignore-common F` drops n-grams that occur in more than a share F of EVAL's items before
//! the scan (boilerplate shared by a benchmark's items: a licence header, a prompt template),
//! so they neither mark documents nor items; off by default.

use anyhow::{bail, Result};
use hashbrown::HashMap;

use crate::data::catalog::Card;
use crate::data::corpus::{Document, SampleSpec, Shard};
use crate::tokenize::pipeline::{scan_tokens, TokenScan};
use crate::tokenize::Tokenizer;
use crate::util::progress::Progress;
use crate::util::rng::mix64;

/// GPT-3's contamination n-gram length, the default of `-n`.
pub const DEFAULT_N: usize = 13;

/// What `overlap` reads and how it matches.
#[derive(Clone, Debug)]
pub struct OverlapOptions {
    /// Which documents of each corpus (and of EVAL), and their character cut.
    pub sample: SampleSpec,
    /// Each document's first K tokens (None: whole documents).
    pub max_tokens_per_doc: Option<usize>,
    /// The n-gram length, in tokens.
    pub n: usize,
    /// Skip n-grams that occur in more than this share of EVAL's items.
    pub ignore_common: Option<f64>,
    /// Whether to gather the (document, EVAL item) pairs.
    pub details: bool,
    /// The bits of the lookup hash kept (64; fewer only to force collisions in tests).
    pub hash_bits: u32,
    /// Only this shard of each corpus (`--shard K/N`; EVAL is always read whole of its
    /// sample): the N shards' parts merge into the whole's table ([`merge_parts`]).
    pub corpus_shard: Option<Shard>,
}

impl OverlapOptions {
    /// Refuses settings that mean nothing, naming the flag.
    pub fn validate(&self) -> Result<()> {
        if self.n == 0 {
            bail!("-n must be at least 1 (an n-gram of 0 tokens matches everything)");
        }
        if let Some(f) = self.ignore_common {
            if !(f > 0.0 && f <= 1.0) {
                bail!("--ignore-common must be a share of EVAL's items in (0, 1], got {f}");
            }
        }
        if !(1..=64).contains(&self.hash_bits) {
            bail!(
                "MTKIT_OVERLAP_HASH_BITS must be between 1 and 64, got {}",
                self.hash_bits
            );
        }
        Ok(())
    }

    /// The options' hash width from `MTKIT_OVERLAP_HASH_BITS` (unset: 64).
    pub fn hash_bits_from_env() -> Result<u32> {
        match std::env::var("MTKIT_OVERLAP_HASH_BITS") {
            Err(_) => Ok(64),
            Ok(v) => v.parse().map_err(|_| {
                anyhow::anyhow!("MTKIT_OVERLAP_HASH_BITS must be a number of bits, got `{v}`")
            }),
        }
    }
}

/// EVAL's distinct n-grams, each with the items it occurs in.
pub struct EvalIndex {
    n: usize,
    mask: u64,
    /// The record index of each EVAL item read, by item.
    pub items: Vec<u64>,
    /// The distinct n-grams' ids, n each, one after another.
    ids: Vec<u32>,
    /// Hash → the distinct n-grams with that hash.
    table: HashMap<u64, Vec<u32>>,
    /// One bit per slot of the keys' low bits, set where a key of the table falls: almost
    /// every window of a clean corpus is turned away here, in a bitmap that stays in cache,
    /// before the table is probed.
    seen: Vec<u64>,
    /// Per distinct n-gram: the items it occurs in, ascending, each once.
    gram_items: Vec<Vec<u32>>,
    /// Distinct n-grams kept for the scan (not dropped by --ignore-common).
    pub distinct: usize,
    /// Distinct n-grams dropped by --ignore-common.
    pub ignored: usize,
}

impl EvalIndex {
    /// The index of EVAL's items (`(record, ids)` in record order).
    pub fn build(items: &[(u64, Vec<u32>)], opts: &OverlapOptions) -> EvalIndex {
        let n = opts.n;
        let mut ix = EvalIndex {
            n,
            mask: mask(opts.hash_bits),
            items: items.iter().map(|(r, _)| *r).collect(),
            ids: Vec::new(),
            table: HashMap::new(),
            seen: Vec::new(),
            gram_items: Vec::new(),
            distinct: 0,
            ignored: 0,
        };
        for (item, (_, ids)) in items.iter().enumerate() {
            let item = item as u32;
            let mut keys = Vec::new();
            window_keys(ids, n, ix.mask, |_, h| keys.push(h));
            for (w, h) in ids.windows(n).zip(keys) {
                match ix.find(h, w) {
                    Some(g) => {
                        let at = &mut ix.gram_items[g as usize];
                        if at.last() != Some(&item) {
                            at.push(item);
                        }
                    }
                    None => {
                        let g = ix.gram_items.len() as u32;
                        ix.ids.extend_from_slice(w);
                        ix.gram_items.push(vec![item]);
                        ix.table.entry(h).or_default().push(g);
                    }
                }
            }
        }
        // About 16 bits per distinct n-gram (a false pass in ~6%), from 2^16 to 2^26 bits.
        let bits = (ix.gram_items.len() * 16)
            .next_power_of_two()
            .clamp(1 << 16, 1 << 26);
        ix.seen = vec![0u64; bits / 64];
        for &h in ix.table.keys() {
            let slot = (h as usize) & (bits - 1);
            ix.seen[slot / 64] |= 1 << (slot % 64);
        }
        let mut ignored = 0;
        if let Some(share) = opts.ignore_common {
            let most = share * items.len() as f64;
            for at in ix.gram_items.iter_mut() {
                if at.len() as f64 > most {
                    at.clear(); // an ignored n-gram still matches, but marks nothing
                    ignored += 1;
                }
            }
        }
        ix.distinct = ix.gram_items.len() - ignored;
        ix.ignored = ignored;
        ix
    }

    /// The distinct n-gram equal to `w` (whose key is `h`), if EVAL has it.
    fn find(&self, h: u64, w: &[u32]) -> Option<u32> {
        let n = self.n;
        self.table.get(&h)?.iter().copied().find(|&g| {
            let at = g as usize * n;
            self.ids[at..at + n] == *w
        })
    }

    /// The EVAL n-grams of one document: (window position, distinct n-gram) for every window
    /// whose ids equal an n-gram of EVAL's that was not ignored, by position.
    fn matches(&self, ids: &[u32], out: &mut Vec<(u32, u32)>) {
        out.clear();
        let n = self.n;
        window_keys(ids, n, self.mask, |p, h| {
            let slot = (h as usize) & (self.seen.len() * 64 - 1);
            if self.seen[slot / 64] & (1 << (slot % 64)) == 0 {
                return; // the common case: one bit, no probe
            }
            if let Some(g) = self.find(h, &ids[p..p + n]) {
                if !self.gram_items[g as usize].is_empty() {
                    out.push((p as u32, g));
                }
            }
        });
    }
}

/// Calls `f(p, key)` for the window of `n` ids at each position p: a polynomial hash of the
/// window (Σ (id + 1)·B^(n−1−k) mod 2^64), rolled along in O(1) per token, then mixed and
/// narrowed by `mask`. Equal windows get equal keys; unequal ones may too, so a key only
/// finds candidates.
fn window_keys(ids: &[u32], n: usize, mask: u64, mut f: impl FnMut(usize, u64)) {
    const B: u64 = 0x0000_0100_0000_01B3; // the 64-bit FNV prime: odd
    let top = B.wrapping_pow((n - 1) as u32);
    let mut h = 0u64;
    for (i, &id) in ids.iter().enumerate() {
        if i >= n {
            h = h.wrapping_sub((u64::from(ids[i - n]) + 1).wrapping_mul(top));
        }
        h = h.wrapping_mul(B).wrapping_add(u64::from(id) + 1);
        if i + 1 >= n {
            f(i + 1 - n, mix64(h) & mask);
        }
    }
}

fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// One corpus's contamination with EVAL.
#[derive(Clone, Debug, PartialEq)]
pub struct OverlapRow {
    /// The corpus (card or file name).
    pub corpus: String,
    /// Documents scanned.
    pub documents: u64,
    /// Documents with at least one n-gram of EVAL.
    pub contaminated_documents: u64,
    /// EVAL items sharing at least one n-gram with the corpus.
    pub eval_items_hit: u64,
    /// Occurrences in the corpus of n-grams EVAL has.
    pub matched_ngrams: u64,
}

impl OverlapRow {
    /// contaminated_documents / documents (0 for an empty corpus).
    pub fn contaminated_share(&self) -> f64 {
        ratio(self.contaminated_documents, self.documents)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// One (document, EVAL item) pair that shares n-grams.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OverlapPair {
    /// The document's corpus, as an index into [`Overlap::rows`].
    pub corpus: usize,
    /// The document's record index in its corpus.
    pub record: u64,
    /// The EVAL item's record index.
    pub eval_record: u64,
    /// The document's windows whose n-gram the item has.
    pub shared_ngrams: u64,
    /// The longest run of such consecutive windows, in tokens (run + n − 1).
    pub longest_span: u64,
}

/// What `overlap` found.
pub struct Overlap {
    /// One row per corpus, in the order given.
    pub rows: Vec<OverlapRow>,
    /// EVAL items read.
    pub eval_items: u64,
    /// Distinct n-grams of EVAL used, and dropped by --ignore-common.
    pub eval_ngrams: usize,
    pub eval_ignored: usize,
    /// The pairs (with `details`), by corpus, record, EVAL record.
    pub pairs: Vec<OverlapPair>,
    /// Per row: the record indexes of the EVAL items it hits, ascending (what a shard's
    /// part keeps, so that merged parts count each item once).
    pub items_hit: Vec<Vec<u64>>,
}

impl Overlap {
    /// eval_items_hit / EVAL items, for row `r`.
    pub fn eval_items_share(&self, r: &OverlapRow) -> f64 {
        ratio(r.eval_items_hit, self.eval_items)
    }
}

/// A worker's tally over one corpus.
struct Tally {
    documents: u64,
    contaminated: u64,
    matched: u64,
    items_hit: Vec<bool>,
    pairs: Vec<OverlapPair>,
    records: Vec<u64>,
    scratch: Vec<(u32, u32)>,
}

/// Reads EVAL's items in record order (whole, or as the options cut them).
pub fn read_eval(
    eval: &Card,
    tok: &Tokenizer,
    opts: &OverlapOptions,
    progress: &dyn Progress,
) -> Result<Vec<(u64, Vec<u32>)>> {
    let how = TokenScan {
        tok,
        sample: &opts.sample,
        max_tokens_per_doc: opts.max_tokens_per_doc,
        progress,
    };
    let parts = scan_tokens(
        eval,
        "EVAL n-grams",
        how,
        &Vec::new,
        &|v: &mut Vec<(u64, Vec<u32>)>, d: &Document, ids: &[u32]| v.push((d.index, ids.to_vec())),
    )?;
    let mut items: Vec<(u64, Vec<u32>)> = parts.states.into_iter().flatten().collect();
    items.sort_unstable_by_key(|(r, _)| *r);
    if items.is_empty() {
        bail!(
            "EVAL `{}` has no documents: nothing to check against",
            eval.name
        );
    }
    if items.iter().all(|(_, ids)| ids.len() < opts.n) {
        bail!(
            "no item of EVAL `{}` has {} tokens (the longest has {}): no {}-gram can match; give a smaller -n",
            eval.name,
            opts.n,
            items.iter().map(|(_, ids)| ids.len()).max().unwrap_or(0),
            opts.n
        );
    }
    Ok(items)
}

/// How contaminated each of `corpora` is with `eval` (see the module doc).
pub fn overlap(
    corpora: &[&Card],
    eval: &Card,
    tok: &Tokenizer,
    opts: &OverlapOptions,
    progress: &dyn Progress,
) -> Result<Overlap> {
    opts.validate()?;
    if corpora.is_empty() {
        bail!("no corpora given to check");
    }
    let items = read_eval(eval, tok, opts, progress)?;
    let ix = EvalIndex::build(&items, opts);
    drop(items);
    let mut rows = Vec::new();
    let mut pairs = Vec::new();
    let mut items_hit = Vec::new();
    for (ci, card) in corpora.iter().enumerate() {
        let scan = scan_corpus(ci, card, &ix, tok, opts, progress)?;
        rows.push(scan.row);
        pairs.extend(scan.pairs);
        items_hit.push(scan.items_hit);
    }
    Ok(Overlap {
        rows,
        eval_items: ix.items.len() as u64,
        eval_ngrams: ix.distinct,
        eval_ignored: ix.ignored,
        pairs,
        items_hit,
    })
}

/// One corpus scanned against EVAL.
pub struct CorpusScan {
    /// Its row of the table.
    pub row: OverlapRow,
    /// Its pairs (with `details`), by record then EVAL record.
    pub pairs: Vec<OverlapPair>,
    /// The record indexes of its contaminated documents, ascending.
    pub contaminated: Vec<u64>,
    /// The record indexes of the EVAL items it hits, ascending.
    pub items_hit: Vec<u64>,
}

/// One corpus past the index (corpus `ci` of the call, as its pairs name it).
pub fn scan_corpus(
    ci: usize,
    card: &Card,
    ix: &EvalIndex,
    tok: &Tokenizer,
    opts: &OverlapOptions,
    progress: &dyn Progress,
) -> Result<CorpusScan> {
    let sample = SampleSpec {
        shard: opts.corpus_shard.or(opts.sample.shard),
        ..opts.sample.clone()
    };
    let how = TokenScan {
        tok,
        sample: &sample,
        max_tokens_per_doc: opts.max_tokens_per_doc,
        progress,
    };
    let fresh = || Tally {
        documents: 0,
        contaminated: 0,
        matched: 0,
        items_hit: vec![false; ix.items.len()],
        pairs: Vec::new(),
        records: Vec::new(),
        scratch: Vec::new(),
    };
    let visit = |t: &mut Tally, d: &Document, ids: &[u32]| {
        t.documents += 1;
        let mut found = std::mem::take(&mut t.scratch);
        ix.matches(ids, &mut found);
        if !found.is_empty() {
            t.contaminated += 1;
            t.records.push(d.index);
            t.matched += found.len() as u64;
            if opts.details {
                t.pairs.extend(pairs_of(ci, d.index, &found, ix));
            }
            let mut grams: Vec<u32> = found.iter().map(|&(_, g)| g).collect();
            grams.sort_unstable();
            grams.dedup();
            for g in grams {
                for &item in &ix.gram_items[g as usize] {
                    t.items_hit[item as usize] = true;
                }
            }
        }
        t.scratch = found;
    };
    let parts = scan_tokens(card, "overlap", how, &fresh, &visit)?;
    let mut row = OverlapRow {
        corpus: card.name.clone(),
        documents: 0,
        contaminated_documents: 0,
        eval_items_hit: 0,
        matched_ngrams: 0,
    };
    let mut hit = vec![false; ix.items.len()];
    let mut pairs = Vec::new();
    let mut contaminated = Vec::new();
    for t in parts.states {
        contaminated.extend(t.records);
        row.documents += t.documents;
        row.contaminated_documents += t.contaminated;
        row.matched_ngrams += t.matched;
        for (h, x) in hit.iter_mut().zip(&t.items_hit) {
            *h |= *x;
        }
        pairs.extend(t.pairs);
    }
    row.eval_items_hit = hit.iter().filter(|&&h| h).count() as u64;
    pairs.sort_unstable();
    contaminated.sort_unstable();
    let mut items_hit: Vec<u64> = hit
        .iter()
        .zip(&ix.items)
        .filter(|(h, _)| **h)
        .map(|(_, &r)| r)
        .collect();
    items_hit.sort_unstable();
    Ok(CorpusScan {
        row,
        pairs,
        contaminated,
        items_hit,
    })
}

/// The (document, EVAL item) pairs of one document's matches (by position).
fn pairs_of(ci: usize, record: u64, found: &[(u32, u32)], ix: &EvalIndex) -> Vec<OverlapPair> {
    // Per item: shared windows, the current run (its last position) and the longest run.
    let mut per: HashMap<u32, (u64, u32, u64, u64)> = HashMap::new();
    for &(p, g) in found {
        for &item in &ix.gram_items[g as usize] {
            let e = per.entry(item).or_insert((0, 0, 0, 0));
            let run = if e.0 > 0 && e.1 + 1 == p { e.2 + 1 } else { 1 };
            *e = (e.0 + 1, p, run, e.3.max(run));
        }
    }
    per.into_iter()
        .map(|(item, (shared, _, _, longest))| OverlapPair {
            corpus: ci,
            record,
            eval_record: ix.items[item as usize],
            shared_ngrams: shared,
            longest_span: longest + ix.n as u64 - 1,
        })
        .collect()
}

/// The per-corpus table: `corpus`, `documents`, `contaminated_documents`,
/// `contaminated_share`, `eval_items_hit`, `eval_items_share`, `matched_ngrams`.
pub fn overlap_csv(o: &Overlap) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut w = csv::Writer::from_writer(&mut bytes);
    w.write_record(COLUMNS)?;
    for r in &o.rows {
        w.write_record([
            r.corpus.clone(),
            r.documents.to_string(),
            r.contaminated_documents.to_string(),
            r.contaminated_share().to_string(),
            r.eval_items_hit.to_string(),
            o.eval_items_share(r).to_string(),
            r.matched_ngrams.to_string(),
        ])?;
    }
    w.flush()?;
    drop(w);
    Ok(bytes)
}

/// The columns of [`overlap_csv`].
pub const COLUMNS: [&str; 7] = [
    "corpus",
    "documents",
    "contaminated_documents",
    "contaminated_share",
    "eval_items_hit",
    "eval_items_share",
    "matched_ngrams",
];

/// The contaminated documents of each of `corpora` (as `sample` and `max_tokens_per_doc`
/// read them, the way another stage read them: `select`'s scores, `proximity`'s profiles)
/// against every item of `eval`, whole: what `select --exclude-overlap` leaves out and
/// `proximity --overlap` reports.
pub fn scan_against_whole_eval(
    corpora: &[&Card],
    eval: &Card,
    tok: &Tokenizer,
    sample: &SampleSpec,
    max_tokens_per_doc: Option<usize>,
    n: usize,
    progress: &dyn Progress,
) -> Result<Vec<CorpusScan>> {
    let whole = OverlapOptions {
        sample: SampleSpec {
            max_docs: None,
            max_chars: None,
            shard: None,
            ..sample.clone()
        },
        max_tokens_per_doc: None,
        n,
        ignore_common: None,
        details: false,
        hash_bits: OverlapOptions::hash_bits_from_env()?,
        corpus_shard: None,
    };
    whole.validate()?;
    let ix = EvalIndex::build(&read_eval(eval, tok, &whole, progress)?, &whole);
    let as_read = OverlapOptions {
        sample: sample.clone(),
        max_tokens_per_doc,
        ..whole
    };
    corpora
        .iter()
        .enumerate()
        .map(|(ci, card)| scan_corpus(ci, card, &ix, tok, &as_read, progress))
        .collect()
}

/// The per-corpus table as a frame, the columns of [`overlap_csv`].
pub fn overlap_frame(o: &Overlap) -> Result<polars::prelude::DataFrame> {
    use polars::prelude::{Column, DataFrame};
    let col = |f: &dyn Fn(&OverlapRow) -> u64| o.rows.iter().map(f).collect::<Vec<u64>>();
    Ok(DataFrame::new_infer_height(vec![
        Column::new(
            COLUMNS[0].into(),
            o.rows.iter().map(|r| r.corpus.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(COLUMNS[1].into(), col(&|r| r.documents)),
        Column::new(COLUMNS[2].into(), col(&|r| r.contaminated_documents)),
        Column::new(
            COLUMNS[3].into(),
            o.rows
                .iter()
                .map(|r| r.contaminated_share())
                .collect::<Vec<f64>>(),
        ),
        Column::new(COLUMNS[4].into(), col(&|r| r.eval_items_hit)),
        Column::new(
            COLUMNS[5].into(),
            o.rows
                .iter()
                .map(|r| o.eval_items_share(r))
                .collect::<Vec<f64>>(),
        ),
        Column::new(COLUMNS[6].into(), col(&|r| r.matched_ngrams)),
    ])?)
}

/// The pairs as a table: `corpus`, `record`, `eval_record`, `shared_ngrams`, `longest_span`.
pub fn pairs_frame(o: &Overlap) -> Result<polars::prelude::DataFrame> {
    use polars::prelude::{Column, DataFrame};
    let col = |f: fn(&OverlapPair) -> u64| o.pairs.iter().map(f).collect::<Vec<u64>>();
    let corpus: Vec<&str> = o
        .pairs
        .iter()
        .map(|p| o.rows[p.corpus].corpus.as_str())
        .collect();
    Ok(DataFrame::new_infer_height(vec![
        Column::new("corpus".into(), corpus),
        Column::new("record".into(), col(|p| p.record)),
        Column::new("eval_record".into(), col(|p| p.eval_record)),
        Column::new("shared_ngrams".into(), col(|p| p.shared_ngrams)),
        Column::new("longest_span".into(), col(|p| p.longest_span)),
    ])?)
}
