//! Profiles written and read row group by row group, so that a profile never has to fit in
//! memory to be written, checked or merged.
//!
//! The file is the one [`Profile::save`] has always written (columns `order`, `t1`..`tN`,
//! `bucket`, `count`; metadata under `mtkit.profile`; rows order by order, each order sorted by
//! key), and `save` itself writes through [`ProfileWriter`], so a profile written from a stream
//! of counts is the same bytes as the in-memory profile of the same counts. Both checksums are
//! computed as the rows go by: the content checksum over the counts, and the pages checksum
//! over the file's bytes before the footer, each patched into a placeholder of its own length
//! in the footer once known.
//!
//! [`merge_files`] is `profile merge`: a k-way merge of parts that are each sorted, in memory
//! bounded by the number of parts (one row group each), not their size.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

use super::{
    id_bits, merged_meta, pack, NgramMode, ProfileMeta, SavedMeta, Totals, MAX_BUCKETS, MAX_VOCAB,
    META_KEY, PAGES_KEY, PAGES_PLACEHOLDER,
};
use crate::data::files::read_up_to;

/// Rows per row group. Small enough that a merge of many parts holds one group of each in
/// little memory (64 parts: about 64 MB), large enough that LZ4 and the page headers cost
/// little.
pub const ROWS_PER_GROUP: usize = 1 << 16;

/// Where the content checksum goes until it is known (the same length as a hex SHA-256).
const CONTENT_PLACEHOLDER: &str =
    "mtkit-content-sha256-placeholder-0000000000000000000000000000000";

/// The file handle the parquet writer writes through, kept shared so that it can be had back
/// after the footer is written (polars' writer owns its sink). It hashes what goes through it
/// until the footer: the pages checksum, without reading the file back.
#[derive(Clone)]
struct SharedFile(Arc<Mutex<Sink>>);

struct Sink {
    out: BufWriter<File>,
    /// SHA-256 of the bytes written so far and how many, until taken before the footer.
    pages: Option<(Sha256, u64)>,
}

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut s = self.0.lock().expect("file lock");
        let n = s.out.write(buf)?;
        if let Some((h, len)) = s.pages.as_mut() {
            h.update(&buf[..n]);
            *len += n as u64;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().expect("file lock").out.flush()
    }
}

/// One row group encoded and compressed: its rows, each column's pages, and its bytes of the
/// content checksum.
type EncodedGroup = (
    u64,
    Vec<Vec<polars_parquet::write::CompressedPage>>,
    Vec<u8>,
);

/// One row group's rows and each column's pages.
type EncodedPages = (u64, Vec<Vec<polars_parquet::write::CompressedPage>>);

/// Row groups encoded (columns built, pages encoded, statistics taken, LZ4) on this many
/// threads, a group to each in turn, and written in that same turn: the file is the bytes one
/// thread would write. Encoding was the slowest stage of writing an exact 4-gram profile.
fn encoder_threads() -> usize {
    rayon::current_num_threads().clamp(1, 4)
}

/// Writes a profile file from its unigram counts and then, order by order, its sorted n-gram
/// counts; nothing is at `path` until [`ProfileWriter::finish`] renames the complete file there.
pub struct ProfileWriter {
    path: PathBuf,
    tmp: tempfile::NamedTempFile,
    file: SharedFile,
    /// Row groups go to encoding threads in turn ([`encoder_threads`]), and a writing thread
    /// takes their pages in the same turn, writes them and hashes the group's bytes of the
    /// content checksum, while this one merges the next rows. The writing thread gives back
    /// both hashers: the pages checksum's (with the bytes it took) and the content's.
    pages: Vec<std::sync::mpsc::SyncSender<RowBuffer>>,
    groups_sent: usize,
    encoder: Option<std::thread::JoinHandle<Result<WrittenHashes>>>,
    ngram: usize,
    bits: u32,
    hashed: bool,
    rows: RowBuffer,
    /// Bytes of the content checksum since the last row group (its rows' keys and counts and
    /// the order marks): sent with the group and hashed in blocks, which is the same digest
    /// as hashing each row's 16 bytes as it comes.
    unhashed: Vec<u8>,
    /// The order rows are being written for, and the last key written in it.
    order: usize,
    last_key: Option<u64>,
}

/// Columns of the row group being filled. A null is a 0 here: which cells are null follows
/// from each row's order (ids t1..t{order}, or the bucket of a hashed n-gram), and the columns
/// are built from plain values and that validity, not cell by cell from options.
#[derive(Default)]
struct RowBuffer {
    order: Vec<u8>,
    ids: Vec<Vec<u32>>,
    bucket: Vec<u64>,
    count: Vec<u64>,
    /// The group's bytes of the content checksum (not part of the frame).
    content: Vec<u8>,
}

/// What the writing thread hashed: the pages (and how many bytes) and the content so far.
type WrittenHashes = ((Sha256, u64), Sha256);

impl RowBuffer {
    /// An empty group of `ngram` id columns, sized for a full group.
    fn with_capacity(ngram: usize) -> RowBuffer {
        RowBuffer {
            order: Vec::with_capacity(ROWS_PER_GROUP),
            ids: vec![Vec::with_capacity(ROWS_PER_GROUP); ngram],
            bucket: Vec::with_capacity(ROWS_PER_GROUP),
            count: Vec::with_capacity(ROWS_PER_GROUP),
            content: Vec::new(),
        }
    }

    /// The row group as a frame of the profile's columns (`ngram` id columns; ids or buckets
    /// as `hashed` says).
    fn frame(self, ngram: usize, hashed: bool) -> Result<polars::prelude::DataFrame> {
        use polars::prelude::{Column, DataFrame, IntoSeries, UInt32Chunked, UInt64Chunked};
        use polars_arrow::bitmap::Bitmap;
        let r = self;
        // Validity from each row's order; none where every cell is set, as polars' own
        // builder leaves it (so the pages are the bytes they were when built cell by cell).
        let validity = |valid: &dyn Fn(u8) -> bool| -> Option<Bitmap> {
            match r.order.iter().all(|&o| valid(o)) {
                true => None,
                false => Some(r.order.iter().map(|&o| valid(o)).collect()),
            }
        };
        let mut columns = Vec::with_capacity(ngram + 3);
        for (i, col) in r.ids.into_iter().enumerate() {
            let valid = validity(&|o| (o == 1 || !hashed) && o as usize > i);
            columns.push(Column::from(
                UInt32Chunked::from_vec_validity(format!("t{}", i + 1).into(), col, valid)
                    .into_series(),
            ));
        }
        let valid = validity(&|o| hashed && o >= 2);
        columns.push(Column::from(
            UInt64Chunked::from_vec_validity("bucket".into(), r.bucket, valid).into_series(),
        ));
        columns.insert(0, Column::new("order".into(), r.order));
        columns.push(Column::new("count".into(), r.count));
        Ok(DataFrame::new_infer_height(columns)?)
    }
}

/// A profile file's columns: order, t1..tN, bucket, count.
fn profile_schema(n: usize) -> polars::prelude::Schema {
    use polars::prelude::{DataType, Field, Schema};
    let mut fields = vec![Field::new("order".into(), DataType::UInt8)];
    for i in 1..=n {
        fields.push(Field::new(format!("t{i}").into(), DataType::UInt32));
    }
    fields.push(Field::new("bucket".into(), DataType::UInt64));
    fields.push(Field::new("count".into(), DataType::UInt64));
    Schema::from_iter(fields)
}

/// The queues to the encoding threads, their pages' queues back, and the threads.
type Encoders = (
    Vec<std::sync::mpsc::SyncSender<RowBuffer>>,
    Vec<std::sync::mpsc::Receiver<EncodedGroup>>,
    Vec<std::thread::JoinHandle<Result<()>>>,
);

/// Starts [`encoder_threads`] threads that build, encode and compress row groups of an
/// `n`-gram profile, each group to the next thread in turn.
fn spawn_encoders(n: usize, hashed: bool, encoding: Arc<PageEncoding>) -> Result<Encoders> {
    let mut pages = Vec::new();
    let mut encoded = Vec::new();
    let mut encoders = Vec::new();
    for i in 0..encoder_threads() {
        let (tx, rx) = std::sync::mpsc::sync_channel::<RowBuffer>(1);
        let (done, out) = std::sync::mpsc::sync_channel::<EncodedGroup>(1);
        let encoding = encoding.clone();
        let encoder = std::thread::Builder::new()
            .name(format!("profile-pages-{i}"))
            .spawn(move || -> Result<()> {
                for mut rows in rx {
                    let content = std::mem::take(&mut rows.content);
                    let (count, pages) = encoding.encode(rows.frame(n, hashed)?)?;
                    if done.send((count, pages, content)).is_err() {
                        break; // the writing thread stopped, and says why
                    }
                }
                Ok(())
            })
            .context("cannot start the profile's encoding threads")?;
        pages.push(tx);
        encoded.push(out);
        encoders.push(encoder);
    }
    Ok((pages, encoded, encoders))
}

/// Starts the thread that writes the encoded groups to the file in the turn they were sent,
/// then finishes the file; it gives the pages' checksum and the content checksum.
fn spawn_writing(
    writer: Arc<polars::io::parquet::write::BatchedWriter<SharedFile>>,
    encoded: Vec<std::sync::mpsc::Receiver<EncodedGroup>>,
    encoders: Vec<std::thread::JoinHandle<Result<()>>>,
    content: Sha256,
    sink: SharedFile,
    shown: String,
) -> Result<std::thread::JoinHandle<Result<WrittenHashes>>> {
    std::thread::Builder::new()
        .name("profile-write".into())
        .spawn(move || -> Result<WrittenHashes> {
            let what = || format!("cannot write {shown}");
            let mut content = content;
            let mut written = Ok(());
            // In the turn the groups were sent; an encoder that ends (its queue closed
            // after the last group, or an error) ends the file there.
            'groups: for i in 0.. {
                let Ok((rows, group, hashed_rows)) = encoded[i % encoded.len()].recv() else {
                    break;
                };
                content.update(&hashed_rows);
                let mut w = writer.get_writer().lock().expect("parquet writer lock");
                use polars_parquet::read::fallible_streaming_iterator::convert;
                use polars_parquet::write::{DynIter, DynStreamingIterator};
                let columns = DynIter::new(group.iter().map(|pages| {
                    Ok(DynStreamingIterator::new(convert(
                        pages.iter().map(Ok::<_, polars::prelude::PolarsError>),
                    )))
                }));
                if let Err(e) = w.write(rows, columns) {
                    written = Err(anyhow::Error::from(e).context(what()));
                    break 'groups;
                }
            }
            drop(encoded); // encoders still sending stop
            for e in encoders {
                e.join()
                    .unwrap_or_else(|_| bail!("a profile encoding thread panicked"))
                    .with_context(what)?;
            }
            written?;
            let pages = sink.0.lock().expect("file lock").pages.take();
            writer.finish().with_context(what)?;
            let pages = pages.ok_or_else(|| anyhow!("the pages checksum was taken twice"))?;
            Ok((pages, content))
        })
        .context("cannot start the profile's writing thread")
}

impl ProfileWriter {
    /// Starts the profile at `path` (written beside it, renamed on finish) with what decides
    /// its numbers, its totals and its unigram counts (indexed by id).
    pub fn create(
        path: &Path,
        meta: &ProfileMeta,
        totals: &Totals,
        unigram: &[u64],
    ) -> Result<ProfileWriter> {
        use polars::prelude::{KeyValueMetadata, ParquetCompression, ParquetWriter};
        let n = meta.ngram;
        let mut content = Sha256::new();
        content.update(super::Profile::cache_key(meta).as_bytes());
        content.update(serde_json::to_vec(totals)?);
        for c in unigram {
            content.update(c.to_le_bytes());
        }
        let meta_json = serde_json::to_string(&SavedMeta {
            meta: meta.clone(),
            totals: totals.clone(),
            checksum: Some(CONTENT_PLACEHOLDER.to_string()),
        })?;
        let tmp = crate::util::paths::temp_file_for(path)?;
        let handle = tmp
            .as_file()
            .try_clone()
            .with_context(|| format!("cannot write {}", path.display()))?;
        let file = SharedFile(Arc::new(Mutex::new(Sink {
            out: BufWriter::with_capacity(1 << 20, handle),
            pages: Some((Sha256::new(), 0)),
        })));
        let schema = profile_schema(n);
        // LZ4: a fifth of an exact 4-gram profile's time went to zstd at its default level.
        let writer = ParquetWriter::new(file.clone())
            .with_compression(ParquetCompression::Lz4Raw)
            .with_key_value_metadata(Some(KeyValueMetadata::from_static(vec![
                (META_KEY.to_string(), meta_json),
                (PAGES_KEY.to_string(), PAGES_PLACEHOLDER.to_string()),
            ])))
            .batched(&schema)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let writer = Arc::new(writer);
        let encoding = Arc::new(PageEncoding::new(&schema)?);
        let hashed = matches!(meta.ngram_mode, NgramMode::Hashed { .. });
        let shown = path.display().to_string();
        let (pages, encoded, encoders) = spawn_encoders(n, hashed, encoding)?;
        let encoder = spawn_writing(writer, encoded, encoders, content, file.clone(), shown)?;
        let mut w = ProfileWriter {
            path: path.to_path_buf(),
            tmp,
            file,
            pages,
            groups_sent: 0,
            encoder: Some(encoder),
            ngram: n,
            bits: id_bits(meta.vocab_size),
            hashed,
            rows: RowBuffer::with_capacity(n),
            unhashed: Vec::with_capacity(ROWS_PER_GROUP * 16),
            order: 1,
            last_key: None,
        };
        w.push_unigrams(unigram)?;
        Ok(w)
    }

    /// The unigram rows, one per id counted, first in the file.
    fn push_unigrams(&mut self, unigram: &[u64]) -> Result<()> {
        for (id, &c) in unigram.iter().enumerate() {
            if c > 0 {
                self.rows.order.push(1);
                self.rows.ids[0].push(id as u32);
                for col in self.rows.ids.iter_mut().skip(1) {
                    col.push(0);
                }
                self.rows.bucket.push(0);
                self.rows.count.push(c);
                self.flush_if_full()?;
            }
        }
        Ok(())
    }

    /// Adds the count of n-gram `key` (packed ids; the bucket when hashed) of `order` ≥ 2.
    /// Orders come in increasing order and keys in each order strictly increasing.
    pub fn push(&mut self, order: usize, key: u64, count: u64) -> Result<()> {
        if order < 2 || order > self.ngram || order < self.order {
            bail!(
                "profile rows out of order: order {order} after order {} (of 1..{})",
                self.order,
                self.ngram
            );
        }
        self.enter(order);
        if self.last_key.is_some_and(|k| k >= key) {
            bail!("profile rows out of order: key {key} of order {order} not after the last");
        }
        self.last_key = Some(key);
        if count == 0 {
            return Ok(());
        }
        self.unhashed.extend_from_slice(&key.to_le_bytes());
        self.unhashed.extend_from_slice(&count.to_le_bytes());
        let r = &mut self.rows;
        r.order.push(order as u8);
        if self.hashed {
            for col in r.ids.iter_mut() {
                col.push(0);
            }
            r.bucket.push(key);
        } else {
            let mask = (1u64 << self.bits) - 1;
            for (i, col) in r.ids.iter_mut().enumerate() {
                col.push(match i < order {
                    true => ((key >> (self.bits * (order - 1 - i) as u32)) & mask) as u32,
                    false => 0,
                });
            }
            r.bucket.push(0);
        }
        r.count.push(count);
        self.flush_if_full()
    }

    /// Moves on to `order`, marking every order passed in the content checksum.
    #[inline]
    fn enter(&mut self, order: usize) {
        while self.order < order {
            self.order += 1;
            self.unhashed.push(self.order as u8);
            self.last_key = None;
        }
    }

    fn flush_if_full(&mut self) -> Result<()> {
        if self.rows.count.len() >= ROWS_PER_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.rows.count.is_empty() {
            return Ok(());
        }
        let mut rows = std::mem::replace(&mut self.rows, RowBuffer::with_capacity(self.ngram));
        rows.content =
            std::mem::replace(&mut self.unhashed, Vec::with_capacity(ROWS_PER_GROUP * 16));
        let turn = self.groups_sent % self.pages.len().max(1);
        self.groups_sent += 1;
        let sent = self.pages.get(turn).map(|p| p.send(rows).is_ok());
        if sent != Some(true) {
            // A thread stopped: the writing thread's error says why.
            return self.join_encoder().and(Err(anyhow!(
                "cannot write {}: the writing thread stopped",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Waits for the writing thread to write what it was sent and the footer; gives the
    /// pages checksum's hasher (and how many bytes it hashed) and the content checksum's.
    fn join_encoder(&mut self) -> Result<WrittenHashes> {
        self.pages.clear();
        match self.encoder.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| bail!("the profile's writing thread panicked")),
            None => bail!("the profile's writing thread was already joined"),
        }
    }

    /// Writes the last rows and the footer, seals both checksums into it and renames the file
    /// to its path. Gives the hex SHA-256 of the whole file (what the cache's sum files hold).
    pub fn finish(mut self) -> Result<String> {
        self.enter(self.ngram);
        self.flush()?;
        let (pages, mut content) = self.join_encoder()?;
        // Order marks after the last rows (orders with none).
        content.update(&self.unhashed);
        let what = || format!("cannot write {}", self.path.display());
        self.file
            .0
            .lock()
            .expect("file lock")
            .out
            .flush()
            .with_context(what)?;
        let content = crate::util::digest::hex(&content.finalize());
        let sum = seal(self.tmp.as_file_mut(), &content, pages).with_context(what)?;
        self.tmp.as_file().sync_all().ok();
        crate::util::paths::make_readable(self.tmp.path());
        let ProfileWriter { tmp, path, .. } = self;
        tmp.persist(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(sum)
    }
}

/// What encoding a row group's pages takes: the columns' parquet types and encodings and the
/// write options, as polars' writer derives them from the schema and the options the profile
/// writer is built with (LZ4, default statistics, version 1 pages).
struct PageEncoding {
    fields: Vec<polars_parquet::write::ParquetType>,
    encodings: Vec<Vec<polars_parquet::write::Encoding>>,
    options: polars_parquet::write::WriteOptions,
}

impl PageEncoding {
    fn new(schema: &polars::prelude::Schema) -> Result<PageEncoding> {
        use polars::prelude::{CompatLevel, ParquetCompression, SchemaExt};
        let arrow = schema.to_arrow(CompatLevel::newest());
        Ok(PageEncoding {
            fields: polars_parquet::write::to_parquet_schema(&arrow)?
                .fields()
                .to_vec(),
            encodings: polars::io::parquet::write::get_encodings(&arrow).to_vec(),
            options: polars_parquet::write::WriteOptions {
                statistics: polars::io::parquet::write::StatisticsOptions::default(),
                version: polars_parquet::write::Version::V1,
                compression: ParquetCompression::Lz4Raw.into(),
                data_page_size: None,
            },
        })
    }

    /// Encodes and compresses one row group's pages: what polars' `write_batch` does before
    /// writing them.
    fn encode(&self, frame: polars::prelude::DataFrame) -> Result<EncodedPages> {
        use polars::prelude::CompatLevel;
        let rows = frame.height() as u64;
        let mut columns = Vec::new();
        for batch in frame.iter_chunks(CompatLevel::newest(), false) {
            for ((array, type_), encoding) in batch
                .columns()
                .iter()
                .zip(&self.fields)
                .zip(&self.encodings)
            {
                let leaves = polars_parquet::write::array_to_columns(
                    array,
                    type_.clone(),
                    self.options,
                    encoding,
                )?;
                for pages in leaves {
                    let mut out = Vec::new();
                    for page in pages {
                        out.push(polars_parquet::write::compress(
                            page?,
                            Vec::new(),
                            self.options.compression,
                        )?);
                    }
                    columns.push(out);
                }
            }
        }
        Ok((rows, columns))
    }
}

/// Patches the footer of a complete profile file: the pages checksum (SHA-256 of every byte
/// before the footer, hashed as they were written: `pages` and how many bytes it took) and the
/// content checksum over their placeholders. Gives the hex SHA-256 of the sealed file.
fn seal(f: &mut File, content: &str, pages: (Sha256, u64)) -> Result<String> {
    let len = f.seek(SeekFrom::End(0))?;
    if len < 12 {
        bail!("the file is too short for a parquet footer");
    }
    let mut tail = [0u8; 8];
    f.seek(SeekFrom::End(-8))?;
    f.read_exact(&mut tail)?;
    let footer_len = u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")) as u64;
    let start = len
        .checked_sub(8 + footer_len)
        .ok_or_else(|| anyhow!("the footer's length is past the file"))?;
    let (mut file_sum, hashed) = pages;
    debug_assert_eq!(
        hashed, start,
        "bytes hashed on the way to the file, against the footer's start"
    );
    if hashed != start {
        // Not what polars' writer is known to do (every byte before the footer through the
        // sink before the footer); read back rather than trust it.
        file_sum = Sha256::new();
        f.seek(SeekFrom::Start(0))?;
        copy_prefix_into(f, start, &mut file_sum)?;
    }
    let pages = crate::util::digest::hex(&file_sum.clone().finalize());
    let mut footer = vec![0u8; footer_len as usize];
    f.seek(SeekFrom::Start(start))?;
    f.read_exact(&mut footer)?;
    for (placeholder, value) in [
        (PAGES_PLACEHOLDER, pages.as_str()),
        (CONTENT_PLACEHOLDER, content),
    ] {
        debug_assert_eq!(placeholder.len(), value.len());
        let at = footer
            .windows(placeholder.len())
            .position(|w| w == placeholder.as_bytes())
            .ok_or_else(|| anyhow!("a checksum's placeholder is not in the footer"))?;
        footer[at..at + value.len()].copy_from_slice(value.as_bytes());
    }
    f.seek(SeekFrom::Start(start))?;
    f.write_all(&footer)?;
    f.flush()?;
    file_sum.update(&footer);
    file_sum.update(tail);
    Ok(crate::util::digest::hex(&file_sum.finalize()))
}

/// Hashes the next `n` bytes of `r` into `h`, read in blocks.
fn copy_prefix_into(r: &mut impl Read, n: u64, h: &mut Sha256) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let got = read_up_to(r, &mut buf[..want])?;
        if got < want {
            bail!("the file ended before its footer");
        }
        h.update(&buf[..got]);
        left -= got as u64;
    }
    Ok(())
}

/// Hex SHA-256 of the next `n` bytes of `r`, read in blocks.
fn sha256_of_prefix(r: &mut impl Read, n: u64) -> Result<String> {
    let mut h = Sha256::new();
    copy_prefix_into(r, n, &mut h)?;
    Ok(crate::util::digest::hex(&h.finalize()))
}

/// A profile file read row group by row group: its metadata and unigram counts at once, then
/// the n-gram rows in file order. Both checksums are checked: the pages checksum before any
/// page is decoded, the content checksum when the last row has been read (a file whose counts
/// do not match is an error then, and `profile merge` writes nothing).
pub struct ProfileRows {
    path: PathBuf,
    /// What decides the numbers.
    pub meta: ProfileMeta,
    /// Totals.
    pub totals: Totals,
    /// Unigram counts indexed by id.
    pub unigram: Vec<u64>,
    want_content: Option<String>,
    content: Sha256,
    n_rows: usize,
    /// Rows of order 1 (read by [`ProfileRows::open`]).
    unigram_rows: usize,
    /// The next row group's first row.
    offset: usize,
    /// The current row group: each row's order, and its key and count (two vectors, 17 bytes
    /// a row rather than 24 as a padded tuple: a merge holds one group of every part).
    group_orders: Vec<u8>,
    group_rows: Vec<(u64, u64)>,
    at: usize,
    /// The order and key of the last row handed out, to check the file is sorted.
    order: usize,
    last_key: Option<u64>,
}

impl ProfileRows {
    /// Opens and checks `path` (its trailer, footer, metadata and pages checksum) and reads
    /// its unigram rows.
    pub fn open(path: &Path) -> Result<ProfileRows> {
        use polars::prelude::{ParquetReader, SerReader};
        crate::util::polars_io::check_parquet_footer(path)?;
        let mut f =
            File::open(path).with_context(|| format!("cannot open profile {}", path.display()))?;
        let len = f
            .metadata()
            .with_context(|| format!("cannot read profile {}", path.display()))?
            .len();
        let mut tail = [0u8; 8];
        f.seek(SeekFrom::Start(len.saturating_sub(8)))?;
        read_up_to(&mut f, &mut tail)?;
        let footer_len = u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")) as u64;
        let footer_start = len.saturating_sub(8 + footer_len);
        let (md, n_rows) = crate::util::polars_io::catch_polars(path, || {
            let mut reader = ParquetReader::new(File::open(path)?);
            let md = reader
                .get_metadata()
                .with_context(|| format!("{} is not a parquet file", path.display()))?
                .clone();
            Ok((md, reader.num_rows()?))
        })?;
        let kv = |key: &str| {
            md.key_value_metadata()
                .as_ref()
                .and_then(|kv| kv.iter().find(|k| k.key == key))
                .and_then(|k| k.value.clone())
        };
        let (saved, want_pages) = saved_meta_and_pages(path, kv)?;
        f.seek(SeekFrom::Start(0))?;
        if sha256_of_prefix(&mut f, footer_start)
            .with_context(|| format!("cannot read profile {}", path.display()))?
            != want_pages
        {
            bail!(
                "{}: its data pages do not match the checksum saved with them: the file is damaged; delete it or make it again",
                path.display()
            );
        }
        let mut content = Sha256::new();
        content.update(super::Profile::cache_key(&saved.meta).as_bytes());
        content.update(serde_json::to_vec(&saved.totals)?);
        let mut rows = ProfileRows {
            path: path.to_path_buf(),
            unigram: vec![0; saved.meta.vocab_size],
            meta: saved.meta,
            totals: saved.totals,
            want_content: saved.checksum,
            content,
            n_rows,
            unigram_rows: 0,
            offset: 0,
            group_orders: Vec::new(),
            group_rows: Vec::new(),
            at: 0,
            order: 1,
            last_key: None,
        };
        while let Some((order, key, count)) = rows.peek()? {
            if order != 1 {
                break;
            }
            let slot = rows.unigram.get_mut(key as usize).ok_or_else(|| {
                anyhow!("{}: malformed profile row (token id {key})", path.display())
            })?;
            *slot = count;
            rows.at += 1;
            rows.unigram_rows += 1;
        }
        for c in &rows.unigram {
            rows.content.update(c.to_le_bytes());
        }
        Ok(rows)
    }

    /// The next row (order, key, count) without taking it, reading the next row group when
    /// the current one is used up; None at the end.
    fn peek(&mut self) -> Result<Option<(usize, u64, u64)>> {
        if self.at == self.group_rows.len() {
            if self.offset >= self.n_rows {
                return Ok(None);
            }
            self.read_group()?;
        }
        let (k, c) = self.group_rows[self.at];
        Ok(Some((self.group_orders[self.at] as usize, k, c)))
    }

    fn read_group(&mut self) -> Result<()> {
        use polars::prelude::{ParquetReader, SerReader};
        let path = self.path.clone();
        let (offset, len) = (self.offset, ROWS_PER_GROUP.min(self.n_rows - self.offset));
        let n = self.meta.ngram;
        let bits = id_bits(self.meta.vocab_size);
        // The last group's vectors are refilled: no allocation per group.
        let mut orders = std::mem::take(&mut self.group_orders);
        let mut rows = std::mem::take(&mut self.group_rows);
        orders.clear();
        rows.clear();
        crate::util::polars_io::catch_polars(&path, || {
            let df = ParquetReader::new(File::open(&path)?)
                .with_slice(Some((offset, len)))
                .finish()
                .with_context(|| format!("cannot read profile {}", path.display()))?;
            let order = df.column("order")?.u8()?.clone();
            let count = df.column("count")?.u64()?.clone();
            let bucket = df.column("bucket")?.u64()?.clone();
            let tcols = (1..=n)
                .map(|i| df.column(&format!("t{i}")).and_then(|c| c.u32().cloned()))
                .collect::<polars::prelude::PolarsResult<Vec<_>>>()?;
            let bad = |row: usize| anyhow!("{}: malformed profile row {}", path.display(), row + 1);
            for i in 0..df.height() {
                let o = order.get(i).ok_or_else(|| bad(offset + i))?;
                let c = count.get(i).ok_or_else(|| bad(offset + i))?;
                let key = if o == 1 {
                    tcols[0].get(i).ok_or_else(|| bad(offset + i))? as u64
                } else if o as usize > n || o == 0 {
                    return Err(bad(offset + i));
                } else if let Some(b) = bucket.get(i) {
                    b
                } else {
                    let ids: Vec<u32> = (0..o as usize)
                        .map(|j| tcols[j].get(i))
                        .collect::<Option<_>>()
                        .ok_or_else(|| bad(offset + i))?;
                    pack(&ids, bits)
                };
                orders.push(o);
                rows.push((key, c));
            }
            Ok(())
        })?;
        self.offset += len;
        self.group_orders = orders;
        self.group_rows = rows;
        self.at = 0;
        Ok(())
    }

    /// The next row of `order` (key, count), or None when this order's rows are used up.
    pub fn next_of(&mut self, order: usize) -> Result<Option<(u64, u64)>> {
        let Some((o, key, count)) = self.peek()? else {
            return Ok(None);
        };
        if o < self.order {
            bail!(
                "{}: its rows are not in order (order {o} after order {}); make it again with this mtkit",
                self.path.display(),
                self.order
            );
        }
        if o != order {
            return Ok(None);
        }
        while self.order < o {
            self.order += 1;
            self.content.update([self.order as u8]);
            self.last_key = None;
        }
        if self.last_key.is_some_and(|k| k >= key) {
            bail!(
                "{}: its {o}-gram rows are not sorted or repeat a key; make it again with this mtkit",
                self.path.display()
            );
        }
        if let NgramMode::Hashed { buckets } = self.meta.ngram_mode {
            if key >= buckets {
                bail!(
                    "{}: malformed profile row (bucket {key})",
                    self.path.display()
                );
            }
        }
        self.last_key = Some(key);
        self.content.update(key.to_le_bytes());
        self.content.update(count.to_le_bytes());
        self.at += 1;
        Ok(Some((key, count)))
    }

    /// Checks that every row was read and the counts match the content checksum.
    pub fn finish(mut self) -> Result<()> {
        if self.peek()?.is_some() {
            bail!(
                "{}: rows after the last order; make it again with this mtkit",
                self.path.display()
            );
        }
        while self.order < self.meta.ngram {
            self.order += 1;
            self.content.update([self.order as u8]);
        }
        if let Some(want) = &self.want_content {
            if crate::util::digest::hex(&self.content.finalize()) != *want {
                bail!(
                    "{}: the profile's counts do not match its checksum: the file is damaged; delete it or make it again",
                    self.path.display()
                );
            }
        }
        Ok(())
    }
}

/// The saved metadata in a profile's parquet key-value metadata (`kv` looks a key up),
/// checked, and the SHA-256 its data pages must have: what `Profile::load` and
/// [`ProfileRows::open`] both read before any page.
pub(super) fn saved_meta_and_pages(
    path: &Path,
    kv: impl Fn(&str) -> Option<String>,
) -> Result<(SavedMeta, String)> {
    let json = kv(META_KEY).ok_or_else(|| {
        anyhow!(
            "{} is not an mtkit profile (no `{META_KEY}` metadata)",
            path.display()
        )
    })?;
    let saved: SavedMeta = serde_json::from_str(&json)
        .with_context(|| format!("{}: bad profile metadata", path.display()))?;
    check_saved_meta(path, &saved.meta)?;
    let want = kv(PAGES_KEY).ok_or_else(|| {
        anyhow!(
            "{}: no checksum of its data pages (`{PAGES_KEY}`); rebuild it",
            path.display()
        )
    })?;
    Ok((saved, want))
}

/// The metadata checks both readers make before anything is allocated from it.
pub(super) fn check_saved_meta(path: &Path, m: &ProfileMeta) -> Result<()> {
    if m.format != super::FORMAT_VERSION {
        bail!(
            "{}: profile format {} is not the supported {}; rebuild it",
            path.display(),
            m.format,
            super::FORMAT_VERSION
        );
    }
    if !(1..=8).contains(&m.ngram) {
        bail!(
            "{}: damaged metadata: n-gram order {} is not between 1 and 8",
            path.display(),
            m.ngram
        );
    }
    if m.vocab_size == 0 || m.vocab_size > MAX_VOCAB {
        bail!(
            "{}: damaged metadata: a vocabulary of {} ids (at most {MAX_VOCAB})",
            path.display(),
            m.vocab_size
        );
    }
    if let NgramMode::Hashed { buckets } = m.ngram_mode {
        if buckets == 0 || buckets > MAX_BUCKETS {
            bail!(
                "{}: damaged metadata: {buckets} n-gram buckets (at most {MAX_BUCKETS})",
                path.display()
            );
        }
    }
    Ok(())
}

/// Refuses merged parts that do not cover every shard of their split, naming the missing
/// shards, unless `allow_partial` (`profile merge --partial`, `merge_profiles(partial=True)`
/// in Python).
pub fn check_coverage(meta: &ProfileMeta, allow_partial: bool) -> Result<()> {
    if let (Some(shards), false) = (&meta.shards, allow_partial) {
        let count = shards.first().map(|s| s.count).unwrap_or(0);
        let missing: Vec<String> = (1..=count)
            .filter(|i| !shards.iter().any(|s| s.index == *i))
            .map(|i| format!("{i}/{count}"))
            .collect();
        bail!(
            "the parts cover shards {} of `{}`, not shards {} (missing): add their profiles, or pass --partial to write a profile of part of the corpus (recorded in its metadata and shown by proximity)",
            shards.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
            meta.corpus,
            missing.join(", ")
        );
    }
    Ok(())
}

/// What `profile merge` wrote.
#[derive(Debug)]
pub struct Merged {
    /// The merged profile's metadata (shards `None` when the parts cover the whole corpus).
    pub meta: ProfileMeta,
    /// Its totals.
    pub totals: Totals,
}

/// Merges shard profile files into the profile at `output`, streaming: every order is a k-way
/// merge of the parts' sorted rows (equal keys add), so memory holds one row group per part.
/// The result is the same bytes as saving [`super::Profile::merge`] of the loaded parts.
///
/// Parts that do not cover every shard of their split are refused, naming the missing shards,
/// unless `allow_partial` (`profile merge --partial`): the result then records the shards it
/// covers in its metadata (`shards`), which `mtkit proximity` shows beside its numbers.
///
/// `progress` gets a stage per n-gram order, counting the parts' rows merged.
pub fn merge_files(
    inputs: &[PathBuf],
    output: &Path,
    allow_partial: bool,
    progress: &dyn crate::util::progress::Progress,
) -> Result<Merged> {
    let mut parts: Vec<ProfileRows> = inputs
        .iter()
        .map(|p| ProfileRows::open(p))
        .collect::<Result<_>>()?;
    let (meta, totals) = merged_meta(
        &parts
            .iter()
            .map(|p| (&p.meta, &p.totals))
            .collect::<Vec<_>>(),
        &|i| inputs[i].display().to_string(),
    )?;
    check_coverage(&meta, allow_partial)?;
    let unigram = super::sum_unigrams(meta.vocab_size, parts.iter().map(|p| &p.unigram[..]));
    for p in &mut parts {
        // Summed: a part's own vocabulary-sized table is not needed again.
        p.unigram = Vec::new();
    }
    let mut w = ProfileWriter::create(output, &meta, &totals, &unigram)?;
    // Rows of orders ≥ 2 per part: all its rows less the unigram rows (one per id counted).
    let ngram_rows: u64 = parts
        .iter()
        .map(|p| (p.n_rows - p.unigram_rows) as u64)
        .sum();
    progress.start_counting("merging n-grams", ngram_rows, "rows");
    let mut merged_rows = 0u64;
    for order in 2..=meta.ngram {
        // Min-heap of each part's next key of this order.
        let mut heap = BinaryHeap::new();
        for (i, p) in parts.iter_mut().enumerate() {
            if let Some((k, c)) = p.next_of(order)? {
                heap.push(std::cmp::Reverse((k, i, c)));
            }
        }
        while let Some(std::cmp::Reverse((key, i, c))) = heap.pop() {
            merged_rows += 1;
            if merged_rows % (1 << 16) == 0 {
                crate::util::progress::check_interrupt()?;
                progress.advance(1 << 16, 0, 0);
            }
            let mut sum = c;
            if let Some((k, c)) = parts[i].next_of(order)? {
                heap.push(std::cmp::Reverse((k, i, c)));
            }
            while let Some(std::cmp::Reverse((k, j, c))) = heap.peek().copied() {
                if k != key {
                    break;
                }
                heap.pop();
                merged_rows += 1;
                if merged_rows % (1 << 16) == 0 {
                    progress.advance(1 << 16, 0, 0);
                }
                sum += c;
                if let Some((k, c)) = parts[j].next_of(order)? {
                    heap.push(std::cmp::Reverse((k, j, c)));
                }
            }
            w.push(order, key, sum)?;
        }
    }
    progress.advance(merged_rows % (1 << 16), 0, 0);
    progress.finish();
    for p in parts {
        p.finish()?;
    }
    w.finish()?;
    Ok(Merged { meta, totals })
}
