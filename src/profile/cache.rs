//! The profile cache: an entry keyed by everything that decides its numbers, with the SHA-256
//! of its bytes beside it; read when it matches, otherwise counted and written.

use super::*;

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
pub(super) fn may_use_cache(use_cache: bool, opts: &ProfileOptions) -> bool {
    use_cache && !opts.keep_docs && !opts.sample.strict
}

/// The cache entry at `path`, opened by `open`, when it can be used for `wanted`: beside each
/// entry is the SHA-256 of its bytes, and an entry is read only when they match, so a damaged
/// file is rebuilt before any parser sees it (polars can abort on some damaged files) and an
/// entry without its sum (a run killed between the two writes) is rebuilt; then its recorded
/// settings must give the same cache key. The one check of both `cached_or_build` (a whole
/// profile) and `cached_or_write` (rows read back a group at a time).
pub(super) fn cache_hit<T>(
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

pub(super) fn profile_meta(p: &Profile) -> &ProfileMeta {
    &p.meta
}

pub(super) fn rows_meta(r: &ProfileRows) -> &ProfileMeta {
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
    /// The first few bad records skipped, each with its file and line (or record) and field;
    /// empty when the profile came from the cache.
    pub skipped_examples: Vec<String>,
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
                skipped_examples: Vec::new(),
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
    let examples = std::sync::Mutex::new(Vec::new());
    let read = |on_doc: &mut dyn FnMut(crate::data::corpus::Document) -> Result<()>| {
        let summary = crate::data::corpus::read_documents_with(card, &opts.sample, &[], on_doc)?;
        examples.lock().unwrap().clone_from(&summary.examples);
        Ok(summary)
    };
    let expected = super::count::expected_documents(card, &opts.sample);
    let counted = count_documents_spilling(
        meta,
        (&card.name, expected),
        &read,
        tok,
        opts,
        progress,
        sp.as_ref(),
    )?;
    let cache_err = || format!("cannot write the profile cache {}", path.display());
    let (meta, totals, distinct_ids, spilled, sum) = match counted {
        Counted::Memory(c) => {
            let unigram = c.unigram();
            let (meta, totals, ids) = (c.meta.clone(), c.totals.clone(), distinct(&unigram));
            let sum = c.save(&path, &unigram, progress).with_context(cache_err)?;
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
            write_merged_runs(&sp.runs, opts.ngram - 1, &mut w, &cache_err, progress)?;
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
        skipped_examples: examples.into_inner().unwrap(),
    })
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

/// Writes the merge of the spilled `runs` (orders 2..=`orders` + 1) into `w`. The runs are
/// merged on a thread of their own and the rows written on this one, in blocks through a short
/// queue: merging (reading, decompressing, the heap) and writing (building and compressing
/// the parquet pages) take about as long. `cache_err` names the file in a write error.
fn write_merged_runs(
    runs: &spill::Runs,
    orders: usize,
    w: &mut ProfileWriter,
    cache_err: &dyn Fn() -> String,
    progress: &dyn Progress,
) -> Result<()> {
    const ROWS: usize = 1 << 15;
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<(u64, u64)>)>(4);
    std::thread::scope(|scope| -> Result<()> {
        let merging = scope.spawn(move || -> Result<()> {
            for o in 0..orders {
                let mut block = Vec::with_capacity(ROWS);
                runs.merge(o, progress, |k, c| {
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
    })
}
