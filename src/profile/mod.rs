//! Token profiles: exact unigram counts and n-gram counts up to order N of a corpus sample.
//!
//! Unigram counts are always exact. N-grams (order ≥ 2) are counted either exactly (each
//! n-gram's ids packed into a 64-bit key; needs N × ⌈log2 vocab⌉ ≤ 64 bits, so up to 4-grams
//! for vocabularies of at most 65,536 ids) or, in bounded mode, into a fixed number of hashed
//! buckets per order (the hashed n-gram features of DSIR): memory is fixed, bucket counts are
//! exact sums, but distinct n-grams that share a bucket are merged, so n-gram similarities are
//! approximate. Both modes merge exactly across shards.
//!
//! A profile is saved as one parquet file (columns `order, t1..tN, bucket, count`) whose
//! key-value metadata `mtkit.profile` holds the JSON [`ProfileMeta`] and totals.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::catalog::Card;
use crate::data::corpus::{SampleSpec, Shard};
use crate::tokenize::pipeline::{read_batches_of, Batch, Batching};
use crate::tokenize::{Encoder, Engine, Tokenizer};
use crate::util::progress::Progress;
use crate::util::rng::mix64;

pub mod spill;
pub mod stream;
pub use spill::{SpillOptions, SpillStats};
pub use stream::{merge_files, ProfileRows, ProfileWriter};

/// Version of the profile file layout; part of the cache key.
pub const FORMAT_VERSION: u32 = 2;

/// How n-grams of order ≥ 2 are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum NgramMode {
    /// Every distinct n-gram counted (memory grows with the number of distinct n-grams).
    Exact,
    /// Counts summed into `buckets` hashed buckets per order (fixed memory, approximate).
    Hashed {
        /// Buckets per order.
        buckets: u64,
    },
}

/// Everything that decides a profile's numbers, plus where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileMeta {
    /// Profile layout version.
    pub format: u32,
    /// mtkit version that made it.
    pub mtkit_version: String,
    /// Corpus name.
    pub corpus: String,
    /// Hash of the card and its files (see `Card::content_hash`).
    pub card_hash: String,
    /// Catalog the card came from.
    pub card_origin: String,
    /// Tokenizer file.
    pub tokenizer_path: String,
    /// SHA-256 of the tokenizer file.
    pub tokenizer_sha256: String,
    /// Tokenizer vocabulary size (added tokens included).
    pub vocab_size: usize,
    /// Documents kept (`None`: all).
    pub max_docs: Option<u64>,
    /// Sampling seed.
    pub seed: u64,
    /// Characters kept per document.
    pub max_chars: Option<usize>,
    /// Tokens kept per document.
    pub max_tokens_per_doc: Option<usize>,
    /// The shards this profile covers (`None`: the whole corpus).
    pub shards: Option<Vec<Shard>>,
    /// Highest n-gram order counted.
    pub ngram: usize,
    /// How orders ≥ 2 were counted.
    pub ngram_mode: NgramMode,
    /// Which engine encoded (`fast` or `hf`; the ids are the same, and the cache keeps them
    /// apart so that a check with `--encoder hf` recomputes).
    #[serde(default = "default_engine")]
    pub encoder: Engine,
}

fn default_engine() -> Engine {
    Engine::Hf
}

/// Totals over the profiled documents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Documents profiled.
    pub documents: u64,
    /// Tokens profiled.
    pub tokens: u64,
    /// UTF-8 bytes of the profiled (cut) documents.
    pub bytes: u64,
    /// Records skipped as bad, by kind.
    pub skipped: BTreeMap<String, u64>,
}

/// Counts of one n-gram order ≥ 2.
#[derive(Clone, Debug, PartialEq)]
pub enum NgramCounts {
    /// (packed n-gram key, count), sorted by key, keys distinct.
    Exact(Vec<(u64, u64)>),
    /// Bucket → count.
    Hashed(Vec<u64>),
}

impl NgramCounts {
    fn add(&mut self, other: &NgramCounts) {
        match (self, other) {
            (NgramCounts::Exact(a), NgramCounts::Exact(b)) => merge_pairs_in_place(a, b),
            (NgramCounts::Hashed(a), NgramCounts::Hashed(b)) => {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
            }
            _ => unreachable!("n-gram modes are checked before merging"),
        }
    }

    /// The count of an exact n-gram key (0 when absent or in hashed mode).
    pub fn count(&self, key: u64) -> u64 {
        match self {
            NgramCounts::Exact(v) => v
                .binary_search_by_key(&key, |(k, _)| *k)
                .map(|i| v[i].1)
                .unwrap_or(0),
            NgramCounts::Hashed(_) => 0,
        }
    }

    /// Distinct keys (exact) or non-empty buckets (hashed).
    pub fn distinct(&self) -> usize {
        match self {
            NgramCounts::Exact(v) => v.len(),
            NgramCounts::Hashed(b) => b.iter().filter(|c| **c > 0).count(),
        }
    }

    /// The non-zero counts as a sparse vector keyed by n-gram key or bucket, sorted.
    pub fn sparse(&self) -> Vec<(u64, u64)> {
        match self {
            NgramCounts::Exact(v) => v.clone(),
            NgramCounts::Hashed(b) => b
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i as u64, *c))
                .collect(),
        }
    }
}

// Merges run in place, from the back: the sorted list grows by the new keys only and is
// never copied to a second list. A fresh list would be new memory on every merge, and the
// kernel zeroing those pages was a third of an exact 4-gram profile's time (BENCHMARKS.md).
// The list is extended by as many slots as there are new entries at most, merged into from
// its end, and the merged part moved down over the slots that equal keys left unused.

/// Merges sorted (key, count) entries, given from the largest key down by `next_down` (keys
/// distinct, at most `most`), into the sorted list `a`, adding the counts of equal keys.
#[inline]
fn merge_down_in_place(
    a: &mut Vec<(u64, u64)>,
    most: usize,
    mut next_down: impl FnMut() -> Option<(u64, u64)>,
) {
    let old = a.len();
    a.reserve(most);
    let p = a.as_mut_ptr();
    // SAFETY: slots below `old` are initialised, and `old + most` is within the capacity.
    // Invariant: `w - i` ≥ the entries still to come, so a slot is written (at `w - 1`) only
    // once the entry in it (at `i - 1` or above) has been read: no entry is lost. At the end
    // the slots `[0, i)` are the untouched low part of the list and `[w, old + most)` the
    // merged high part, all initialised; the latter is moved down to `i` and the length set.
    unsafe {
        let (mut i, mut w) = (old, old + most);
        while let Some((k, c)) = next_down() {
            while i > 0 && (*p.add(i - 1)).0 > k {
                i -= 1;
                w -= 1;
                p.add(w).write(p.add(i).read());
            }
            w -= 1;
            if i > 0 && (*p.add(i - 1)).0 == k {
                i -= 1;
                p.add(w).write((k, (*p.add(i)).1 + c));
            } else {
                debug_assert!(w >= i, "the write position passed the read position");
                p.add(w).write((k, c));
            }
        }
        let high = old + most - w;
        std::ptr::copy(p.add(w), p.add(i), high);
        a.set_len(i + high);
    }
}

/// Merges sorted `b` into sorted `a`, adding the counts of equal keys (keys distinct in each).
fn merge_pairs_in_place(a: &mut Vec<(u64, u64)>, b: &[(u64, u64)]) {
    let mut j = b.len();
    merge_down_in_place(a, b.len(), || {
        j = j.checked_sub(1)?;
        Some(b[j])
    });
}

/// Merges sorted `keys` (repeats = counts) and sorted `pairs` (keys distinct) into the sorted
/// count list `a`, in place, in one pass over the list.
fn merge_two_in_place(a: &mut Vec<(u64, u64)>, keys: &[u64], pairs: &[(u64, u64)]) {
    let (mut j, mut p) = (keys.len(), pairs.len());
    merge_down_in_place(a, keys.len() + pairs.len(), || {
        // The largest key left of either side, counts added where both have it.
        let from_keys = j.checked_sub(1).map(|i| keys[i]);
        let from_pairs = p.checked_sub(1).map(|i| pairs[i]);
        let k = match (from_keys, from_pairs) {
            (None, None) => return None,
            (Some(k), None) => k,
            (None, Some((k, _))) => k,
            (Some(k), Some((q, _))) => k.max(q),
        };
        let mut count = 0u64;
        while j > 0 && keys[j - 1] == k {
            j -= 1;
            count += 1;
        }
        if p > 0 && pairs[p - 1].0 == k {
            p -= 1;
            count += pairs[p].1;
        }
        Some((k, count))
    });
}

/// Sorts keys whose set bits all lie below `key_bits` (LSD radix sort, 16-bit digits: one
/// token id each with Pythia's vocabulary; digits that every key shares are skipped). 16-bit
/// digits beat 11- and 8-bit ones here (fewer passes over memory). `scratch` is reused.
fn radix_sort(keys: &mut Vec<u64>, scratch: &mut Vec<u64>, key_bits: u32) {
    radix_sort_by(keys, scratch, key_bits, |&k| k);
}

/// [`radix_sort`] of anything by a key; stable (equal keys keep their order).
fn radix_sort_by<T: Copy + Default>(
    items: &mut Vec<T>,
    scratch: &mut Vec<T>,
    key_bits: u32,
    key: impl Fn(&T) -> u64,
) {
    const DIGIT: u32 = 16;
    const RADIX: usize = 1 << DIGIT;
    let n = items.len();
    if n < 1 << 14 || n > u32::MAX as usize {
        items.sort_by_key(key);
        return;
    }
    let passes = key_bits.div_ceil(DIGIT).max(1) as usize;
    let mut hist = vec![0u32; passes * RADIX];
    for item in items.iter() {
        let k = key(item);
        for p in 0..passes {
            hist[p * RADIX + ((k >> (p as u32 * DIGIT)) as usize & (RADIX - 1))] += 1;
        }
    }
    // Zeroed only where it grows: every pass writes each of the first n slots before any
    // is read, and the slots past n are never read.
    if scratch.len() < n {
        scratch.resize(n, T::default());
    }
    let mut offset = vec![0u32; RADIX];
    let mut in_scratch = false;
    for p in 0..passes {
        let h = &hist[p * RADIX..(p + 1) * RADIX];
        if h.iter().any(|&c| c as usize == n) {
            continue; // every key has this digit
        }
        let mut sum = 0u32;
        for (o, &c) in offset.iter_mut().zip(h) {
            *o = sum;
            sum += c;
        }
        let (src, dst) = if in_scratch {
            (&scratch[..n], &mut items[..])
        } else {
            (&items[..], &mut scratch[..n])
        };
        let shift = p as u32 * DIGIT;
        for item in src {
            let d = (key(item) >> shift) as usize & (RADIX - 1);
            dst[offset[d] as usize] = *item;
            offset[d] += 1;
        }
        in_scratch = !in_scratch;
    }
    if in_scratch {
        std::mem::swap(items, scratch);
        items.truncate(n);
    }
}

/// A corpus's token profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// What was counted and how.
    pub meta: ProfileMeta,
    /// Totals.
    pub totals: Totals,
    /// Unigram counts indexed by token id (length = vocabulary size).
    pub unigram: Vec<u64>,
    /// Orders 2..=N: `ngrams[n - 2]`.
    pub ngrams: Vec<NgramCounts>,
    /// Per-document unigram counts (sparse, sorted by id), kept only when asked for
    /// (bootstrap intervals); never saved.
    pub docs: Option<Vec<Vec<(u32, u32)>>>,
}

/// Bits needed per token id for a vocabulary.
pub fn id_bits(vocab_size: usize) -> u32 {
    (usize::BITS - (vocab_size.max(2) - 1).leading_zeros()).max(1)
}

/// Packs an n-gram's ids into a 64-bit key, first id in the highest bits.
pub fn pack(ids: &[u32], bits: u32) -> u64 {
    ids.iter().fold(0u64, |k, &id| (k << bits) | id as u64)
}

/// Unpacks a key made by [`pack`].
pub fn unpack(key: u64, n: usize, bits: u32) -> Vec<u32> {
    let mask = (1u64 << bits) - 1;
    (0..n)
        .rev()
        .map(|i| ((key >> (bits * i as u32)) & mask) as u32)
        .collect()
}

fn bucket_of(ids: &[u32], buckets: u64) -> u64 {
    let h = ids
        .iter()
        .fold(0x6d74_6b69_7400_0000u64, |h, &id| mix64(h ^ id as u64));
    h % buckets
}

/// The paper's sampling for proximity (its §2): 1,000 documents per corpus, each cut to its
/// first 10,000 characters and then to its first 512 tokens. The command lines' defaults and
/// `verify`'s PA use these.
pub const PAPER_MAX_DOCS: u64 = 1000;
/// Characters kept per document (the paper's sampling).
pub const PAPER_MAX_CHARS: usize = 10_000;
/// Tokens kept per document (the paper's sampling).
pub const PAPER_MAX_TOKENS_PER_DOC: usize = 512;

/// The largest vocabulary a profile may declare (the largest tokenizers have about 2^18 ids).
const MAX_VOCAB: usize = 1 << 24;
/// The most hashed n-gram buckets per order a profile may declare (8 GiB of counts).
const MAX_BUCKETS: u64 = 1 << 30;

/// Key of the SHA-256 of a saved profile's data pages (every byte before the parquet footer),
/// checked before any page is decoded.
const PAGES_KEY: &str = "mtkit.pages_sha256";
/// What the footer holds while the pages are written: as long as the hex digest that replaces
/// it, so the footer's encoding does not change.
const PAGES_PLACEHOLDER: &str = "mtkit-pages-sha256-placeholder-000000000000000000000000000000000";

/// Where a parquet file's footer starts: the file ends with the footer, its length (u32 LE)
/// and `PAR1`, and starts with `PAR1`.
fn parquet_footer_start(bytes: &[u8]) -> Result<usize> {
    let n = bytes.len();
    if n < 12 || &bytes[..4] != b"PAR1" || &bytes[n - 4..] != b"PAR1" {
        bail!("no parquet magic at its start and end");
    }
    let footer_len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    if footer_len + 12 > n {
        bail!("its footer length {footer_len} exceeds the file");
    }
    Ok(n - 8 - footer_len)
}

/// Options of one profiling run.
#[derive(Clone, Debug)]
pub struct ProfileOptions {
    /// Which documents.
    pub sample: SampleSpec,
    /// Tokens kept per document.
    pub max_tokens_per_doc: Option<usize>,
    /// Highest n-gram order (1 = unigrams only).
    pub ngram: usize,
    /// How orders ≥ 2 are counted.
    pub ngram_mode: NgramMode,
    /// Keep per-document unigram counts (for bootstrap).
    pub keep_docs: bool,
}

impl ProfileOptions {
    /// Unigram counts of the paper's sample ([`PAPER_MAX_DOCS`], [`PAPER_MAX_CHARS`],
    /// [`PAPER_MAX_TOKENS_PER_DOC`]), default seed.
    pub fn paper_unigrams() -> ProfileOptions {
        ProfileOptions {
            sample: SampleSpec {
                max_docs: Some(PAPER_MAX_DOCS),
                max_chars: Some(PAPER_MAX_CHARS),
                ..SampleSpec::default()
            },
            max_tokens_per_doc: Some(PAPER_MAX_TOKENS_PER_DOC),
            ngram: 1,
            ngram_mode: NgramMode::Exact,
            keep_docs: false,
        }
    }

    /// Checks the options against a vocabulary size.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        if self.ngram == 0 || self.ngram > 8 {
            bail!("--ngram must be between 1 and 8, got {}", self.ngram);
        }
        let bits = id_bits(vocab_size);
        if self.ngram_mode == NgramMode::Exact && self.ngram as u32 * bits > 64 {
            bail!(
                "exact counting of {}-grams needs {} bits per key with this tokenizer ({} ids, {bits} bits each), more than 64: lower --ngram or count into hashed buckets with --ngram-buckets B",
                self.ngram,
                self.ngram as u32 * bits,
                vocab_size
            );
        }
        if let NgramMode::Hashed { buckets } = self.ngram_mode {
            if buckets == 0 || buckets > MAX_BUCKETS {
                bail!("--ngram-buckets must be between 1 and {MAX_BUCKETS}, got {buckets}");
            }
        }
        Ok(())
    }
}

/// Token and n-gram counts of a stream of documents: what `mtkit profile` counts with, one per
/// worker thread, merged at the end. Usable alone on token ids from elsewhere.
///
/// Exact n-grams are counted by sorting, not hashing: keys are appended to a buffer, which is
/// radix-sorted and merged, in place, into a sorted (key, count) list when it holds half as
/// many keys as the list (at least 2^20). Appends are sequential and merges stream where a
/// hash table takes a cache miss per n-gram; memory is about the same (the list, 16 bytes per
/// distinct n-gram, and the buffer). In front of the buffer, a small direct-mapped table of
/// (key, count) that stays in cache adds up the n-grams that come again soon (on the
/// registry's text, 70% of 2-grams, 52% of 3-grams and 41% of 4-grams with 2^14 slots); what
/// it evicts goes to the buffer, as a key when seen once and as a (key, count) pair when more.
/// The buffer's sorts and merges, which were most of the time, shrink by as much.
/// BENCHMARKS.md has the figures.
pub struct Counter {
    unigram: Vec<u64>,
    ngrams: Vec<NgramCounts>,
    pending: Vec<Vec<u64>>,
    /// Evicted (key, count ≥ 2) pairs, per order, merged with `pending`.
    pending_pairs: Vec<Vec<(u64, u64)>>,
    /// The direct-mapped (key, count) tables in front of the buffers ([`COMBINE_BITS`]);
    /// a count of 0 is an empty slot.
    combine: Vec<Vec<(u64, u64)>>,
    scratch: Vec<u64>,
    pair_scratch: Vec<(u64, u64)>,
    tokens: u64,
    bits: u32,
    /// Keys buffered per order before the first merge into the sorted list.
    flush_keys: usize,
    /// Bytes of address space each sorted list takes when first used (0: lists grow by
    /// doubling), its key buffer and the scratch a quarter of it: pages are touched only as
    /// a list grows into them, and a list never outgrows it under a memory budget of that
    /// size, so it is never copied to a larger one. The copies and the kernel zeroing the
    /// pages of each new list were the slowest part of the merges.
    reserve_bytes: u64,
}

/// The counts of a lower order n from the top order's sorted (key, count) list and order n's
/// tail counts, in key order. Every n-gram of a document that is not one of its tails begins
/// exactly one top-order n-gram (the one at its position), so its count is the sum of those
/// n-grams' counts, and the n-gram is their key's top bits (`key >> shift`). The top list's
/// keys sorted, those sums come out sorted, grouped, by walking it once; the tails (a few per
/// document) are merged in.
#[derive(Clone)]
struct LowerCounts<'a> {
    top: &'a [(u64, u64)],
    tails: &'a [(u64, u64)],
    shift: u32,
    /// The next prefix's sum, taken from `top` and not yet given.
    group: Option<(u64, u64)>,
}

impl<'a> LowerCounts<'a> {
    fn new(top: &'a [(u64, u64)], tails: &'a [(u64, u64)], shift: u32) -> LowerCounts<'a> {
        LowerCounts {
            top,
            tails,
            shift,
            group: None,
        }
    }
}

impl Iterator for LowerCounts<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        if self.group.is_none() {
            if let Some(&(k, c)) = self.top.first() {
                let prefix = k >> self.shift;
                let mut sum = c;
                let mut i = 1;
                while let Some(&(k, c)) = self.top.get(i) {
                    if k >> self.shift != prefix {
                        break;
                    }
                    sum += c;
                    i += 1;
                }
                self.top = &self.top[i..];
                self.group = Some((prefix, sum));
            }
        }
        match (self.group, self.tails.first()) {
            (None, None) => None,
            (Some(g), None) => {
                self.group = None;
                Some(g)
            }
            (None, Some(&t)) => {
                self.tails = &self.tails[1..];
                Some(t)
            }
            (Some((p, s)), Some(&(q, c))) => {
                if p < q {
                    self.group = None;
                    Some((p, s))
                } else if q < p {
                    self.tails = &self.tails[1..];
                    Some((q, c))
                } else {
                    self.group = None;
                    self.tails = &self.tails[1..];
                    Some((p, s + c))
                }
            }
        }
    }
}

/// What a [`Counter`] counted.
#[derive(Clone, Debug, PartialEq)]
pub struct Counts {
    /// Unigram counts indexed by token id.
    pub unigram: Vec<u64>,
    /// Orders 2..=N: `ngrams[n - 2]`.
    pub ngrams: Vec<NgramCounts>,
    /// Tokens counted.
    pub tokens: u64,
}

const MIN_FLUSH_KEYS: usize = 1 << 20;

/// Slots of each exact order's combining table: 2^14 (256 KiB: the three tables of a 4-gram
/// profile stay in L2 beside the tokenizer's).
const COMBINE_BITS: u32 = 14;

/// The combining table's slot of a key (Fibonacci hashing: the top bits of key × 2^64/φ).
#[inline]
fn combine_slot(key: u64) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - COMBINE_BITS)) as usize
}

impl Counter {
    /// An empty counter for ids below `vocab_size`, orders up to `ngram`, counted as `mode`
    /// says (see [`ProfileOptions::validate`] for the limits of exact mode).
    ///
    /// Panics where the tables cannot be allocated; [`Counter::try_new`] returns an error.
    pub fn new(vocab_size: usize, ngram: usize, mode: NgramMode) -> Counter {
        Counter::try_new(vocab_size, ngram, mode).expect("counter tables")
    }

    /// [`Counter::new`], with an error instead of an abort where the system refuses the
    /// tables (hashed buckets are sized by a flag: see [`check_counter_memory`]).
    pub fn try_new(vocab_size: usize, ngram: usize, mode: NgramMode) -> Result<Counter> {
        let ngrams: Vec<NgramCounts> = (2..=ngram)
            .map(|_| -> Result<NgramCounts> {
                Ok(match mode {
                    NgramMode::Exact => NgramCounts::Exact(Vec::new()),
                    NgramMode::Hashed { buckets } => NgramCounts::Hashed(
                        crate::util::memory::zeroed_vec(buckets as usize, &buckets_what(buckets))?,
                    ),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Counter {
            unigram: crate::util::memory::zeroed_vec(vocab_size, "the unigram table")?,
            pending: ngrams.iter().map(|_| Vec::new()).collect(),
            pending_pairs: ngrams.iter().map(|_| Vec::new()).collect(),
            combine: ngrams.iter().map(|_| Vec::new()).collect(),
            ngrams,
            scratch: Vec::new(),
            pair_scratch: Vec::new(),
            tokens: 0,
            bits: id_bits(vocab_size),
            flush_keys: MIN_FLUSH_KEYS,
            reserve_bytes: 0,
        })
    }

    /// Counts one document's ids (n-grams never cross documents).
    pub fn add(&mut self, ids: &[u32]) {
        self.tokens += ids.len() as u64;
        for &id in ids {
            self.unigram[id as usize] += 1;
        }
        let bits = self.bits;
        let top = self.ngrams.len() + 1;
        let derive = self.derives_lower();
        for o in 0..self.ngrams.len() {
            let n = o + 2;
            if ids.len() < n {
                continue;
            }
            match &mut self.ngrams[o] {
                NgramCounts::Exact(sorted) if derive && n < top => {
                    // Only the document's tails: its n-grams that start too late to begin a
                    // top-order n-gram (the last top − n of them, or all in a shorter one).
                    let buf = &mut self.pending[o];
                    let from = (ids.len() + 1).saturating_sub(top);
                    for p in from..=ids.len() - n {
                        buf.push(pack(&ids[p..p + n], bits));
                    }
                    if buf.len() >= self.flush_keys.max(sorted.len() / 2) {
                        self.flush(o, false);
                    }
                }
                NgramCounts::Exact(sorted) => {
                    let buf = &mut self.pending[o];
                    if buf.capacity() == 0 {
                        // Virtual until touched; saves the copies of doubling.
                        let want = self.flush_keys + ids.len();
                        let room = want + (self.reserve_bytes / 32) as usize;
                        if buf.try_reserve_exact(room).is_err() {
                            buf.reserve(want);
                        }
                    }
                    // Rolling key: shift in one id, mask to n ids.
                    let mask = if n as u32 * bits >= 64 {
                        u64::MAX
                    } else {
                        (1u64 << (n as u32 * bits)) - 1
                    };
                    let combine = &mut self.combine[o];
                    if combine.is_empty() {
                        combine.resize(1 << COMBINE_BITS, (0, 0));
                    }
                    let pairs = &mut self.pending_pairs[o];
                    let mut key = pack(&ids[..n - 1], bits);
                    for &id in &ids[n - 1..] {
                        key = ((key << bits) | id as u64) & mask;
                        let slot = &mut combine[combine_slot(key)];
                        // An empty slot holds (0, 0): key 0 counts on from 0 as well.
                        if slot.0 == key {
                            slot.1 += 1;
                        } else {
                            match slot.1 {
                                0 => {}
                                1 => buf.push(slot.0),
                                c => pairs.push((slot.0, c)),
                            }
                            *slot = (key, 1);
                        }
                    }
                    if buf.len() + pairs.len() >= self.flush_keys.max(sorted.len() / 2) {
                        self.flush(o, false);
                    }
                }
                NgramCounts::Hashed(b) => {
                    let nb = b.len() as u64;
                    for w in ids.windows(n) {
                        b[bucket_of(w, nb) as usize] += 1;
                    }
                }
            }
        }
    }

    /// Merges order `o`'s buffered keys and pairs into its sorted list, and first the
    /// combining table's counts too when `drain` (when the counts must be whole).
    fn flush(&mut self, o: usize, drain: bool) {
        let NgramCounts::Exact(sorted) = &mut self.ngrams[o] else {
            return;
        };
        let buf = &mut self.pending[o];
        let pairs = &mut self.pending_pairs[o];
        if drain {
            for slot in self.combine[o].iter_mut() {
                match slot.1 {
                    0 => {}
                    1 => buf.push(slot.0),
                    c => pairs.push((slot.0, c)),
                }
                *slot = (0, 0);
            }
        }
        if buf.is_empty() && pairs.is_empty() {
            return;
        }
        if self.reserve_bytes > 0 {
            if sorted.capacity() == 0 {
                let _ = sorted.try_reserve_exact((self.reserve_bytes / 16) as usize);
            }
            if self.scratch.capacity() == 0 {
                let room = self.flush_keys + (self.reserve_bytes / 32) as usize;
                let _ = self.scratch.try_reserve_exact(room.max(buf.len()));
            }
        }
        let key_bits = ((o as u32 + 2) * self.bits).min(64);
        radix_sort(buf, &mut self.scratch, key_bits);
        radix_sort_by(pairs, &mut self.pair_scratch, key_bits, |p| p.0);
        // Equal keys of the pairs added (the sort is stable, so they are adjacent).
        pairs.dedup_by(|next, kept| {
            let same = next.0 == kept.0;
            if same {
                kept.1 += next.1;
            }
            same
        });
        merge_two_in_place(sorted, buf, pairs);
        buf.clear();
        pairs.clear();
    }

    /// Bytes this counter's tables need, plus what the next merge of buffered keys may add
    /// (only one order merges at a time): what a memory budget bounds. Lists count by length
    /// and buffers by the keys they take before their next merge, not by capacity: a list's
    /// address space is reserved ahead, and a page of it is memory only once touched. After
    /// a spill the lists are emptied but kept, and grow again into the pages they had, so
    /// the memory held is the most this ever said, and stays within the budget.
    fn peak_bytes(&self) -> u64 {
        let mut held = (self.unigram.capacity() * 8
            + self.scratch.len() * 8
            + self.pair_scratch.len() * 16) as u64;
        let mut next = 0u64;
        for (o, (t, buf)) in self.ngrams.iter().zip(&self.pending).enumerate() {
            if let NgramCounts::Exact(v) = t {
                let add = self.flush_keys.max(v.len() / 2);
                let pairs = self.pending_pairs[o].len();
                let combine = self.combine[o].len();
                held += (v.len() * 16 + buf.len().max(add) * 8 + (pairs + combine) * 16) as u64;
                let grow = match v.len() + add > v.capacity() {
                    true => v.len() + add,
                    false => add,
                };
                next = next.max(16 * grow as u64);
            }
        }
        held + next
    }

    /// Writes the exact n-gram counts so far to `runs`, one run per order, and empties the
    /// tables (the unigram counts stay; the tables keep their memory for what comes next).
    fn spill(&mut self, runs: &spill::Runs) -> Result<()> {
        for o in 0..self.ngrams.len() {
            self.flush(o, true);
        }
        for o in 0..self.ngrams.len() {
            match (self.lower_counts(o), &self.ngrams[o]) {
                (Some(lower), NgramCounts::Exact(top)) => runs.write(o, lower, top.len())?,
                (None, NgramCounts::Exact(v)) => runs.write(o, v.iter().copied(), v.len())?,
                (_, NgramCounts::Hashed(_)) => {}
            }
        }
        for t in &mut self.ngrams {
            if let NgramCounts::Exact(v) = t {
                v.clear();
            }
        }
        runs.note_spill();
        Ok(())
    }

    /// Whether orders below the top are derived from it (exact mode, 3 orders or more): the
    /// tables of lower orders hold only the documents' tails, see [`LowerCounts`].
    fn derives_lower(&self) -> bool {
        self.ngrams.len() >= 2 && matches!(self.ngrams[0], NgramCounts::Exact(_))
    }

    /// The whole counts of table `o` when it is a derived lower order (its tails with the top
    /// order's prefix sums; buffered keys not in them); `None` for the top order, or when
    /// nothing is derived.
    fn lower_counts(&self, o: usize) -> Option<LowerCounts<'_>> {
        let top_o = self.ngrams.len().checked_sub(1)?;
        if !self.derives_lower() || o >= top_o {
            return None;
        }
        let (NgramCounts::Exact(tails), NgramCounts::Exact(top)) =
            (&self.ngrams[o], &self.ngrams[top_o])
        else {
            unreachable!("derived orders are exact");
        };
        Some(LowerCounts::new(top, tails, (top_o - o) as u32 * self.bits))
    }

    /// Distinct n-grams held in exact mode so far (0 in hashed mode): the top order's, and
    /// the lower orders' document tails when they are derived (see [`LowerCounts`]).
    pub fn distinct_ngrams(&self) -> usize {
        self.ngrams
            .iter()
            .map(|t| match t {
                NgramCounts::Exact(v) => v.len(),
                NgramCounts::Hashed(_) => 0,
            })
            .sum()
    }

    /// Adds another counter's counts (same vocabulary, orders and mode).
    pub fn merge(&mut self, mut other: Counter) {
        // Table to table as counted (its lower orders' tails, not the orders derived from its
        // top order: that is added to this top order and derived from it at the end).
        for o in 0..self.ngrams.len() {
            self.flush(o, true);
            other.flush(o, true);
        }
        for (a, b) in self.unigram.iter_mut().zip(&other.unigram) {
            *a += b;
        }
        for (a, b) in self.ngrams.iter_mut().zip(&other.ngrams) {
            a.add(b);
        }
        self.tokens += other.tokens;
    }

    /// The counts (buffered n-grams merged in).
    pub fn finish(mut self) -> Counts {
        for o in 0..self.ngrams.len() {
            self.flush(o, true);
        }
        for o in 0..self.ngrams.len() {
            let Some(lower) = self.lower_counts(o) else {
                continue;
            };
            // Counted first, so that the list takes no more memory than it needs.
            let mut counts = Vec::with_capacity(lower.clone().count());
            counts.extend(lower);
            self.ngrams[o] = NgramCounts::Exact(counts);
        }
        Counts {
            unigram: self.unigram,
            ngrams: self.ngrams,
            tokens: self.tokens,
        }
    }
}

// Batches are small so that the workers, which take whole batches, finish together.
const BATCH_DOCS: usize = 128;
const BATCH_BYTES: u64 = 256 << 10;

/// Profiles a corpus: reads, tokenizes and counts in a pipeline (a reader thread feeding
/// batches to rayon workers), each worker counting into its own tables, merged at the end.
pub fn build(
    card: &Card,
    tok: &Tokenizer,
    opts: &ProfileOptions,
    progress: &dyn Progress,
) -> Result<Profile> {
    opts.validate(tok.vocab_size)?;
    build_with(meta_for(card, tok, opts)?, card, tok, opts, progress)
}

/// Profiles in-memory records ([`crate::data::corpus::read_records`]: a Python list or dataset, say)
/// exactly as a file of the same records in the same order would be profiled (the sample,
/// cuts and counts are the same; the metadata names `name` and the template instead of a
/// card). Never cached: there is no file whose content could key it.
pub fn build_from_records(
    name: &str,
    template: &str,
    records: &crate::data::corpus::RecordSource<'_>,
    tok: &Tokenizer,
    opts: &ProfileOptions,
    progress: &dyn Progress,
) -> Result<Profile> {
    opts.validate(tok.vocab_size)?;
    if opts.sample.shard.is_some() {
        anyhow::bail!("in-memory records take no --shard");
    }
    let t = crate::data::template::Template::parse(template)?;
    let meta = ProfileMeta::new(
        name,
        crate::util::digest::sha256_hex(format!("records\0{template}").as_bytes()),
        "in-memory records".into(),
        tok,
        opts,
    );
    let read = |on_doc: &mut dyn FnMut(crate::data::corpus::Document) -> Result<()>| {
        crate::data::corpus::read_records(name, &t, records, &opts.sample, on_doc)
    };
    count_documents(meta, name, &read, tok, opts, progress)
}

/// One batch's documents as (token id, count) lists, with the batch's place in reading order.
type KeptBatch = (u64, Vec<Vec<(u32, u32)>>);

/// The metadata a profile of `card` under `opts` will carry (and its cache key).
pub fn meta_for(card: &Card, tok: &Tokenizer, opts: &ProfileOptions) -> Result<ProfileMeta> {
    Ok(ProfileMeta::new(
        &card.name,
        card.content_hash()?,
        card.origin.clone(),
        tok,
        opts,
    ))
}

impl ProfileMeta {
    /// The metadata of a profile counted now, by this mtkit, of corpus `corpus` (whose card,
    /// or template for in-memory records, hashes to `card_hash`), under `opts`: the one place
    /// a profile's settings are recorded, so a cache key cannot miss one.
    pub fn new(
        corpus: &str,
        card_hash: String,
        card_origin: String,
        tok: &Tokenizer,
        opts: &ProfileOptions,
    ) -> ProfileMeta {
        ProfileMeta {
            format: FORMAT_VERSION,
            mtkit_version: crate::VERSION.to_string(),
            corpus: corpus.to_string(),
            card_hash,
            card_origin,
            tokenizer_path: tok.path.display().to_string(),
            tokenizer_sha256: tok.sha256.clone(),
            vocab_size: tok.vocab_size,
            max_docs: opts.sample.max_docs,
            seed: opts.sample.seed,
            max_chars: opts.sample.max_chars,
            max_tokens_per_doc: opts.max_tokens_per_doc,
            shards: opts.sample.shard.map(|s| vec![s]),
            ngram: opts.ngram,
            ngram_mode: opts.ngram_mode,
            encoder: tok.engine(),
        }
    }
}

fn build_with(
    meta: ProfileMeta,
    card: &Card,
    tok: &Tokenizer,
    opts: &ProfileOptions,
    progress: &dyn Progress,
) -> Result<Profile> {
    let read = |on_doc: &mut dyn FnMut(crate::data::corpus::Document) -> Result<()>| {
        crate::data::corpus::read_documents_with(card, &opts.sample, &[], on_doc)
    };
    count_documents(meta, &card.name, &read, tok, opts, progress)
}

/// Reads, tokenizes and counts what `read` delivers, in memory.
fn count_documents(
    meta: ProfileMeta,
    name: &str,
    read: &crate::tokenize::pipeline::DocReader<'_>,
    tok: &Tokenizer,
    opts: &ProfileOptions,
    progress: &dyn Progress,
) -> Result<Profile> {
    match count_documents_spilling(meta, name, read, tok, opts, progress, None)? {
        Counted::Memory(c) => Ok(c.into_profile()),
        Counted::Spilled { .. } => unreachable!("nothing spills without runs"),
    }
}

/// What `--ngram-buckets B` is called in messages.
fn buckets_what(buckets: u64) -> String {
    format!("--ngram-buckets {buckets}")
}

/// Checks, before any table is allocated, that the fixed-size tables of `workers` counters
/// fit in the memory this process can still allocate: with `--ngram-buckets B`, each worker
/// holds B × 8 bytes per order ≥ 2, which a large B makes tens of gigabytes. The error gives
/// the figures and the limits ([`crate::util::memory::Limits`]).
pub fn check_counter_memory(
    vocab_size: usize,
    opts: &ProfileOptions,
    workers: usize,
) -> Result<()> {
    let orders = opts.ngram.saturating_sub(1) as u64;
    let per_worker_buckets = match opts.ngram_mode {
        NgramMode::Hashed { buckets } => buckets.saturating_mul(orders),
        NgramMode::Exact => 0,
    };
    let per_worker = per_worker_buckets
        .saturating_add(vocab_size as u64)
        .saturating_mul(8);
    let total = per_worker.saturating_mul(workers as u64);
    let what = match opts.ngram_mode {
        NgramMode::Hashed { buckets } => format!(
            "--ngram-buckets {buckets} ({orders} order(s) × {workers} counting worker(s) × {buckets} buckets × 8 bytes, with the unigram tables)"
        ),
        NgramMode::Exact => format!("the unigram tables of {workers} counting worker(s)"),
    };
    crate::util::memory::check_allocation(total, &what)
}

/// A memory budget per worker and where its runs go.
struct Spill {
    runs: spill::Runs,
    share: u64,
}

/// What counting gave: a profile in memory, or (when the budget was reached) the unigram
/// counts and totals with the n-grams in runs on disk.
enum Counted {
    Memory(InMemory),
    Spilled {
        meta: ProfileMeta,
        totals: Totals,
        unigram: Vec<u64>,
    },
}

/// [`count_documents`], spilling each worker's n-gram counts to `spill`'s runs whenever they
/// would pass its share of the budget.
fn count_documents_spilling(
    meta: ProfileMeta,
    name: &str,
    read: &crate::tokenize::pipeline::DocReader<'_>,
    tok: &Tokenizer,
    opts: &ProfileOptions,
    progress: &dyn Progress,
    spill: Option<&Spill>,
) -> Result<Counted> {
    let threads = rayon::current_num_threads();
    // Orders ≥ 2 buffer keys before merging them; a small share buffers fewer.
    let flush_keys =
        match spill {
            Some(s) => (s.share / (32 * opts.ngram.max(2) as u64))
                .clamp(1 << 12, MIN_FLUSH_KEYS as u64) as usize,
            None => MIN_FLUSH_KEYS,
        };
    // One counter and one encoder (with its pre-token cache) per worker.
    check_counter_memory(tok.vocab_size, opts, threads + 1)?;
    let locals: Vec<Mutex<(Counter, Encoder)>> = (0..threads + 1)
        .map(|_| {
            let mut c = Counter::try_new(tok.vocab_size, opts.ngram, opts.ngram_mode)?;
            c.flush_keys = flush_keys;
            // Address space for each list: the worker's whole share, which it never passes.
            c.reserve_bytes = spill.map(|s| s.share.min(4 << 30)).unwrap_or(0);
            Ok(Mutex::new((c, tok.encoder())))
        })
        .collect::<Result<_>>()?;
    // Per-batch document counts (for bootstrap), put back in reading order at the end.
    let kept: Mutex<Vec<KeptBatch>> = Mutex::new(Vec::new());
    // The first failing batch (by reading order), so the error reported does not depend on
    // thread timing.
    let failure: Mutex<Option<(u64, anyhow::Error)>> = Mutex::new(None);
    progress.start(name, opts.sample.max_docs);
    let batching = Batching {
        docs: BATCH_DOCS,
        bytes: BATCH_BYTES,
    };
    let (summary, ()) = read_batches_of(read, batching, |rx, stop| {
        // Workers take whole batches as they come (no barrier between batches) and count
        // into their own tables; counts are sums, so the order does not change them.
        rx.into_iter()
            .par_bridge()
            .for_each(|Batch { seq, docs: batch }| {
                if stop.load(Ordering::Relaxed) {
                    return; // drain so the reader can finish
                }
                let slot = rayon::current_thread_index().map(|i| i + 1).unwrap_or(0);
                let mut local = locals[slot].lock().expect("counter lock");
                let (counter, encoder) = &mut *local;
                let mut docs = opts.keep_docs.then(|| Vec::with_capacity(batch.len()));
                let (mut bytes, mut toks) = (0u64, 0u64);
                let mut ids = Vec::new();
                for d in &batch {
                    ids.clear();
                    match encoder.encode_into(&d.text, opts.max_tokens_per_doc, &mut ids) {
                        Ok(()) => {
                            counter.add(&ids);
                            bytes += d.text.len() as u64;
                            toks += ids.len() as u64;
                            if let Some(out) = docs.as_mut() {
                                out.push(sparse_counts(&ids));
                            }
                        }
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            let mut f = failure.lock().expect("failure lock");
                            if f.as_ref().map(|(s, _)| seq < *s).unwrap_or(true) {
                                *f = Some((seq, e));
                            }
                            return;
                        }
                    }
                }
                if let Some(sp) = spill {
                    if counter.peak_bytes() > sp.share {
                        if let Err(e) = counter.spill(&sp.runs) {
                            stop.store(true, Ordering::Relaxed);
                            let mut f = failure.lock().expect("failure lock");
                            if f.as_ref().map(|(s, _)| seq < *s).unwrap_or(true) {
                                *f = Some((seq, e));
                            }
                            return;
                        }
                    }
                }
                drop(local);
                if let Some(docs) = docs {
                    kept.lock().expect("docs lock").push((seq, docs));
                }
                progress.advance(batch.len() as u64, bytes, toks);
            });
        match failure.into_inner().expect("failure lock") {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    })?;
    let docs_out = opts.keep_docs.then(|| {
        let mut kept = kept.into_inner().expect("docs lock");
        kept.sort_unstable_by_key(|(seq, _)| *seq);
        kept.into_iter().flat_map(|(_, d)| d).collect::<Vec<_>>()
    });
    progress.finish();

    let parts: Vec<Counter> = locals
        .into_iter()
        .map(|l| l.into_inner().expect("counter lock").0)
        .collect();
    if let Some(sp) = spill.filter(|sp| sp.runs.any()) {
        // Some counts are on disk: the rest go there too, and the profile is their merge.
        let mut unigram = vec![0u64; tok.vocab_size];
        let mut tokens = 0;
        for mut c in parts {
            c.spill(&sp.runs)?;
            for (a, b) in unigram.iter_mut().zip(&c.unigram) {
                *a += b;
            }
            tokens += c.tokens;
        }
        return Ok(Counted::Spilled {
            meta,
            totals: Totals {
                documents: summary.documents,
                tokens,
                bytes: summary.bytes,
                skipped: summary.skipped,
            },
            unigram,
        });
    }
    // The workers' last merges, on the workers.
    let parts: Vec<Counts> = parts
        .into_par_iter()
        .filter(|c| c.tokens > 0)
        .map(Counter::finish)
        .collect();
    Ok(Counted::Memory(InMemory {
        totals: Totals {
            documents: summary.documents,
            tokens: parts.iter().map(|c| c.tokens).sum(),
            bytes: summary.bytes,
            skipped: summary.skipped,
        },
        meta,
        vocab_size: tok.vocab_size,
        ngram: opts.ngram,
        mode: opts.ngram_mode,
        parts,
        docs: docs_out,
    }))
}

/// Unigram counts of several parts (workers, shard profiles) added together.
pub(crate) fn sum_unigrams<'a>(
    vocab_size: usize,
    parts: impl Iterator<Item = &'a [u64]>,
) -> Vec<u64> {
    let mut sum = vec![0u64; vocab_size];
    for part in parts {
        for (a, b) in sum.iter_mut().zip(part) {
            *a += b;
        }
    }
    sum
}

/// Counts that fit in memory: each worker's, not yet added together.
struct InMemory {
    meta: ProfileMeta,
    totals: Totals,
    vocab_size: usize,
    ngram: usize,
    mode: NgramMode,
    parts: Vec<Counts>,
    docs: Option<Vec<Vec<(u32, u32)>>>,
}

impl InMemory {
    fn unigram(&self) -> Vec<u64> {
        sum_unigrams(self.vocab_size, self.parts.iter().map(|p| &p.unigram[..]))
    }

    /// The profile: the workers' tables added into the largest.
    fn into_profile(self) -> Profile {
        let unigram = self.unigram();
        let mut parts = self.parts;
        parts.sort_by_key(|c| {
            std::cmp::Reverse(c.ngrams.iter().map(NgramCounts::distinct).sum::<usize>())
        });
        let mut ngrams = match parts.is_empty() {
            true => {
                Counter::new(self.vocab_size, self.ngram, self.mode)
                    .finish()
                    .ngrams
            }
            false => parts.remove(0).ngrams,
        };
        for p in &parts {
            for (a, b) in ngrams.iter_mut().zip(&p.ngrams) {
                a.add(b);
            }
        }
        Profile {
            meta: self.meta,
            totals: self.totals,
            unigram,
            ngrams,
            docs: self.docs,
        }
    }

    /// Writes the profile file [`Profile::save`] writes for [`InMemory::into_profile`], with
    /// the workers' exact tables merged as the rows are written instead of into a whole list
    /// first. `unigram` is [`InMemory::unigram`], which the caller has already summed. Gives
    /// the hex SHA-256 of the file written.
    fn save(self, path: &Path, unigram: &[u64]) -> Result<String> {
        if self.mode != NgramMode::Exact {
            return self.into_profile().save_summed(path);
        }
        let mut w = ProfileWriter::create(path, &self.meta, &self.totals, unigram)?;
        for o in 0..self.ngram.saturating_sub(1) {
            let lists: Vec<&[(u64, u64)]> = self
                .parts
                .iter()
                .map(|p| match &p.ngrams[o] {
                    NgramCounts::Exact(v) => &v[..],
                    NgramCounts::Hashed(_) => unreachable!("exact mode"),
                })
                .collect();
            merge_sorted_lists(&lists, |k, c| w.push(o + 2, k, c))?;
        }
        w.finish()
    }
}

/// Calls `f` with the entries of sorted (key, count) lists (keys distinct in each) in key
/// order, the counts of equal keys added: a k-way merge, two-way (the two workers of a
/// 2-core machine) without the general loop's scans.
fn merge_sorted_lists(
    lists: &[&[(u64, u64)]],
    mut f: impl FnMut(u64, u64) -> Result<()>,
) -> Result<()> {
    let mut lists: Vec<&[(u64, u64)]> = lists.iter().copied().filter(|l| !l.is_empty()).collect();
    match lists.as_mut_slice() {
        [] => {}
        [one] => {
            for &(k, c) in one.iter() {
                f(k, c)?;
            }
        }
        [a, b] => {
            let (mut a, mut b) = (*a, *b);
            while let (Some(&(ka, ca)), Some(&(kb, cb))) = (a.first(), b.first()) {
                if ka < kb {
                    f(ka, ca)?;
                    a = &a[1..];
                } else if kb < ka {
                    f(kb, cb)?;
                    b = &b[1..];
                } else {
                    f(ka, ca + cb)?;
                    a = &a[1..];
                    b = &b[1..];
                }
            }
            for &(k, c) in a.iter().chain(b.iter()) {
                f(k, c)?;
            }
        }
        many => {
            while let Some(key) = many.iter().filter_map(|l| l.first()).map(|e| e.0).min() {
                let mut count = 0;
                for l in many.iter_mut() {
                    if let Some(&(k, c)) = l.first() {
                        if k == key {
                            count += c;
                            *l = &l[1..];
                        }
                    }
                }
                f(key, count)?;
            }
        }
    }
    Ok(())
}

/// A document's unigram counts as sorted (id, count) pairs.
pub fn sparse_counts(ids: &[u32]) -> Vec<(u32, u32)> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for id in v {
        match out.last_mut() {
            Some((last, c)) if *last == id => *c += 1,
            _ => out.push((id, 1)),
        }
    }
    out
}

impl Profile {
    /// The counts of order `n` as a table, sorted: for n = 1 `token` (id) and `count` of every
    /// token seen; for an exact order n ≥ 2 the ids `t1`..`tn` and `count`; for a hashed order
    /// `bucket` and `count`. What the Python package's `Profile.unigrams` and `.ngrams(n)` are.
    pub fn frame(&self, n: usize) -> Result<polars::prelude::DataFrame> {
        use polars::prelude::{Column, DataFrame};
        if n == 0 || n > self.meta.ngram {
            anyhow::bail!(
                "profile of `{}` holds orders 1 to {} (asked for {n}); profile with ngram={n}",
                self.meta.corpus,
                self.meta.ngram
            );
        }
        if n == 1 {
            let (ids, counts): (Vec<u32>, Vec<u64>) = self
                .unigram
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i as u32, *c))
                .unzip();
            return Ok(DataFrame::new_infer_height(vec![
                Column::new("token".into(), ids),
                Column::new("count".into(), counts),
            ])?);
        }
        let table = &self.ngrams[n - 2];
        let sparse = table.sparse();
        let counts: Vec<u64> = sparse.iter().map(|x| x.1).collect();
        let mut columns = Vec::new();
        match table {
            NgramCounts::Hashed(_) => {
                let buckets: Vec<u64> = sparse.iter().map(|x| x.0).collect();
                columns.push(Column::new("bucket".into(), buckets));
            }
            NgramCounts::Exact(_) => {
                let bits = id_bits(self.meta.vocab_size);
                let mut ids: Vec<Vec<u32>> = vec![Vec::with_capacity(sparse.len()); n];
                for (key, _) in &sparse {
                    for (i, id) in unpack(*key, n, bits).into_iter().enumerate() {
                        ids[i].push(id);
                    }
                }
                for (i, col) in ids.into_iter().enumerate() {
                    columns.push(Column::new(format!("t{}", i + 1).into(), col));
                }
            }
        }
        columns.push(Column::new("count".into(), counts));
        Ok(DataFrame::new_infer_height(columns)?)
    }

    /// Unigram frequencies (counts / total).
    pub fn unigram_freqs(&self) -> Vec<f64> {
        let t = self.totals.tokens.max(1) as f64;
        self.unigram.iter().map(|&c| c as f64 / t).collect()
    }

    /// The cache key: a hash of everything that decides the numbers.
    pub fn cache_key(meta: &ProfileMeta) -> String {
        let mut m = meta.clone();
        m.card_origin.clear();
        m.tokenizer_path.clear();
        let bytes = serde_json::to_vec(&m).expect("meta serialises");
        crate::util::digest::hex(&Sha256::digest(bytes))[..32].to_string()
    }

    /// Merges shard profiles of one corpus made with the same settings: counts add exactly.
    /// (`profile merge` streams the files instead: [`merge_files`].)
    pub fn merge(parts: &[Profile]) -> Result<Profile> {
        let (meta, totals) = merged_meta(
            &parts
                .iter()
                .map(|p| (&p.meta, &p.totals))
                .collect::<Vec<_>>(),
        )?;
        let mut out = parts[0].clone();
        out.docs = None;
        for p in &parts[1..] {
            for (x, y) in out.unigram.iter_mut().zip(&p.unigram) {
                *x += y;
            }
            for (x, y) in out.ngrams.iter_mut().zip(&p.ngrams) {
                x.add(y);
            }
        }
        out.meta = meta;
        out.totals = totals;
        Ok(out)
    }

    /// Saves as parquet (atomically), through the same [`ProfileWriter`] a streamed profile
    /// is written with.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.save_summed(path).map(drop)
    }

    /// [`Profile::save`], giving the hex SHA-256 of the file written.
    fn save_summed(&self, path: &Path) -> Result<String> {
        let mut w = ProfileWriter::create(path, &self.meta, &self.totals, &self.unigram)?;
        for (o, table) in self.ngrams.iter().enumerate() {
            for (key, c) in table.sparse() {
                w.push(o + 2, key, c)?;
            }
        }
        w.finish()
    }

    /// Loads a profile saved by [`Profile::save`].
    pub fn load(path: &Path) -> Result<Profile> {
        // polars can panic (in its own threads) on a damaged file instead of failing: a
        // damaged profile is an error like any other, and a damaged cache entry is rebuilt.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Profile::load_unchecked(path)))
            .unwrap_or_else(|_| {
                bail!(
                    "{}: the parquet reader failed on this file: it is damaged; delete it or make it again",
                    path.display()
                )
            })
    }

    fn load_unchecked(path: &Path) -> Result<Profile> {
        use polars::prelude::{ParquetReader, PolarsResult, SerReader, UInt32Chunked};
        // Read once: the checks and polars work on the same bytes.
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read profile {}", path.display()))?;
        let footer_start = parquet_footer_start(&bytes)
            .with_context(|| format!("{} is not a parquet file", path.display()))?;
        crate::util::polars_io::check_parquet_bytes(path, &bytes)?;
        let open = || std::io::Cursor::new(bytes.as_slice());
        let mut reader = ParquetReader::new(open());
        let md = reader
            .get_metadata()
            .with_context(|| format!("{} is not a parquet file", path.display()))?;
        let kv = |key: &str| {
            md.key_value_metadata()
                .as_ref()
                .and_then(|kv| kv.iter().find(|k| k.key == key))
                .and_then(|k| k.value.clone())
        };
        let (saved, want) = stream::saved_meta_and_pages(path, kv)?;
        if crate::util::digest::sha256_hex(&bytes[..footer_start]) != want {
            bail!(
                "{}: its data pages do not match the checksum saved with them: the file is damaged; delete it or make it again",
                path.display()
            );
        }
        let df = ParquetReader::new(open())
            .finish()
            .with_context(|| format!("cannot read profile {}", path.display()))?;
        let n = saved.meta.ngram;
        let bits = id_bits(saved.meta.vocab_size);
        let order = df.column("order")?.u8()?.clone();
        let count = df.column("count")?.u64()?.clone();
        let bucket = df.column("bucket")?.u64()?.clone();
        let tcols: Vec<UInt32Chunked> = (1..=n)
            .map(|i| df.column(&format!("t{i}")).and_then(|c| c.u32().cloned()))
            .collect::<PolarsResult<_>>()?;
        let mut p = Profile {
            unigram: crate::util::memory::zeroed_vec(
                saved.meta.vocab_size,
                &format!(
                    "{}: its vocabulary of {} ids",
                    path.display(),
                    saved.meta.vocab_size
                ),
            )?,
            ngrams: (2..=n)
                .map(|_| -> Result<NgramCounts> {
                    Ok(match saved.meta.ngram_mode {
                        NgramMode::Exact => NgramCounts::Exact(Vec::new()),
                        NgramMode::Hashed { buckets } => {
                            NgramCounts::Hashed(crate::util::memory::zeroed_vec(
                                buckets as usize,
                                &format!("{}: its {buckets} hashed buckets", path.display()),
                            )?)
                        }
                    })
                })
                .collect::<Result<_>>()?,
            meta: saved.meta,
            totals: saved.totals,
            docs: None,
        };
        let bad = || anyhow!("{}: malformed profile row", path.display());
        for i in 0..df.height() {
            let o = order.get(i).ok_or_else(bad)? as usize;
            let c = count.get(i).ok_or_else(bad)?;
            if o == 1 {
                let id = tcols[0].get(i).ok_or_else(bad)? as usize;
                *p.unigram.get_mut(id).ok_or_else(bad)? = c;
            } else {
                // Order 0 (a column chunk the footer points elsewhere) is malformed too.
                let table = o.checked_sub(2).and_then(|k| p.ngrams.get_mut(k));
                match table.ok_or_else(bad)? {
                    NgramCounts::Exact(m) => {
                        let ids: Vec<u32> = (0..o)
                            .map(|j| tcols[j].get(i))
                            .collect::<Option<_>>()
                            .ok_or_else(bad)?;
                        m.push((pack(&ids, bits), c));
                    }
                    NgramCounts::Hashed(b) => {
                        let k = bucket.get(i).ok_or_else(bad)? as usize;
                        *b.get_mut(k).ok_or_else(bad)? = c;
                    }
                }
            }
        }
        for t in &mut p.ngrams {
            if let NgramCounts::Exact(v) = t {
                v.sort_unstable();
                if v.windows(2).any(|w| w[0].0 == w[1].0) {
                    bail!("{}: an n-gram appears twice", path.display());
                }
            }
        }
        if let Some(want) = &saved.checksum {
            let got = content_checksum(&p.meta, &p.totals, &p.unigram, &p.ngrams)?;
            if &got != want {
                bail!(
                    "{}: the profile's counts do not match its checksum: the file is damaged; delete it or make it again",
                    path.display()
                );
            }
        }
        Ok(p)
    }
}

/// The profile for these options: read from the cache when an identical one was made before
/// (unless `use_cache` is false or per-document counts are needed), otherwise built and cached.
/// Returns the profile and whether it came from the cache.
pub fn cached_or_build(
    card: &Card,
    tok: &Tokenizer,
    opts: &ProfileOptions,
    use_cache: bool,
    progress: &dyn Progress,
) -> Result<(Profile, bool)> {
    opts.validate(tok.vocab_size)?;
    let meta = meta_for(card, tok, opts)?;
    let path = cache_path(&meta);
    let sum_path = path.with_extension("parquet.sha256");
    if may_use_cache(use_cache, opts) {
        if let Some(p) = cache_hit(&path, &meta, Profile::load, profile_meta) {
            return Ok((p, true));
        }
    }
    let p = build_with(meta, card, tok, opts, progress)?;
    // A strict run that passed is as good as any; the cache is shared by both.
    let sum = p
        .save_summed(&path)
        .with_context(|| format!("cannot write the profile cache {}", path.display()))?;
    crate::util::paths::write_atomic_bytes(&sum_path, format!("{sum}\n").as_bytes())?;
    Ok((p, false))
}

/// Whether a cached profile may stand in for counting: not when asked not to, not when the
/// per-document counts are wanted (the cache holds none), not under --strict (a cached entry
/// would not show the bad records a strict run must fail on).
fn may_use_cache(use_cache: bool, opts: &ProfileOptions) -> bool {
    use_cache && !opts.keep_docs && !opts.sample.strict
}

/// The cache entry at `path`, opened by `open`, when it can be used for `wanted`: beside each
/// entry is the SHA-256 of its bytes, and an entry is read only when they match, so a damaged
/// file is rebuilt before any parser sees it (polars can abort on some damaged files) and an
/// entry without its sum (a run killed between the two writes) is rebuilt; then its recorded
/// settings must give the same cache key. The one check of both `cached_or_build` (a whole
/// profile) and `cached_or_write` (rows read back a group at a time).
fn cache_hit<T>(
    path: &Path,
    wanted: &ProfileMeta,
    open: impl FnOnce(&Path) -> Result<T>,
    meta_of: fn(&T) -> &ProfileMeta,
) -> Option<T> {
    let recorded = std::fs::read_to_string(path.with_extension("parquet.sha256")).ok()?;
    if recorded.trim() != crate::util::digest::sha256_file(path).ok()? {
        return None;
    }
    let found = open(path).ok()?;
    (Profile::cache_key(meta_of(&found)) == Profile::cache_key(wanted)).then_some(found)
}

fn profile_meta(p: &Profile) -> &ProfileMeta {
    &p.meta
}

fn rows_meta(r: &ProfileRows) -> &ProfileMeta {
    &r.meta
}

/// What [`cached_or_write`] found in the cache or wrote there.
#[derive(Debug)]
pub struct Written {
    /// The profile's metadata.
    pub meta: ProfileMeta,
    /// Its totals.
    pub totals: Totals,
    /// Distinct token ids seen.
    pub distinct_ids: usize,
    /// The cache entry.
    pub path: PathBuf,
    /// Whether it was already in the cache.
    pub cached: bool,
    /// What spilling to disk took, when the counts did not fit the budget.
    pub spilled: Option<SpillStats>,
}

/// The profile for these options as a file in the cache, never whole in memory: an entry made
/// before is checked (its sum, its pages and metadata) and kept; otherwise the corpus is
/// counted with exact n-grams held to `spill.memory` bytes (runs spilled to a temporary folder
/// in `spill.dir` and merged into the file when they do not fit) and the file written. The
/// file is the same bytes whether or not it spilled. What `mtkit profile` runs.
pub fn cached_or_write(
    card: &Card,
    tok: &Tokenizer,
    opts: &ProfileOptions,
    use_cache: bool,
    progress: &dyn Progress,
    spill: &SpillOptions,
) -> Result<Written> {
    opts.validate(tok.vocab_size)?;
    if spill.memory < spill::MIN_MEMORY {
        bail!(
            "--memory must be at least {} (got {})",
            spill::human_size(spill::MIN_MEMORY),
            spill::human_size(spill.memory)
        );
    }
    let meta = meta_for(card, tok, opts)?;
    let path = cache_path(&meta);
    let sum_path = path.with_extension("parquet.sha256");
    let distinct = |u: &[u64]| u.iter().filter(|&&c| c > 0).count();
    if may_use_cache(use_cache, opts) {
        if let Some(rows) = cache_hit(&path, &meta, ProfileRows::open, rows_meta) {
            return Ok(Written {
                distinct_ids: distinct(&rows.unigram),
                meta: rows.meta,
                totals: rows.totals,
                path,
                cached: true,
                spilled: None,
            });
        }
    }
    let exact_ngrams = opts.ngram >= 2 && opts.ngram_mode == NgramMode::Exact;
    let sp = match exact_ngrams {
        true => Some(Spill {
            runs: spill::Runs::new(&spill.dir, opts.ngram)?,
            share: spill.memory / (rayon::current_num_threads() as u64 + 1),
        }),
        false => None,
    };
    let read = |on_doc: &mut dyn FnMut(crate::data::corpus::Document) -> Result<()>| {
        crate::data::corpus::read_documents_with(card, &opts.sample, &[], on_doc)
    };
    let counted =
        count_documents_spilling(meta, &card.name, &read, tok, opts, progress, sp.as_ref())?;
    let cache_err = || format!("cannot write the profile cache {}", path.display());
    let (meta, totals, distinct_ids, spilled, sum) = match counted {
        Counted::Memory(c) => {
            let unigram = c.unigram();
            let (meta, totals, ids) = (c.meta.clone(), c.totals.clone(), distinct(&unigram));
            let sum = c.save(&path, &unigram).with_context(cache_err)?;
            (meta, totals, ids, None, sum)
        }
        Counted::Spilled {
            meta,
            totals,
            unigram,
        } => {
            let sp = sp.as_ref().expect("spilled counts have runs");
            let mut w =
                ProfileWriter::create(&path, &meta, &totals, &unigram).with_context(cache_err)?;
            // The runs are merged on a thread of their own and the rows written on this one,
            // in blocks through a short queue: merging (reading, decompressing, the heap) and
            // writing (building and compressing the parquet pages) take about as long.
            const ROWS: usize = 1 << 15;
            let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<(u64, u64)>)>(4);
            let runs = &sp.runs;
            let orders = opts.ngram - 1;
            std::thread::scope(|scope| -> Result<()> {
                let merging = scope.spawn(move || -> Result<()> {
                    for o in 0..orders {
                        let mut block = Vec::with_capacity(ROWS);
                        runs.merge(o, |k, c| {
                            block.push((k, c));
                            if block.len() == ROWS {
                                crate::util::progress::check_interrupt()?;
                                let full = std::mem::replace(&mut block, Vec::with_capacity(ROWS));
                                // A closed queue: the writer failed, and says why below.
                                tx.send((o, full))
                                    .map_err(|_| anyhow!("the profile writer stopped"))?;
                            }
                            Ok(())
                        })?;
                        if !block.is_empty() {
                            tx.send((o, block))
                                .map_err(|_| anyhow!("the profile writer stopped"))?;
                        }
                    }
                    Ok(())
                });
                // The queue's end is dropped with this block, so that a merge still sending
                // after the writer failed stops instead of waiting.
                let written: Result<()> = {
                    let rx = rx;
                    let mut written = Ok(());
                    'rows: for (o, block) in rx.iter() {
                        for (k, c) in block {
                            if let Err(e) = w.push(o + 2, k, c) {
                                written = Err(e);
                                break 'rows;
                            }
                        }
                    }
                    written
                };
                let merged = merging.join().expect("the run merge does not panic");
                written.with_context(cache_err)?;
                merged
            })?;
            let sum = w.finish().with_context(cache_err)?;
            let ids = distinct(&unigram);
            (meta, totals, ids, Some(sp.runs.stats()), sum)
        }
    };
    crate::util::paths::write_atomic_bytes(&sum_path, format!("{sum}\n").as_bytes())?;
    Ok(Written {
        meta,
        totals,
        distinct_ids,
        path,
        cached: false,
        spilled,
    })
}

const META_KEY: &str = "mtkit.profile";

#[derive(Serialize, Deserialize)]
struct SavedMeta {
    meta: ProfileMeta,
    totals: Totals,
    /// SHA-256 of what decides the numbers and the numbers (see [`content_checksum`]); absent
    /// in profiles written before it existed, which load unchecked (the cache never holds
    /// those: their keys differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<String>,
}

/// SHA-256 over the cache key of `meta`, the totals and every count, so that a damaged file
/// (a flipped bit in the data or in the metadata) is detected on load instead of served.
fn content_checksum(
    meta: &ProfileMeta,
    totals: &Totals,
    unigram: &[u64],
    ngrams: &[NgramCounts],
) -> Result<String> {
    let mut h = Sha256::new();
    h.update(Profile::cache_key(meta).as_bytes());
    h.update(serde_json::to_vec(totals)?);
    for c in unigram {
        h.update(c.to_le_bytes());
    }
    for (o, t) in ngrams.iter().enumerate() {
        h.update([o as u8 + 2]);
        for (k, c) in t.sparse() {
            h.update(k.to_le_bytes());
            h.update(c.to_le_bytes());
        }
    }
    Ok(crate::util::digest::hex(&h.finalize()))
}

/// Where a cached profile with this metadata lives.
pub fn cache_path(meta: &ProfileMeta) -> PathBuf {
    crate::util::paths::cache_dir()
        .join("profiles")
        .join(format!(
            "{}-{}.parquet",
            meta.corpus,
            Profile::cache_key(meta)
        ))
}

/// The metadata and totals of the merge of shard profiles `parts` (their counts add): the
/// settings must agree, no shard may appear twice, all must be shards of one split; the
/// result covers the union of their shards (`None`: the whole corpus).
fn merged_meta(parts: &[(&ProfileMeta, &Totals)]) -> Result<(ProfileMeta, Totals)> {
    let (first, first_totals) = *parts.first().ok_or_else(|| anyhow!("nothing to merge"))?;
    let mut meta = first.clone();
    let mut totals = first_totals.clone();
    let mut shards: Vec<Shard> = first.shards.clone().unwrap_or_default();
    for (b, t) in &parts[1..] {
        check_mergeable(first, b)?;
        let theirs = b.shards.clone().ok_or_else(|| {
            anyhow!(
                "cannot merge: a profile of the whole corpus `{}` is among the parts",
                b.corpus
            )
        })?;
        if shards.is_empty() {
            bail!(
                "cannot merge: a profile of the whole corpus `{}` is among the parts",
                first.corpus
            );
        }
        for s in theirs {
            if shards.contains(&s) {
                bail!("cannot merge: shard {s} appears twice");
            }
            if s.count != shards[0].count {
                bail!(
                    "cannot merge shards of different splits ({} and {s})",
                    shards[0]
                );
            }
            shards.push(s);
        }
        totals.documents += t.documents;
        totals.tokens += t.tokens;
        totals.bytes += t.bytes;
        for (k, v) in &t.skipped {
            *totals.skipped.entry(k.clone()).or_default() += v;
        }
    }
    shards.sort_by_key(|s| s.index);
    let complete = shards
        .first()
        .map(|s| shards.len() as u64 == s.count)
        .unwrap_or(false);
    meta.shards = if complete { None } else { Some(shards) };
    Ok((meta, totals))
}

/// Refuses to merge profiles made under different settings, naming the first that differs.
fn check_mergeable(a: &ProfileMeta, b: &ProfileMeta) -> Result<()> {
    fn same<T: PartialEq>(what: &str, x: &T, y: &T, show: impl Fn(&T) -> String) -> Result<()> {
        if x != y {
            bail!(
                "cannot merge profiles with different {what}: {} vs {}",
                show(x),
                show(y)
            );
        }
        Ok(())
    }
    let text = |v: &String| v.clone();
    same("corpora", &a.corpus, &b.corpus, text)?;
    same("tokenizers", &a.tokenizer_sha256, &b.tokenizer_sha256, text)?;
    same("n-gram orders", &a.ngram, &b.ngram, |v| v.to_string())?;
    same("n-gram modes", &a.ngram_mode, &b.ngram_mode, |v| {
        format!("{v:?}")
    })?;
    same("--max-chars", &a.max_chars, &b.max_chars, |v| {
        format!("{v:?}")
    })?;
    same(
        "--max-tokens-per-doc",
        &a.max_tokens_per_doc,
        &b.max_tokens_per_doc,
        |v| format!("{v:?}"),
    )?;
    same("--max-docs", &a.max_docs, &b.max_docs, |v| format!("{v:?}"))?;
    same("seeds", &a.seed, &b.seed, |v| v.to_string())?;
    same(
        "corpus contents (card hash)",
        &a.card_hash,
        &b.card_hash,
        text,
    )
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn profiling_asks_the_kernel_for_small_pages() {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            return; // the user's choice then, which the function leaves alone
        }
        crate::util::memory::prefer_small_pages();
        // SAFETY: PR_GET_THP_DISABLE reads a flag of this process.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) },
            1
        );
    }

    use super::*;
    use hashbrown::HashMap;

    #[test]
    fn packing_round_trips() {
        let bits = id_bits(50_280);
        assert_eq!(bits, 16);
        assert_eq!(id_bits(65_536), 16);
        assert_eq!(id_bits(65_537), 17);
        let ids = [50_279u32, 0, 17, 65_535];
        assert_eq!(unpack(pack(&ids, bits), 4, bits), ids);
    }

    #[test]
    fn counts_ngrams_by_hand() {
        let mut c = Counter::new(10, 3, NgramMode::Exact);
        c.add(&[1, 2, 1, 2, 1]);
        c.add(&[3]);
        // Key 0 (every id 0) is the combining table's empty slot: it counts all the same.
        c.add(&[0, 0, 0, 0]);
        let c = c.finish();
        assert_eq!(c.unigram[..4], [4, 3, 2, 1]);
        assert_eq!(c.tokens, 10);
        let (bi, tri) = (&c.ngrams[0], &c.ngrams[1]);
        assert_eq!(bi.count(0), 3);
        assert_eq!(tri.count(0), 2);
        let (bi, tri) = (
            &NgramCounts::Exact(bi.sparse().into_iter().filter(|e| e.0 != 0).collect()),
            &NgramCounts::Exact(tri.sparse().into_iter().filter(|e| e.0 != 0).collect()),
        );
        assert_eq!(bi.distinct(), 2);
        assert_eq!(bi.count(pack(&[1, 2], 4)), 2);
        assert_eq!(bi.count(pack(&[2, 1], 4)), 2);
        assert_eq!(tri.distinct(), 2);
        assert_eq!(tri.count(pack(&[1, 2, 1], 4)), 2);
        assert_eq!(tri.count(pack(&[2, 1, 2], 4)), 1);
    }

    #[test]
    fn lower_orders_from_the_top_order_and_the_tails_by_hand() {
        // Orders 2 and 3 are derived from the 4-grams plus each document's tails; documents
        // shorter than 4 (no 4-gram at all) and of 4 exactly are the edges.
        let mut c = Counter::new(10, 4, NgramMode::Exact);
        c.add(&[1, 2, 3]);
        c.add(&[1, 2]);
        c.add(&[5]);
        c.add(&[1, 2, 3, 4]);
        c.add(&[1, 2, 3, 4, 1, 2]);
        let c = c.finish();
        let k = |ids: &[u32]| pack(ids, 4);
        let (bi, tri, four) = (&c.ngrams[0], &c.ngrams[1], &c.ngrams[2]);
        // 2-grams: [1,2] ×5 (one in each document of 2 or more, two in the last), [2,3] ×3,
        // [3,4] ×2, [4,1] ×1.
        assert_eq!(
            bi.sparse(),
            vec![
                (k(&[1, 2]), 5),
                (k(&[2, 3]), 3),
                (k(&[3, 4]), 2),
                (k(&[4, 1]), 1)
            ]
        );
        assert_eq!(
            tri.sparse(),
            vec![
                (k(&[1, 2, 3]), 3),
                (k(&[2, 3, 4]), 2),
                (k(&[3, 4, 1]), 1),
                (k(&[4, 1, 2]), 1)
            ]
        );
        assert_eq!(
            four.sparse(),
            vec![
                (k(&[1, 2, 3, 4]), 2),
                (k(&[2, 3, 4, 1]), 1),
                (k(&[3, 4, 1, 2]), 1)
            ]
        );
    }

    #[test]
    fn sorted_counting_agrees_with_a_hash_map() {
        // Enough keys for several buffer merges, from a skewed id distribution so that keys
        // repeat both within and across merges; checked against a plain hash map.
        let mut rng = crate::util::rng::Rng::new(9);
        let vocab = 50_277;
        let docs: Vec<Vec<u32>> = (0..6000)
            .map(|_| {
                let len = (rng.next_f64() * 900.0) as usize;
                (0..len)
                    .map(|_| ((rng.next_f64().powi(3) * vocab as f64) as u32).min(vocab - 1))
                    .collect()
            })
            .collect();
        let (mut a, mut b) = (
            Counter::new(vocab as usize, 4, NgramMode::Exact),
            Counter::new(vocab as usize, 4, NgramMode::Exact),
        );
        // Small buffers for one: many merges of the combining table's evictions (keys and
        // pairs, radix-sorted past 2^14 of them) before the last one drains it.
        a.flush_keys = 1 << 15;
        for (i, d) in docs.iter().enumerate() {
            if i % 3 == 0 {
                b.add(d)
            } else {
                a.add(d)
            }
        }
        a.merge(b);
        let got = a.finish();
        let bits = id_bits(vocab as usize);
        for n in 2..=4 {
            let mut want: HashMap<u64, u64> = HashMap::new();
            for d in &docs {
                for w in d.windows(n) {
                    *want.entry(pack(w, bits)).or_default() += 1;
                }
            }
            let mut want: Vec<(u64, u64)> = want.into_iter().collect();
            want.sort_unstable();
            assert_eq!(got.ngrams[n - 2], NgramCounts::Exact(want), "order {n}");
        }
    }

    #[test]
    fn in_place_merges_agree_with_a_merge_by_hand() {
        // Every shape: empty sides, keys all shared, none shared, new keys before, between and
        // after the list's, and repeats in the buffered keys.
        type Pairs = Vec<(u64, u64)>;
        let list = vec![(3u64, 1u64), (7, 2), (9, 5)];
        // (list, keys merged into it, the merge by hand)
        let cases: Vec<(Pairs, Vec<u64>, Pairs)> = vec![
            (vec![], vec![4, 4, 8], vec![(4, 2), (8, 1)]),
            (list.clone(), vec![], list.clone()),
            (list.clone(), vec![3, 7, 7, 9], vec![(3, 2), (7, 4), (9, 6)]),
            (
                list.clone(),
                vec![1, 5, 5, 5, 12],
                vec![(1, 1), (3, 1), (5, 3), (7, 2), (9, 5), (12, 1)],
            ),
            (
                list.clone(),
                vec![0, 3, 8, 9, 9, 10],
                vec![(0, 1), (3, 2), (7, 2), (8, 1), (9, 7), (10, 1)],
            ),
            (
                vec![(u64::MAX, 1)],
                vec![0, u64::MAX],
                vec![(0, 1), (u64::MAX, 2)],
            ),
        ];
        for (a, keys, want) in cases {
            let mut got = a.clone();
            merge_two_in_place(&mut got, &keys, &[]);
            assert_eq!(got, want, "keys {keys:?} into {a:?}");
            // The same merge from (key, count) pairs.
            let mut pairs: Vec<(u64, u64)> = Vec::new();
            for &k in &keys {
                match pairs.last_mut() {
                    Some((last, c)) if *last == k => *c += 1,
                    _ => pairs.push((k, 1)),
                }
            }
            let mut got = a.clone();
            merge_pairs_in_place(&mut got, &pairs);
            assert_eq!(got, want, "pairs {pairs:?} into {a:?}");
            let mut got = a.clone();
            merge_two_in_place(&mut got, &[], &pairs);
            assert_eq!(got, want, "pairs only {pairs:?} into {a:?}");
            // Split between the two sides, as the combining table's evictions are: every
            // other distinct key as pairs, the rest as repeated keys; and with a key on both.
            let (mut as_keys, mut as_pairs) = (Vec::new(), Vec::new());
            for (i, &(k, c)) in pairs.iter().enumerate() {
                match i % 2 {
                    0 => as_pairs.push((k, c)),
                    _ => as_keys.extend(std::iter::repeat_n(k, c as usize)),
                }
            }
            let mut got = a.clone();
            merge_two_in_place(&mut got, &as_keys, &as_pairs);
            assert_eq!(
                got, want,
                "keys {as_keys:?} and pairs {as_pairs:?} into {a:?}"
            );
            if let Some(&(k, c)) = pairs.first() {
                if c >= 2 {
                    let (keys_part, pairs_part) = (vec![k], vec![(k, c - 1)]);
                    let mut got = a.clone();
                    let mut rest: Vec<(u64, u64)> = pairs_part.clone();
                    rest.extend_from_slice(&pairs[1..]);
                    merge_two_in_place(&mut got, &keys_part, &rest);
                    assert_eq!(got, want, "key {k} on both sides into {a:?}");
                }
            }
        }
    }

    #[test]
    fn radix_sort_sorts() {
        let mut rng = crate::util::rng::Rng::new(3);
        // One scratch for every sort, as a counter reuses it: longer than the keys after the
        // first, and swapped in (odd pass counts: 16 and 33 bits) with what it held past them.
        let mut scratch = Vec::new();
        for (bits, n) in [(64u32, 60_000), (16, 50_000), (33, 20_000), (64, 30_000)] {
            let mut keys: Vec<u64> = (0..n)
                .map(|_| {
                    let k = rng.next_u64();
                    if bits == 64 {
                        k
                    } else {
                        k & ((1 << bits) - 1)
                    }
                })
                .collect();
            let mut want = keys.clone();
            want.sort_unstable();
            radix_sort(&mut keys, &mut scratch, bits);
            assert_eq!(keys, want, "{bits} bits, {n} keys");
        }
    }

    #[test]
    fn hashed_mode_conserves_totals() {
        let mut c = Counter::new(10, 4, NgramMode::Hashed { buckets: 7 });
        c.add(&[1, 2, 3, 4, 5, 6]);
        let c = c.finish();
        let NgramCounts::Hashed(b) = &c.ngrams[2] else {
            panic!()
        };
        assert_eq!(b.iter().sum::<u64>(), 3, "six tokens hold three 4-grams");
    }

    #[test]
    fn exact_mode_refuses_keys_over_64_bits() {
        let opts = ProfileOptions {
            sample: SampleSpec::default(),
            max_tokens_per_doc: None,
            ngram: 4,
            ngram_mode: NgramMode::Exact,
            keep_docs: false,
        };
        assert!(opts.validate(50_280).is_ok());
        let e = opts.validate(128_256).unwrap_err().to_string();
        assert!(e.contains("--ngram-buckets"), "{e}");
    }

    #[test]
    fn sparse_counts_by_hand() {
        assert_eq!(
            sparse_counts(&[5, 1, 5, 5, 2]),
            vec![(1, 1), (2, 1), (5, 3)]
        );
    }
}
