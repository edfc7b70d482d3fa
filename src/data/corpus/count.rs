//! Record counts where they are cheap to know (`data list`, `profile --slurm`): demo corpora,
//! parquet footers, jsonl lines read as a bounded stream; cached by file identity.

use super::*;

/// The number of records of a source where it is cheap to know: demo corpora, parquet row
/// counts (from the footer), and jsonl line counts; `None` for anything else (text files,
/// JSON arrays) or past [`COUNT_MAX_BYTES`] of decompressed text, where counting would take
/// longer than it is worth. Files are read as a stream (a small compressed file that expands
/// to gigabytes costs a bounded time and no memory), and each file's count is cached by its
/// identity (path, size, modification time, inode: [`count_cache`]), so a second `data list`
/// or `profile --slurm` reads nothing.
pub fn cheap_count(source: &Resolved) -> Option<u64> {
    match source {
        Resolved::Demo(d) => Some(d.docs),
        Resolved::Files { files, .. } => {
            let mut n = 0u64;
            let mut budget = COUNT_MAX_BYTES;
            let mut cache = count_cache::Cache::load();
            let mut result = Some(0u64);
            for f in files {
                let counted = match cache.get(f) {
                    Some(c) => c,
                    None => {
                        let c = count_records(f, &mut budget);
                        // "Too large" is cached too, as a second look would find the same.
                        cache.put(f, c);
                        c
                    }
                };
                match counted {
                    Some(c) => n += c,
                    None => {
                        result = None;
                        break;
                    }
                }
            }
            cache.save();
            result.map(|_| n)
        }
    }
}

/// The number of records of a source where it is known at little cost, for a progress bar's
/// total: demo corpora, parquet footers, files counted before ([`cheap_count`]'s cache), and
/// jsonl files while the lines read stay within [`KNOWN_COUNT_MAX_BYTES`] (a count found is
/// cached; one given up on is not, so that [`cheap_count`]'s larger budget still tries).
pub fn known_count(source: &Resolved) -> Option<u64> {
    match source {
        Resolved::Demo(d) => Some(d.docs),
        Resolved::Files { files, .. } => {
            let mut cache = count_cache::Cache::load();
            let mut budget = KNOWN_COUNT_MAX_BYTES;
            let mut n = Some(0u64);
            for f in files {
                let c = match cache.get(f) {
                    Some(c) => c,
                    None => {
                        let c = count_records(f, &mut budget);
                        if c.is_some() {
                            cache.put(f, c);
                        }
                        c
                    }
                };
                n = n.zip(c).map(|(a, b)| a + b);
                if n.is_none() {
                    break;
                }
            }
            cache.save();
            n
        }
    }
}

/// Decompressed bytes [`known_count`] reads at most to count a source's records for a bar.
pub const KNOWN_COUNT_MAX_BYTES: u64 = 32 << 20;

/// The documents a read of `source` under `sample` will give, where the record count is
/// [`known_count`]: the records of the shard, at most `max_docs` of them (bad records, found
/// while reading, make it fewer). Else `max_docs`, the most it can give.
pub fn expected_documents(source: &Resolved, sample: &SampleSpec) -> Option<u64> {
    let Some(records) = known_count(source) else {
        return sample.max_docs;
    };
    let in_shard = match sample.shard {
        // Records whose index i (from 0) has i mod N = K - 1.
        Some(s) if records >= s.index => (records - s.index) / s.count + 1,
        Some(_) => 0,
        None => records,
    };
    Some(sample.max_docs.map_or(in_shard, |m| m.min(in_shard)))
}

/// Decompressed bytes [`cheap_count`] reads at most in one call before it gives up.
pub const COUNT_MAX_BYTES: u64 = 512 << 20;

/// The records of one corpus file, reading at most `budget` decompressed bytes (taken off
/// it); `None` where the count is not cheap.
pub(super) fn count_records(f: &Path, budget: &mut u64) -> Option<u64> {
    match Format::detect(f)? {
        (Format::Parquet, _) => {
            crate::util::polars_io::check_parquet_footer(f).ok()?;
            catch_polars(f, || {
                let mut r = <polars::prelude::ParquetReader<File> as polars::prelude::SerReader<
                    File,
                >>::new(File::open(f)?);
                Ok(r.num_rows()? as u64)
            })
            .ok()
        }
        (Format::Jsonl, _) => {
            let mut r = BufReader::with_capacity(1 << 16, open_decompressed(f).ok()?);
            let mut lines = 0u64;
            // Whether the line so far has a non-blank byte; whether anything did yet.
            let (mut line_has_text, mut first) = (false, true);
            loop {
                let buf = r.fill_buf().ok()?;
                if buf.is_empty() {
                    break;
                }
                let mut chunk = buf;
                if first {
                    let body = chunk.strip_prefix(BOM).unwrap_or(chunk);
                    if let Some(b) = body.iter().find(|b| !b.is_ascii_whitespace()) {
                        if *b == b'[' && Format::may_be_json_array(f) {
                            return None;
                        }
                        first = false;
                    }
                    chunk = body;
                }
                for &b in chunk {
                    if b == b'\n' {
                        lines += line_has_text as u64;
                        line_has_text = false;
                    } else if !b.is_ascii_whitespace() {
                        line_has_text = true;
                    }
                }
                let len = buf.len();
                *budget = budget.checked_sub(len as u64)?;
                r.consume(len);
            }
            Some(lines + line_has_text as u64)
        }
        _ => None,
    }
}

/// Record counts of corpus files kept between runs in the cache folder (`counts.json`),
/// each under its file's identity, so that a changed file is counted again.
pub(super) mod count_cache {
    use std::collections::BTreeMap;
    use std::path::Path;

    /// The counts read from disk and those added since.
    pub struct Cache {
        entries: BTreeMap<String, Option<u64>>,
        changed: bool,
    }

    /// A file's identity: its absolute path, size, modification time (ns) and inode.
    fn key(f: &Path) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(f).ok()?;
        let abs = std::path::absolute(f).ok()?;
        Some(format!(
            "{}\t{}\t{}.{}\t{}",
            abs.display(),
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.ino()
        ))
    }

    fn path() -> std::path::PathBuf {
        crate::util::paths::cache_dir().join("counts.json")
    }

    impl Cache {
        /// The cache as on disk (empty where absent or unreadable).
        pub fn load() -> Cache {
            let entries = std::fs::read(path())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            Cache {
                entries,
                changed: false,
            }
        }

        /// The count recorded for this file as it is now: `Some(count)`, where `count` is
        /// `None` for a file found too large to count.
        pub fn get(&self, f: &Path) -> Option<Option<u64>> {
            self.entries.get(&key(f)?).copied()
        }

        /// Records a count.
        pub fn put(&mut self, f: &Path, count: Option<u64>) {
            if let Some(k) = key(f) {
                // Entries of files that changed since: the same path with another identity.
                let prefix = format!("{}\t", k.split('\t').next().unwrap_or(""));
                self.entries.retain(|e, _| !e.starts_with(&prefix));
                self.entries.insert(k, count);
                self.changed = true;
            }
        }

        /// Writes the cache back when anything was added (a cache that cannot be written is
        /// no error: the next run counts again).
        pub fn save(&self) {
            if self.changed {
                if let Ok(bytes) = serde_json::to_vec(&self.entries) {
                    let _ = crate::util::paths::write_atomic_bytes(&path(), &bytes);
                }
            }
        }
    }
}
