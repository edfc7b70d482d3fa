//! Counting a corpus: read → tokenize → count on rayon's workers, in memory ([`build`],
//! `InMemory`) or within a memory budget, spilling sorted runs ([`count_documents_spilling`]).

use super::*;

// Batches are small so that the workers, which take whole batches, finish together.
pub(super) const BATCH_DOCS: usize = 128;

pub(super) const BATCH_BYTES: u64 = 256 << 10;

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
    count_documents(meta, name, &read, tok, opts, progress, opts.sample.max_docs)
}

/// One batch's documents as (token id, count) lists, with the batch's place in reading order.
pub(super) type KeptBatch = (u64, Vec<Vec<(u32, u32)>>);

pub(super) fn build_with(
    meta: ProfileMeta,
    card: &Card,
    tok: &Tokenizer,
    opts: &ProfileOptions,
    progress: &dyn Progress,
) -> Result<Profile> {
    let read = |on_doc: &mut dyn FnMut(crate::data::corpus::Document) -> Result<()>| {
        crate::data::corpus::read_documents_with(card, &opts.sample, &[], on_doc)
    };
    let expected = expected_documents(card, &opts.sample);
    count_documents(meta, &card.name, &read, tok, opts, progress, expected)
}

/// The documents a profile of `card` will count, for the progress bar's total: the card's
/// record count where it is known without reading (else `--max-docs`, or none).
pub(super) fn expected_documents(
    card: &Card,
    sample: &crate::data::corpus::SampleSpec,
) -> Option<u64> {
    match card.resolve() {
        Ok(r) => crate::data::corpus::expected_documents(&r, sample),
        Err(_) => sample.max_docs,
    }
}

/// Reads, tokenizes and counts what `read` delivers, in memory; `expected` documents (the
/// progress bar's total) where known.
pub(super) fn count_documents(
    meta: ProfileMeta,
    name: &str,
    read: &crate::tokenize::pipeline::DocReader<'_>,
    tok: &Tokenizer,
    opts: &ProfileOptions,
    progress: &dyn Progress,
    expected: Option<u64>,
) -> Result<Profile> {
    match count_documents_spilling(meta, (name, expected), read, tok, opts, progress, None)? {
        Counted::Memory(c) => Ok(c.into_profile()),
        Counted::Spilled { .. } => unreachable!("nothing spills without runs"),
    }
}

/// What `--ngram-buckets B` is called in messages.
pub(super) fn buckets_what(buckets: u64) -> String {
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

/// One batch counted by one worker: each document encoded and counted (its sparse counts kept
/// with `keep_docs`), then the worker's counts spilled when they pass its share. Returns the
/// documents' counts (with `keep_docs`), their bytes and their tokens.
#[allow(clippy::type_complexity)]
fn count_batch(
    batch: &[crate::data::corpus::Document],
    counter: &mut Counter,
    encoder: &mut Encoder,
    opts: &ProfileOptions,
    spill: Option<&Spill>,
) -> Result<(Option<Vec<Vec<(u32, u32)>>>, u64, u64)> {
    let mut docs = opts.keep_docs.then(|| Vec::with_capacity(batch.len()));
    let (mut bytes, mut toks) = (0u64, 0u64);
    let mut ids = Vec::new();
    for d in batch {
        ids.clear();
        encoder.encode_into(&d.text, opts.max_tokens_per_doc, &mut ids)?;
        counter.add(&ids);
        bytes += d.text.len() as u64;
        toks += ids.len() as u64;
        if let Some(out) = docs.as_mut() {
            out.push(sparse_counts(&ids));
        }
    }
    if let Some(sp) = spill {
        if counter.peak_bytes() > sp.share {
            counter.spill(&sp.runs)?;
        }
    }
    Ok((docs, bytes, toks))
}

/// Some counts are on disk: the workers' remaining counts go there too (the profile is the
/// runs' merge), and the unigram counts and totals are summed here.
fn spill_the_rest(
    parts: Vec<Counter>,
    sp: &Spill,
    vocab_size: usize,
    meta: ProfileMeta,
    summary: crate::data::corpus::ReadSummary,
) -> Result<Counted> {
    let mut unigram = vec![0u64; vocab_size];
    let mut tokens = 0;
    for mut c in parts {
        c.spill(&sp.runs)?;
        for (a, b) in unigram.iter_mut().zip(&c.unigram) {
            *a += b;
        }
        tokens += c.tokens;
    }
    Ok(Counted::Spilled {
        meta,
        totals: Totals {
            documents: summary.documents,
            tokens,
            bytes: summary.bytes,
            skipped: summary.skipped,
        },
        unigram,
    })
}

/// One counter and one encoder (with its pre-token cache) per worker, and one for the calling
/// thread, checked against the memory available first.
fn worker_counters<'t>(
    tok: &'t Tokenizer,
    opts: &ProfileOptions,
    spill: Option<&Spill>,
) -> Result<Vec<Mutex<(Counter, Encoder<'t>)>>> {
    // Orders ≥ 2 buffer keys before merging them; a small share buffers fewer.
    let flush_keys =
        match spill {
            Some(s) => (s.share / (32 * opts.ngram.max(2) as u64))
                .clamp(1 << 12, MIN_FLUSH_KEYS as u64) as usize,
            None => MIN_FLUSH_KEYS,
        };
    // One counter and one encoder (with its pre-token cache) per worker.
    let threads = rayon::current_num_threads();
    check_counter_memory(tok.vocab_size, opts, threads + 1)?;
    (0..threads + 1)
        .map(|_| {
            let mut c = Counter::try_new(tok.vocab_size, opts.ngram, opts.ngram_mode)?;
            c.flush_keys = flush_keys;
            // Address space for each list: the worker's whole share, which it never passes.
            c.reserve_bytes = spill.map(|s| s.share.min(4 << 30)).unwrap_or(0);
            Ok(Mutex::new((c, tok.encoder())))
        })
        .collect()
}

/// A memory budget per worker and where its runs go.
pub(super) struct Spill {
    pub(super) runs: spill::Runs,
    pub(super) share: u64,
}

/// What counting gave: a profile in memory, or (when the budget was reached) the unigram
/// counts and totals with the n-grams in runs on disk.
pub(super) enum Counted {
    Memory(InMemory),
    Spilled {
        meta: ProfileMeta,
        totals: Totals,
        unigram: Vec<u64>,
    },
}

/// [`count_documents`], spilling each worker's n-gram counts to `spill`'s runs whenever they
/// would pass its share of the budget. `stage` is the progress bar's label and its total (the
/// documents expected, where known).
pub(super) fn count_documents_spilling(
    meta: ProfileMeta,
    stage: (&str, Option<u64>),
    read: &crate::tokenize::pipeline::DocReader<'_>,
    tok: &Tokenizer,
    opts: &ProfileOptions,
    progress: &dyn Progress,
    spill: Option<&Spill>,
) -> Result<Counted> {
    let locals = worker_counters(tok, opts, spill)?;
    // Per-batch document counts (for bootstrap), put back in reading order at the end.
    let kept: Mutex<Vec<KeptBatch>> = Mutex::new(Vec::new());
    // The first failing batch (by reading order), so the error reported does not depend on
    // thread timing.
    let failure: Mutex<Option<(u64, anyhow::Error)>> = Mutex::new(None);
    progress.start(stage.0, stage.1);
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
                let counted = count_batch(&batch, counter, encoder, opts, spill);
                drop(local);
                match counted {
                    Ok((docs, bytes, toks)) => {
                        if let Some(docs) = docs {
                            kept.lock().expect("docs lock").push((seq, docs));
                        }
                        progress.advance(batch.len() as u64, bytes, toks);
                    }
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        let mut f = failure.lock().expect("failure lock");
                        if f.as_ref().map(|(s, _)| seq < *s).unwrap_or(true) {
                            *f = Some((seq, e));
                        }
                    }
                }
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
        return spill_the_rest(parts, sp, tok.vocab_size, meta, summary);
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

/// Rows written between two progress reports of a profile's write.
pub(super) const PROGRESS_ROWS: u64 = 1 << 16;

/// Counts that fit in memory: each worker's, not yet added together.
pub(super) struct InMemory {
    pub(super) meta: ProfileMeta,
    pub(super) totals: Totals,
    pub(super) vocab_size: usize,
    pub(super) ngram: usize,
    pub(super) mode: NgramMode,
    pub(super) parts: Vec<Counts>,
    pub(super) docs: Option<Vec<Vec<(u32, u32)>>>,
}

impl InMemory {
    pub(super) fn unigram(&self) -> Vec<u64> {
        sum_unigrams(self.vocab_size, self.parts.iter().map(|p| &p.unigram[..]))
    }

    /// The profile: the workers' tables added into the largest.
    pub(super) fn into_profile(self) -> Profile {
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
    ///
    /// `progress` gets a stage per order, counting the workers' entries merged (a binary
    /// search per list every [`PROGRESS_ROWS`] rows written: the rows themselves are fewer,
    /// since workers share n-grams).
    pub(super) fn save(
        self,
        path: &Path,
        unigram: &[u64],
        progress: &dyn Progress,
    ) -> Result<String> {
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
            let total: usize = lists.iter().map(|l| l.len()).sum();
            progress.start_counting(&format!("writing {}-grams", o + 2), total as u64, "n-grams");
            let (mut rows, mut merged) = (0u64, 0u64);
            merge_sorted_lists(&lists, |k, c| {
                rows += 1;
                if rows % PROGRESS_ROWS == 0 {
                    crate::util::progress::check_interrupt()?;
                    let now: u64 = lists
                        .iter()
                        .map(|l| l.partition_point(|e| e.0 <= k) as u64)
                        .sum();
                    progress.advance(now - merged, 0, 0);
                    merged = now;
                }
                w.push(o + 2, k, c)
            })?;
            progress.advance(total as u64 - merged, 0, 0);
            progress.finish();
        }
        w.finish()
    }
}
