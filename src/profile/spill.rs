//! Exact n-gram counting in bounded memory, as KenLM's `lmplz` does it: each worker counts
//! into its sorted lists until its share of the budget is full, then writes them to disk as
//! sorted runs (keys delta-encoded as varints with their counts, zstd-compressed) and starts
//! again; at the end every order is a k-way merge of its runs with equal keys added, streamed
//! into the profile file ([`super::ProfileWriter`]), which is the same bytes as the profile
//! counted in memory.
//!
//! Runs live in a temporary folder that is removed when counting ends, however it ends (an
//! error, Ctrl-C or SIGTERM: see [`crate::util::progress::InterruptGuard`]); a folder left by a
//! process that was killed outright (kill -9, an OOM kill) is removed by the next counting
//! that makes runs in the same place ([`crate::util::paths::remove_stale_parts`]).

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};

use crate::util::progress::{Progress, Silent};

/// Where and in how much memory exact n-grams are counted.
#[derive(Clone, Debug)]
pub struct SpillOptions {
    /// Bytes the counters of all workers together may hold before they spill runs to disk.
    pub memory: u64,
    /// The folder the runs' temporary folder is made in.
    pub dir: PathBuf,
}

/// The smallest budget accepted: below it every batch would be a run.
pub const MIN_MEMORY: u64 = 1 << 20;

/// The default budget: a quarter of the smallest memory limit this process is under (the
/// machine, its cgroup, the Slurm job, `ulimit -v`: [`crate::util::memory::Limits`]), at least
/// 1 GiB where that limit allows twice as much; 4 GiB where no limit can be read.
pub fn default_memory() -> u64 {
    crate::util::memory::Limits::read().default_budget()
}

pub use crate::util::memory::{human_size, parse_size};

/// The runs of one counting: a temporary folder (made at the first spill, so a counting that
/// fits its budget touches no disk; removed on drop) and the run files of each order ≥ 2.
pub(super) struct Runs {
    parent: PathBuf,
    dir: Mutex<Option<tempfile::TempDir>>,
    state: Mutex<RunsState>,
}

#[derive(Default)]
struct RunsState {
    /// `files[o]`: the runs of order o + 2.
    files: Vec<Vec<PathBuf>>,
    next: u64,
    /// Bytes of the runs on disk now, and the most at once.
    bytes: u64,
    peak: u64,
    spills: u64,
}

impl RunsState {
    fn add(&mut self, bytes: u64) {
        self.bytes += bytes;
        self.peak = self.peak.max(self.bytes);
    }
}

/// Removes run files, counting their bytes off.
fn remove_runs(state: &Mutex<RunsState>, files: &[PathBuf]) {
    let mut freed = 0;
    for p in files {
        freed += std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let _ = std::fs::remove_file(p);
    }
    let mut s = state.lock().expect("runs lock");
    s.bytes = s.bytes.saturating_sub(freed);
}

/// What the runs took, for `-v`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpillStats {
    /// Times a worker's counts were written out.
    pub spills: u64,
    /// Run files written (merges of runs included).
    pub runs: u64,
    /// The most temporary disk the runs took at once (compressed bytes).
    pub bytes: u64,
}

impl Runs {
    /// Runs of orders 2..=`ngram` in a temporary folder inside `parent`, made when the first
    /// run is written.
    pub(super) fn new(parent: &Path, ngram: usize) -> Result<Runs> {
        Ok(Runs {
            parent: parent.to_path_buf(),
            dir: Mutex::new(None),
            state: Mutex::new(RunsState {
                files: vec![Vec::new(); ngram.saturating_sub(1)],
                ..RunsState::default()
            }),
        })
    }

    /// The runs' folder, made on first use: `.mtkit-runs.mtkit-PID@HOST.XXXXXX.part` in the
    /// parent, named like mtkit's other temporary files, so that the first counting to spill
    /// there after a process was killed outright removes its folder
    /// ([`crate::util::paths::remove_stale_parts`]).
    fn dir(&self) -> Result<PathBuf> {
        let mut dir = self.dir.lock().expect("runs folder lock");
        if let Some(d) = dir.as_ref() {
            return Ok(d.path().to_path_buf());
        }
        let parent = &self.parent;
        std::fs::create_dir_all(parent).with_context(|| {
            format!(
                "cannot create the folder for n-gram runs {} (the runs go where --tmp DIR says, default the folder of -o: give one you can write)",
                parent.display()
            )
        })?;
        let made = crate::util::paths::temp_dir_for(&parent.join("mtkit-runs")).with_context(|| {
            format!(
                "cannot create a folder for n-gram runs in {} (the runs go where --tmp DIR says, default the folder of -o: give one you can write)",
                parent.display()
            )
        })?;
        let path = made.path().to_path_buf();
        *dir = Some(made);
        Ok(path)
    }

    /// Writes the sorted counts of order `o + 2` as one run (`about` of them, at most: for
    /// the error of a full disk).
    pub(super) fn write(
        &self,
        o: usize,
        counts: impl Iterator<Item = (u64, u64)>,
        about: usize,
    ) -> Result<()> {
        let mut counts = counts.peekable();
        if counts.peek().is_none() {
            return Ok(());
        }
        let seq = {
            let mut s = self.state.lock().expect("runs lock");
            s.next += 1;
            s.next
        };
        let dir = self.dir()?;
        let path = dir.join(format!("{}gram-{seq:06}.run", o + 2));
        let bytes = write_run(&path, counts).map_err(|e| {
            let used = self.state.lock().map(|s| s.bytes).unwrap_or(0);
            let full = e
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.raw_os_error() == Some(28));
            let hint = if full {
                format!(
                    "; the folder's disk is full: the runs so far take {} and this one needs about {} more; free space there or pass --tmp DIR on a larger disk",
                    human_size(used),
                    human_size(about as u64 * 4)
                )
            } else {
                String::new()
            };
            anyhow!(
                "cannot write n-gram run {} in {}: {e:#}{hint}",
                path.display(),
                dir.display()
            )
        })?;
        let mut s = self.state.lock().expect("runs lock");
        s.files[o].push(path);
        s.add(bytes);
        Ok(())
    }

    /// Counts one spill (a worker's counts written out).
    pub(super) fn note_spill(&self) {
        self.state.lock().expect("runs lock").spills += 1;
    }

    /// Whether anything was written.
    pub(super) fn any(&self) -> bool {
        self.state.lock().expect("runs lock").spills > 0
    }

    pub(super) fn stats(&self) -> SpillStats {
        let s = self.state.lock().expect("runs lock");
        SpillStats {
            spills: s.spills,
            runs: s.next,
            bytes: s.peak,
        }
    }

    /// Streams the merge of every run of order `o + 2` (sorted, equal keys added) to `emit`,
    /// first merging runs in groups of [`MAX_FAN_IN`] while there are more.
    ///
    /// `progress` gets a stage for the groups (counted in groups) and one for the last merge
    /// (counted in bytes of the runs read).
    pub(super) fn merge(
        &self,
        o: usize,
        progress: &dyn Progress,
        emit: impl FnMut(u64, u64) -> Result<()>,
    ) -> Result<()> {
        let mut files = std::mem::take(&mut self.state.lock().expect("runs lock").files[o]);
        if files.len() > MAX_FAN_IN {
            // Each group turns MAX_FAN_IN runs into one, until at most MAX_FAN_IN are left.
            let groups = (files.len() - 2) / (MAX_FAN_IN - 1);
            progress.start_counting(
                &format!("combining {}-gram runs", o + 2),
                groups as u64,
                "groups",
            );
        }
        while files.len() > MAX_FAN_IN {
            let group: Vec<PathBuf> = files.drain(..MAX_FAN_IN).collect();
            let seq = {
                let mut s = self.state.lock().expect("runs lock");
                s.next += 1;
                s.next
            };
            let path = self
                .dir()?
                .join(format!("{}gram-{seq:06}.merged.run", o + 2));
            let readers = group
                .iter()
                .map(|p| RunReader::open(p, &Silent))
                .collect::<Result<Vec<_>>>()?;
            let mut w = RunWriter::create(&path).with_context(|| self.cannot_write(&path))?;
            merge_runs(readers, |k, c| w.push(k, c)).with_context(|| self.cannot_write(&path))?;
            let bytes = w.finish().with_context(|| self.cannot_write(&path))?;
            self.state.lock().expect("runs lock").add(bytes);
            remove_runs(&self.state, &group);
            files.push(path);
            progress.advance(1, 0, 0);
            if files.len() <= MAX_FAN_IN {
                progress.finish();
            }
        }
        let bytes: u64 = files
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum();
        progress.start_counting(&format!("merging {}-gram runs", o + 2), bytes, "bytes");
        let mut readers = files
            .iter()
            .map(|p| RunReader::open(p, progress))
            .collect::<Result<Vec<_>>>()?;
        if readers.len() < 4 || rayon::current_num_threads() < 2 {
            merge_runs(readers, emit)?;
        } else {
            // Two halves merged on threads of their own, their streams merged here: the heap
            // was the slowest stage of writing a spilled profile, and this halves its depth
            // and shares it among cores.
            let other = readers.split_off(readers.len() / 2);
            merge_two_streams(
                |send| merge_runs(readers, send),
                |send| merge_runs(other, send),
                emit,
            )?;
        }
        progress.finish();
        // A run is read once: its disk is given back as soon as its order is merged.
        remove_runs(&self.state, &files);
        Ok(())
    }

    fn cannot_write(&self, path: &Path) -> String {
        format!(
            "cannot write n-gram run {} in {} (a full disk? pass --tmp DIR on a larger one)",
            path.display(),
            self.parent.display()
        )
    }
}

fn put_varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x & 0x7f) as u8 | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Bytes of varints encoded (or decoded) at once: the zstd stream is fed and read in blocks of
/// this size rather than a few bytes at a time.
const BLOCK: usize = 1 << 16;

/// Run files merged at once: each open run holds a zstd window (128 KiB, see
/// [`RUN_WINDOW_LOG`]) and a read buffer, so a merge of any number of runs holds about 10 MB;
/// more runs are first merged in groups of this many into longer runs.
const MAX_FAN_IN: usize = 32;

/// zstd window of a run (2^17 bytes): what its reader must hold.
const RUN_WINDOW_LOG: u32 = 17;

/// A run being written: sorted distinct (key, count) pairs, each key as its difference from
/// the last and its count, LEB128 varints, zstd level 1; the run ends where the stream does.
struct RunWriter {
    z: zstd::Encoder<'static, BufWriter<File>>,
    block: Vec<u8>,
    last: u64,
}

impl RunWriter {
    fn create(path: &Path) -> Result<RunWriter> {
        let f = File::create(path)?;
        let mut z = zstd::Encoder::new(BufWriter::with_capacity(1 << 16, f), 1)?;
        z.window_log(RUN_WINDOW_LOG)?;
        Ok(RunWriter {
            z,
            block: Vec::with_capacity(BLOCK + 20),
            last: 0,
        })
    }

    fn push(&mut self, key: u64, count: u64) -> Result<()> {
        put_varint(&mut self.block, key - self.last);
        put_varint(&mut self.block, count);
        self.last = key;
        if self.block.len() >= BLOCK {
            self.z.write_all(&self.block)?;
            self.block.clear();
        }
        Ok(())
    }

    /// Ends the run; returns its bytes on disk.
    fn finish(mut self) -> Result<u64> {
        self.z.write_all(&self.block)?;
        let mut w = self.z.finish()?;
        w.flush()?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all().ok();
        Ok(f.metadata()?.len())
    }
}

/// Writes sorted distinct (key, count) pairs as one run; returns the bytes written.
fn write_run(path: &Path, counts: impl Iterator<Item = (u64, u64)>) -> Result<u64> {
    let mut w = RunWriter::create(path)?;
    for (k, c) in counts {
        w.push(k, c)?;
    }
    w.finish()
}

/// A run file as read, each read's bytes reported to a [`Progress`] (a bar counting bytes).
struct Metered<'p> {
    file: File,
    progress: &'p dyn Progress,
}

impl std::io::Read for Metered<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.progress.advance(n as u64, 0, 0);
        Ok(n)
    }
}

/// Reads a run back pair by pair, decoding from a block of the zstd stream at a time.
struct RunReader<'p> {
    path: PathBuf,
    z: zstd::Decoder<'static, BufReader<Metered<'p>>>,
    buf: Vec<u8>,
    /// The undecoded bytes are `buf[at..]`; `ended` once the stream has no more.
    at: usize,
    ended: bool,
    last: u64,
}

impl<'p> RunReader<'p> {
    /// Opens a run; the bytes read from disk are reported to `progress`.
    fn open(path: &Path, progress: &'p dyn Progress) -> Result<RunReader<'p>> {
        let what = || format!("cannot read n-gram run {}", path.display());
        let file = File::open(path).with_context(what)?;
        let mut z = zstd::Decoder::new(Metered { file, progress }).with_context(what)?;
        z.window_log_max(RUN_WINDOW_LOG).with_context(what)?;
        Ok(RunReader {
            path: path.to_path_buf(),
            z,
            buf: Vec::with_capacity(BLOCK),
            at: 0,
            ended: false,
            last: 0,
        })
    }

    /// Makes sure a whole pair (two varints: at most 20 bytes) is buffered, unless the stream
    /// ends first.
    fn fill(&mut self) -> Result<()> {
        while !self.ended && self.buf.len() - self.at < 20 {
            self.buf.drain(..self.at);
            self.at = 0;
            let have = self.buf.len();
            self.buf.resize(BLOCK, 0);
            let got = crate::data::files::read_up_to(&mut self.z, &mut self.buf[have..])
                .with_context(|| format!("cannot read n-gram run {}", self.path.display()))?;
            self.buf.truncate(have + got);
            self.ended = got < BLOCK - have;
        }
        Ok(())
    }

    fn next(&mut self) -> Result<Option<(u64, u64)>> {
        self.fill()?;
        if self.at == self.buf.len() {
            return Ok(None);
        }
        let bytes = &self.buf[self.at..];
        let (d, n1) = get_varint(bytes).ok_or_else(|| {
            anyhow!(
                "n-gram run {} is damaged (a bad number)",
                self.path.display()
            )
        })?;
        let (c, n2) = get_varint(&bytes[n1..])
            .ok_or_else(|| anyhow!("n-gram run {} ends inside a pair", self.path.display()))?;
        self.at += n1 + n2;
        self.last += d;
        Ok(Some((self.last, c)))
    }
}

/// A varint at the start of `b` and its length; None when `b` ends inside it or it is longer
/// than a u64.
fn get_varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut x = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        x |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((x, i + 1));
        }
    }
    None
}

/// Merges `readers` (sorted runs) into one sorted stream, adding equal keys, into `emit`.
fn merge_runs(
    mut readers: Vec<RunReader<'_>>,
    mut emit: impl FnMut(u64, u64) -> Result<()>,
) -> Result<()> {
    let mut heap = BinaryHeap::new();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some((k, c)) = r.next()? {
            heap.push(std::cmp::Reverse((k, i, c)));
        }
    }
    // The smallest entry is replaced in place by its run's next one (one sift down) rather than
    // popped and pushed again (a sift down and a sift up): the heap was a fifth of a spilled
    // profile's time.
    use std::collections::binary_heap::PeekMut;
    loop {
        let (key, mut sum) = {
            let Some(mut top) = heap.peek_mut() else {
                break;
            };
            let std::cmp::Reverse((key, i, c)) = *top;
            match readers[i].next()? {
                Some((k, c)) => *top = std::cmp::Reverse((k, i, c)),
                None => drop(PeekMut::pop(top)),
            }
            (key, c)
        };
        while let Some(mut top) = heap.peek_mut() {
            let std::cmp::Reverse((k, j, c)) = *top;
            if k != key {
                break;
            }
            sum += c;
            match readers[j].next()? {
                Some((k, c)) => *top = std::cmp::Reverse((k, j, c)),
                None => drop(PeekMut::pop(top)),
            }
        }
        emit(key, sum)?;
    }
    Ok(())
}

/// Calls `emit` with the merge (in key order, equal keys' counts added) of the two sorted
/// streams that `a` and `b` produce, each run on a thread of its own and sent over in blocks.
fn merge_two_streams(
    a: impl FnOnce(&mut dyn FnMut(u64, u64) -> Result<()>) -> Result<()> + Send,
    b: impl FnOnce(&mut dyn FnMut(u64, u64) -> Result<()>) -> Result<()> + Send,
    mut emit: impl FnMut(u64, u64) -> Result<()>,
) -> Result<()> {
    const BLOCK_ROWS: usize = 1 << 13;
    type Block = Vec<(u64, u64)>;
    fn produce(
        run: impl FnOnce(&mut dyn FnMut(u64, u64) -> Result<()>) -> Result<()>,
        tx: std::sync::mpsc::SyncSender<Block>,
    ) -> Result<()> {
        let mut block = Vec::with_capacity(BLOCK_ROWS);
        run(&mut |k, c| {
            block.push((k, c));
            if block.len() == BLOCK_ROWS {
                let full = std::mem::replace(&mut block, Vec::with_capacity(BLOCK_ROWS));
                // A closed queue: the consumer stopped, and says why.
                tx.send(full)
                    .map_err(|_| anyhow!("the run merge stopped"))?;
            }
            Ok(())
        })?;
        if !block.is_empty() {
            tx.send(block)
                .map_err(|_| anyhow!("the run merge stopped"))?;
        }
        Ok(())
    }
    /// A stream's next entry, from its current block or the next one.
    fn next(
        rx: &std::sync::mpsc::Receiver<Block>,
        block: &mut std::vec::IntoIter<(u64, u64)>,
    ) -> Option<(u64, u64)> {
        loop {
            if let Some(e) = block.next() {
                return Some(e);
            }
            *block = rx.recv().ok()?.into_iter();
        }
    }
    let (ta, ra) = std::sync::mpsc::sync_channel::<Block>(4);
    let (tb, rb) = std::sync::mpsc::sync_channel::<Block>(4);
    std::thread::scope(|scope| -> Result<()> {
        let ha = scope.spawn(move || produce(a, ta));
        let hb = scope.spawn(move || produce(b, tb));
        let merged = (|| -> Result<()> {
            let (mut ba, mut bb) = (Vec::new().into_iter(), Vec::new().into_iter());
            let (mut x, mut y) = (next(&ra, &mut ba), next(&rb, &mut bb));
            loop {
                match (x, y) {
                    (None, None) => return Ok(()),
                    (Some((k, c)), None) => {
                        emit(k, c)?;
                        x = next(&ra, &mut ba);
                    }
                    (None, Some((k, c))) => {
                        emit(k, c)?;
                        y = next(&rb, &mut bb);
                    }
                    (Some((ka, ca)), Some((kb, cb))) => {
                        if ka < kb {
                            emit(ka, ca)?;
                            x = next(&ra, &mut ba);
                        } else if kb < ka {
                            emit(kb, cb)?;
                            y = next(&rb, &mut bb);
                        } else {
                            emit(ka, ca + cb)?;
                            x = next(&ra, &mut ba);
                            y = next(&rb, &mut bb);
                        }
                    }
                }
            }
        })();
        // Closed queues stop producers still sending (after an error here).
        drop((ra, rb));
        let (ea, eb) = (ha.join(), hb.join());
        let ea = ea.unwrap_or_else(|_| Err(anyhow!("a run merge thread panicked")));
        let eb = eb.unwrap_or_else(|_| Err(anyhow!("a run merge thread panicked")));
        // A producer's own error says more than the consumer's "stopped" one.
        ea?;
        eb?;
        merged
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_to_the_sum_of_their_counts() {
        // Enough runs (6) for the two halves merged on their own threads; keys shared within
        // and across halves, and a key only one run has at either end.
        let dir = tempfile::tempdir().unwrap();
        let runs = Runs::new(dir.path(), 2).unwrap();
        let mut want = std::collections::BTreeMap::new();
        for r in 0..6u64 {
            let run: Vec<(u64, u64)> = (0..5000u64)
                .map(|i| i * (r + 1))
                .chain([u64::MAX - r])
                .map(|k| (k, r + 1))
                .collect();
            for &(k, c) in &run {
                *want.entry(k).or_insert(0u64) += c;
            }
            runs.write(0, run.iter().copied(), run.len()).unwrap();
        }
        let mut got = Vec::new();
        runs.merge(0, &Silent, |k, c| {
            got.push((k, c));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, want.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn a_run_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.run");
        let v: Vec<(u64, u64)> = vec![(0, 1), (5, 300), (1 << 40, 2), (u64::MAX, u64::MAX)];
        write_run(&p, v.iter().copied()).unwrap();
        let mut r = RunReader::open(&p, &Silent).unwrap();
        let mut back = Vec::new();
        while let Some(x) = r.next().unwrap() {
            back.push(x);
        }
        assert_eq!(back, v);
    }
}
