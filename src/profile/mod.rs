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
//!
//! This file says what a profile is (its metadata, totals, counts and options); the folder
//! holds the rest, one subject a file: `counter.rs` (one worker's counts), `sort.rs` (the
//! sorted lists' sort and merges), `count.rs` (a corpus counted on all workers, in memory or
//! spilling), `spill.rs` (the spilled runs), `cache.rs` (the profile cache), `format.rs` (the
//! file: save, load, merge) and `stream.rs` (the file written and read a row group at a time).

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

mod cache;
mod count;
mod counter;
mod format;
mod sort;
pub mod spill;
pub mod stream;
pub use cache::*;
pub use count::*;
pub use counter::*;
use format::*;
use sort::*;
pub use spill::{SpillOptions, SpillStats};
pub use stream::{check_coverage, merge_files, ProfileRows, ProfileWriter};

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
