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
use std::sync::mpsc::sync_channel;
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use hashbrown::HashMap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::Card;
use crate::corpus::{read_documents, Document, SampleSpec, Shard};
use crate::progress::Progress;
use crate::rng::mix64;
use crate::tokenize::Tokenizer;

/// Version of the profile file layout; part of the cache key.
pub const FORMAT_VERSION: u32 = 1;

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
    /// Packed n-gram key → count.
    Exact(HashMap<u64, u64>),
    /// Bucket → count.
    Hashed(Vec<u64>),
}

impl NgramCounts {
    fn add(&mut self, other: &NgramCounts) {
        match (self, other) {
            (NgramCounts::Exact(a), NgramCounts::Exact(b)) => {
                for (k, v) in b {
                    *a.entry(*k).or_insert(0) += v;
                }
            }
            (NgramCounts::Hashed(a), NgramCounts::Hashed(b)) => {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
            }
            _ => unreachable!("n-gram modes are checked before merging"),
        }
    }

    /// The non-zero counts as a sparse vector keyed by n-gram key or bucket.
    pub fn sparse(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = match self {
            NgramCounts::Exact(m) => m.iter().map(|(k, c)| (*k, *c)).collect(),
            NgramCounts::Hashed(b) => b
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i as u64, *c))
                .collect(),
        };
        v.sort_unstable();
        v
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
            if buckets == 0 {
                bail!("--ngram-buckets must be positive");
            }
        }
        Ok(())
    }
}

/// Per-thread accumulator.
struct Counts {
    unigram: Vec<u64>,
    ngrams: Vec<NgramCounts>,
    tokens: u64,
}

impl Counts {
    fn new(vocab: usize, opts: &ProfileOptions) -> Counts {
        let ngrams = (2..=opts.ngram)
            .map(|_| match opts.ngram_mode {
                NgramMode::Exact => NgramCounts::Exact(HashMap::new()),
                NgramMode::Hashed { buckets } => NgramCounts::Hashed(vec![0; buckets as usize]),
            })
            .collect();
        Counts {
            unigram: vec![0; vocab],
            ngrams,
            tokens: 0,
        }
    }

    fn add_doc(&mut self, ids: &[u32], bits: u32) {
        self.tokens += ids.len() as u64;
        for &id in ids {
            self.unigram[id as usize] += 1;
        }
        for (o, table) in self.ngrams.iter_mut().enumerate() {
            let n = o + 2;
            if ids.len() < n {
                continue;
            }
            match table {
                NgramCounts::Exact(m) => {
                    m.reserve(ids.len() + 1 - n);
                    // Rolling key: shift in one id, mask to n ids.
                    let mask = if n as u32 * bits >= 64 {
                        u64::MAX
                    } else {
                        (1u64 << (n as u32 * bits)) - 1
                    };
                    let mut key = pack(&ids[..n - 1], bits);
                    for &id in &ids[n - 1..] {
                        key = ((key << bits) | id as u64) & mask;
                        *m.entry(key).or_insert(0) += 1;
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

    fn merge(&mut self, other: Counts) {
        for (a, b) in self.unigram.iter_mut().zip(&other.unigram) {
            *a += b;
        }
        for (a, b) in self.ngrams.iter_mut().zip(&other.ngrams) {
            a.add(b);
        }
        self.tokens += other.tokens;
    }
}

const BATCH_DOCS: usize = 512;
const BATCH_BYTES: u64 = 4 << 20;

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

/// The metadata a profile of `card` under `opts` will carry (and its cache key).
pub fn meta_for(card: &Card, tok: &Tokenizer, opts: &ProfileOptions) -> Result<ProfileMeta> {
    Ok(ProfileMeta {
        format: FORMAT_VERSION,
        mtkit_version: crate::VERSION.to_string(),
        corpus: card.name.clone(),
        card_hash: card.content_hash()?,
        card_origin: card.origin.clone(),
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
    })
}

fn build_with(
    meta: ProfileMeta,
    card: &Card,
    tok: &Tokenizer,
    opts: &ProfileOptions,
    progress: &dyn Progress,
) -> Result<Profile> {
    let bits = id_bits(tok.vocab_size);
    let threads = rayon::current_num_threads();
    let locals: Vec<Mutex<Counts>> = (0..threads + 1)
        .map(|_| Mutex::new(Counts::new(tok.vocab_size, opts)))
        .collect();
    let mut docs_out: Option<Vec<Vec<(u32, u32)>>> = opts.keep_docs.then(Vec::new);
    progress.start(&card.name, opts.sample.max_docs);

    let (tx, rx) = sync_channel::<Vec<Document>>(4);
    let summary = std::thread::scope(|s| -> Result<_> {
        let reader = s.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH_DOCS);
            let mut bytes = 0u64;
            let r = read_documents(card, &opts.sample, &mut |d| {
                bytes += d.text.len() as u64;
                batch.push(d);
                if batch.len() >= BATCH_DOCS || bytes >= BATCH_BYTES {
                    bytes = 0;
                    tx.send(std::mem::take(&mut batch))
                        .map_err(|_| anyhow!("profiling stopped"))?;
                }
                Ok(())
            });
            if r.is_ok() && !batch.is_empty() {
                let _ = tx.send(batch);
            }
            r
        });
        let mut failure = None;
        for batch in rx.iter() {
            if failure.is_some() {
                continue; // drain so the reader can finish
            }
            let bytes: u64 = batch.iter().map(|d| d.text.len() as u64).sum();
            let encoded: Result<Vec<Vec<u32>>> = batch
                .par_iter()
                .map(|d| {
                    let ids = tok.encode(&d.text, opts.max_tokens_per_doc)?;
                    let slot = rayon::current_thread_index().map(|i| i + 1).unwrap_or(0);
                    locals[slot]
                        .lock()
                        .expect("counter lock")
                        .add_doc(&ids, bits);
                    Ok(ids)
                })
                .collect();
            match encoded {
                Ok(enc) => {
                    let toks: u64 = enc.iter().map(|e| e.len() as u64).sum();
                    if let Some(out) = docs_out.as_mut() {
                        out.extend(enc.iter().map(|ids| sparse_counts(ids)));
                    }
                    progress.advance(batch.len() as u64, bytes, toks);
                }
                Err(e) => failure = Some(e),
            }
        }
        let summary = reader
            .join()
            .map_err(|_| anyhow!("the corpus reader panicked"))??;
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(summary)
    })?;
    progress.finish();

    let mut total = Counts::new(tok.vocab_size, opts);
    for l in locals {
        total.merge(l.into_inner().expect("counter lock"));
    }
    Ok(Profile {
        meta,
        totals: Totals {
            documents: summary.documents,
            tokens: total.tokens,
            bytes: summary.bytes,
            skipped: summary.skipped,
        },
        unigram: total.unigram,
        ngrams: total.ngrams,
        docs: docs_out,
    })
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
        crate::catalog::hex(&Sha256::digest(bytes))[..32].to_string()
    }

    /// Merges shard profiles of one corpus made with the same settings: counts add exactly.
    pub fn merge(parts: &[Profile]) -> Result<Profile> {
        let first = parts.first().ok_or_else(|| anyhow!("nothing to merge"))?;
        let mut out = first.clone();
        out.docs = None;
        let mut shards: Vec<Shard> = first.meta.shards.clone().unwrap_or_default();
        for p in &parts[1..] {
            let (a, b) = (&first.meta, &p.meta);
            let same = |what: &str, x: String, y: String| -> Result<()> {
                if x != y {
                    bail!("cannot merge profiles with different {what}: {x} vs {y}");
                }
                Ok(())
            };
            same("corpora", a.corpus.clone(), b.corpus.clone())?;
            same(
                "tokenizers",
                a.tokenizer_sha256.clone(),
                b.tokenizer_sha256.clone(),
            )?;
            same("n-gram orders", a.ngram.to_string(), b.ngram.to_string())?;
            same(
                "n-gram modes",
                format!("{:?}", a.ngram_mode),
                format!("{:?}", b.ngram_mode),
            )?;
            same(
                "--max-chars",
                format!("{:?}", a.max_chars),
                format!("{:?}", b.max_chars),
            )?;
            same(
                "--max-tokens-per-doc",
                format!("{:?}", a.max_tokens_per_doc),
                format!("{:?}", b.max_tokens_per_doc),
            )?;
            same(
                "--max-docs",
                format!("{:?}", a.max_docs),
                format!("{:?}", b.max_docs),
            )?;
            same("seeds", a.seed.to_string(), b.seed.to_string())?;
            same(
                "corpus contents (card hash)",
                a.card_hash.clone(),
                b.card_hash.clone(),
            )?;
            let theirs = b.shards.clone().ok_or_else(|| {
                anyhow!(
                    "cannot merge: a profile of the whole corpus `{}` is among the parts",
                    b.corpus
                )
            })?;
            if shards.is_empty() {
                bail!(
                    "cannot merge: a profile of the whole corpus `{}` is among the parts",
                    a.corpus
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
            for (x, y) in out.unigram.iter_mut().zip(&p.unigram) {
                *x += y;
            }
            for (x, y) in out.ngrams.iter_mut().zip(&p.ngrams) {
                x.add(y);
            }
            let t = &mut out.totals;
            t.documents += p.totals.documents;
            t.tokens += p.totals.tokens;
            t.bytes += p.totals.bytes;
            for (k, v) in &p.totals.skipped {
                *t.skipped.entry(k.clone()).or_default() += v;
            }
        }
        shards.sort_by_key(|s| s.index);
        let complete = shards
            .first()
            .map(|s| shards.len() as u64 == s.count)
            .unwrap_or(false);
        out.meta.shards = if complete { None } else { Some(shards) };
        Ok(out)
    }

    /// Saves as parquet (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        use polars::prelude::{Column, DataFrame, KeyValueMetadata, ParquetWriter};
        let n = self.meta.ngram;
        let bits = id_bits(self.meta.vocab_size);
        let mut order: Vec<u8> = Vec::new();
        let mut tcols: Vec<Vec<Option<u32>>> = vec![Vec::new(); n];
        let mut bucket: Vec<Option<u64>> = Vec::new();
        let mut count: Vec<u64> = Vec::new();
        for (id, &c) in self.unigram.iter().enumerate() {
            if c > 0 {
                order.push(1);
                tcols[0].push(Some(id as u32));
                for col in tcols.iter_mut().skip(1) {
                    col.push(None);
                }
                bucket.push(None);
                count.push(c);
            }
        }
        for (o, table) in self.ngrams.iter().enumerate() {
            let k = o + 2;
            let hashed = matches!(table, NgramCounts::Hashed(_));
            for (key, c) in table.sparse() {
                order.push(k as u8);
                if hashed {
                    for col in tcols.iter_mut() {
                        col.push(None);
                    }
                    bucket.push(Some(key));
                } else {
                    let ids = unpack(key, k, bits);
                    for (i, col) in tcols.iter_mut().enumerate() {
                        col.push(ids.get(i).copied());
                    }
                    bucket.push(None);
                }
                count.push(c);
            }
        }
        let mut columns: Vec<Column> = vec![Column::new("order".into(), order)];
        for (i, col) in tcols.into_iter().enumerate() {
            columns.push(Column::new(format!("t{}", i + 1).into(), col));
        }
        columns.push(Column::new("bucket".into(), bucket));
        columns.push(Column::new("count".into(), count));
        let mut df = DataFrame::new_infer_height(columns)?;
        let meta_json = serde_json::to_string(&SavedMeta {
            meta: self.meta.clone(),
            totals: self.totals.clone(),
        })?;
        crate::paths::write_atomic(path, |w| {
            ParquetWriter::new(w)
                .with_key_value_metadata(Some(KeyValueMetadata::from_static(vec![(
                    META_KEY.to_string(),
                    meta_json,
                )])))
                .finish(&mut df)?;
            Ok(())
        })
    }

    /// Loads a profile saved by [`Profile::save`].
    pub fn load(path: &Path) -> Result<Profile> {
        use polars::prelude::{ParquetReader, PolarsResult, SerReader, UInt32Chunked};
        let open = || {
            std::fs::File::open(path)
                .with_context(|| format!("cannot open profile {}", path.display()))
        };
        let mut reader = ParquetReader::new(open()?);
        let md = reader
            .get_metadata()
            .with_context(|| format!("{} is not a parquet file", path.display()))?;
        let json = md
            .key_value_metadata()
            .as_ref()
            .and_then(|kv| kv.iter().find(|k| k.key == META_KEY))
            .and_then(|k| k.value.clone())
            .ok_or_else(|| {
                anyhow!(
                    "{} is not an mtkit profile (no `{META_KEY}` metadata)",
                    path.display()
                )
            })?;
        let saved: SavedMeta = serde_json::from_str(&json)
            .with_context(|| format!("{}: bad profile metadata", path.display()))?;
        if saved.meta.format != FORMAT_VERSION {
            bail!(
                "{}: profile format {} is not the supported {FORMAT_VERSION}; rebuild it",
                path.display(),
                saved.meta.format
            );
        }
        let df = ParquetReader::new(open()?)
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
            unigram: vec![0; saved.meta.vocab_size],
            ngrams: (2..=n)
                .map(|_| match saved.meta.ngram_mode {
                    NgramMode::Exact => NgramCounts::Exact(HashMap::new()),
                    NgramMode::Hashed { buckets } => NgramCounts::Hashed(vec![0; buckets as usize]),
                })
                .collect(),
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
                match p.ngrams.get_mut(o - 2).ok_or_else(bad)? {
                    NgramCounts::Exact(m) => {
                        let ids: Vec<u32> = (0..o)
                            .map(|j| tcols[j].get(i))
                            .collect::<Option<_>>()
                            .ok_or_else(bad)?;
                        m.insert(pack(&ids, bits), c);
                    }
                    NgramCounts::Hashed(b) => {
                        let k = bucket.get(i).ok_or_else(bad)? as usize;
                        *b.get_mut(k).ok_or_else(bad)? = c;
                    }
                }
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
    if use_cache && !opts.keep_docs && path.exists() {
        if let Ok(p) = Profile::load(&path) {
            if Profile::cache_key(&p.meta) == Profile::cache_key(&meta) && !opts.sample.strict {
                return Ok((p, true));
            }
        }
    }
    let p = build_with(meta, card, tok, opts, progress)?;
    // A strict run that passed is as good as any; the cache is shared by both.
    p.save(&path)
        .with_context(|| format!("cannot write the profile cache {}", path.display()))?;
    Ok((p, false))
}

const META_KEY: &str = "mtkit.profile";

#[derive(Serialize, Deserialize)]
struct SavedMeta {
    meta: ProfileMeta,
    totals: Totals,
}

/// Where a cached profile with this metadata lives.
pub fn cache_path(meta: &ProfileMeta) -> PathBuf {
    crate::paths::cache_dir().join("profiles").join(format!(
        "{}-{}.parquet",
        meta.corpus,
        Profile::cache_key(meta)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let opts = ProfileOptions {
            sample: SampleSpec::default(),
            max_tokens_per_doc: None,
            ngram: 3,
            ngram_mode: NgramMode::Exact,
            keep_docs: false,
        };
        let mut c = Counts::new(10, &opts);
        c.add_doc(&[1, 2, 1, 2, 1], 4);
        c.add_doc(&[3], 4);
        assert_eq!(c.unigram[..4], [0, 3, 2, 1]);
        assert_eq!(c.tokens, 6);
        let NgramCounts::Exact(bi) = &c.ngrams[0] else {
            panic!()
        };
        assert_eq!(bi.len(), 2);
        assert_eq!(bi[&pack(&[1, 2], 4)], 2);
        assert_eq!(bi[&pack(&[2, 1], 4)], 2);
        let NgramCounts::Exact(tri) = &c.ngrams[1] else {
            panic!()
        };
        assert_eq!(tri[&pack(&[1, 2, 1], 4)], 2);
        assert_eq!(tri[&pack(&[2, 1, 2], 4)], 1);
    }

    #[test]
    fn hashed_mode_conserves_totals() {
        let opts = ProfileOptions {
            sample: SampleSpec::default(),
            max_tokens_per_doc: None,
            ngram: 4,
            ngram_mode: NgramMode::Hashed { buckets: 7 },
            keep_docs: false,
        };
        let mut c = Counts::new(10, &opts);
        c.add_doc(&[1, 2, 3, 4, 5, 6], 4);
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
