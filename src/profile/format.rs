//! The profile file: one parquet file (`order, t1..tN, bucket, count`) with its metadata,
//! totals and checksums in the footer; saving, loading with every check, and merging shards.

use super::*;

/// Where a parquet file's footer starts: the file ends with the footer, its length (u32 LE)
/// and `PAR1`, and starts with `PAR1`.
pub(super) fn parquet_footer_start(bytes: &[u8]) -> Result<usize> {
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

/// Key of the SHA-256 of a saved profile's data pages (every byte before the parquet footer),
/// checked before any page is decoded.
pub(super) const PAGES_KEY: &str = "mtkit.pages_sha256";

/// What the footer holds while the pages are written: as long as the hex digest that replaces
/// it, so the footer's encoding does not change.
pub(super) const PAGES_PLACEHOLDER: &str =
    "mtkit-pages-sha256-placeholder-000000000000000000000000000000000";

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
            &|i| format!("part {}", i + 1),
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
    pub(super) fn save_summed(&self, path: &Path) -> Result<String> {
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

    pub(super) fn load_unchecked(path: &Path) -> Result<Profile> {
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

pub(super) const META_KEY: &str = "mtkit.profile";

#[derive(Serialize, Deserialize)]
pub(super) struct SavedMeta {
    pub(super) meta: ProfileMeta,
    pub(super) totals: Totals,
    /// SHA-256 of what decides the numbers and the numbers (see [`content_checksum`]); absent
    /// in profiles written before it existed, which load unchecked (the cache never holds
    /// those: their keys differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) checksum: Option<String>,
}

/// SHA-256 over the cache key of `meta`, the totals and every count, so that a damaged file
/// (a flipped bit in the data or in the metadata) is detected on load instead of served.
pub(super) fn content_checksum(
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

/// The metadata and totals of the merge of shard profiles `parts` (their counts add): the
/// settings must agree, no shard may appear twice, all must be shards of one split; the
/// result covers the union of their shards (`None`: the whole corpus). `name(i)` says where
/// part `i` came from, for the errors.
pub(super) fn merged_meta(
    parts: &[(&ProfileMeta, &Totals)],
    name: &dyn Fn(usize) -> String,
) -> Result<(ProfileMeta, Totals)> {
    let (first, first_totals) = *parts.first().ok_or_else(|| anyhow!("nothing to merge"))?;
    let mut meta = first.clone();
    let mut totals = first_totals.clone();
    let mut shards: Vec<Shard> = first.shards.clone().unwrap_or_default();
    for (i, (b, t)) in parts.iter().enumerate().skip(1) {
        check_mergeable(first, b, &name(0), &name(i))?;
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
    // No shards at all: the only part is a profile of the whole corpus.
    meta.shards = if complete || shards.is_empty() {
        None
    } else {
        Some(shards)
    };
    Ok((meta, totals))
}

/// Refuses to merge profiles made under different settings, naming the first that differs
/// with each side's value in the words of its flag, and where each is (`where_a`, `where_b`:
/// the parts' files, or their places in the list).
pub(super) fn check_mergeable(
    a: &ProfileMeta,
    b: &ProfileMeta,
    where_a: &str,
    where_b: &str,
) -> Result<()> {
    let same = |what: &str, x: String, y: String| -> Result<()> {
        if x != y {
            bail!(
                "cannot merge profiles with different {what}: {x} in {where_a}, {y} in {where_b}"
            );
        }
        Ok(())
    };
    let cut = |v: Option<usize>| v.map_or("none (whole documents)".to_string(), |n| n.to_string());
    let mode = |m: &NgramMode| match m {
        NgramMode::Exact => "exact".to_string(),
        NgramMode::Hashed { buckets } => format!("hashed into {buckets} buckets"),
    };
    let docs = |v: Option<u64>| v.map_or("all".to_string(), |n| n.to_string());
    same("corpora", a.corpus.clone(), b.corpus.clone())?;
    same(
        "tokenizers (SHA-256)",
        a.tokenizer_sha256.clone(),
        b.tokenizer_sha256.clone(),
    )?;
    same("--ngram", a.ngram.to_string(), b.ngram.to_string())?;
    same("n-gram counting", mode(&a.ngram_mode), mode(&b.ngram_mode))?;
    same("--max-chars", cut(a.max_chars), cut(b.max_chars))?;
    same(
        "--max-tokens-per-doc",
        cut(a.max_tokens_per_doc),
        cut(b.max_tokens_per_doc),
    )?;
    same("--max-docs", docs(a.max_docs), docs(b.max_docs))?;
    same("--seed", a.seed.to_string(), b.seed.to_string())?;
    same(
        "corpus contents (card hash)",
        a.card_hash.clone(),
        b.card_hash.clone(),
    )
}
