//! Token files in the formats the trainers researchers use read, written by `mtkit tokenize
//! --format`: each document's ids in reading order, followed by EOS (Megatron's
//! `--append-eod`), streamed to disk with bounded memory.
//!
//! - `megatron`: megatron-core's indexed dataset (`megatron/core/datasets/indexed_dataset.py`,
//!   `_IndexWriter`): `NAME_text_document.bin` (the ids, uint16 when the vocabulary has fewer
//!   than 65,500 ids, else int32, as `DType.optimal_dtype` picks) and `NAME_text_document.idx`
//!   (`MMIDIDX\0\0`, version 1 u64, dtype code u8, sequence count u64, document count u64,
//!   sequence lengths int32, sequence byte pointers int64, document indices int64 `0..=n`:
//!   one sequence per document, as `preprocess_data.py` writes without `--split-sentences`).
//! - `olmo-core`: OLMo-core's numpy token files (`olmo_core/data/numpy_dataset.py`): flat
//!   `part-NNNNN.npy` arrays as `np.memmap` reads them, in the dtype `NumpyDatasetConfig.get_dtype`
//!   picks for the vocabulary (uint16 up to 65,536 ids, else uint32), documents never split
//!   across files, each file at most `--olmo-file-size` unless one document is larger; beside
//!   each, `part-NNNNN.csv.gz` with a `start,end` line per document (what
//!   `olmo_core.data.utils.iter_document_indices` reads; gzip without a timestamp).
//! - `litdata`: litdata's `optimize` output with `TokensLoader` (`litdata/streaming/writer.py`):
//!   `chunk-0-K.bin` (item count u32, item byte offsets u32 × (count + 1), then the items as
//!   int32, the dtype LitGPT's `torch.int` tensors have) closed when the next document would
//!   take it past `--litdata-chunk-tokens` tokens (optimize's `chunk_size` rule), and
//!   `index.json` with the chunks and optimize's config, keys sorted as Python's `json.dump`
//!   writes them; `updated_at` is a digest (CRC-32 and length) of the chunks instead of the
//!   time, so the folder is the same bytes from run to run.
//!
//! Every corpus folder also holds `mtkit-tokenize.json` ([`FormatMeta`]): the format, the
//! tokenizer's SHA-256, the sampling settings, and the tokens of every file, which
//! `suggest-mix --emit ... --data DIR` reads.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// What `mtkit tokenize --format` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// mtkit's own token files (the trainer's).
    Mtkit,
    /// megatron-core's indexed dataset (.bin + .idx).
    Megatron,
    /// OLMo-core's numpy token files.
    OlmoCore,
    /// litdata `optimize` output with TokensLoader (LitGPT).
    Litdata,
}

/// Every format's name, as `--format` takes it.
pub const FORMATS: &[&str] = &["mtkit", "megatron", "olmo-core", "litdata"];

impl std::str::FromStr for Format {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Format> {
        Ok(match s {
            "mtkit" => Format::Mtkit,
            "megatron" => Format::Megatron,
            "olmo-core" | "olmo" => Format::OlmoCore,
            "litdata" | "litgpt" => Format::Litdata,
            other => bail!(
                "unknown token format {other:?}; the formats are {}",
                FORMATS.join(", ")
            ),
        })
    }
}

impl Format {
    /// Its name, as `--format` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Mtkit => "mtkit",
            Format::Megatron => "megatron",
            Format::OlmoCore => "olmo-core",
            Format::Litdata => "litdata",
        }
    }
}

/// Sizes of the formats' files.
#[derive(Clone, Copy, Debug)]
pub struct FormatOptions {
    /// OLMo-core: the most bytes of one `.npy` file (a larger document gets a file alone).
    pub olmo_file_bytes: u64,
    /// litdata: the most tokens of one chunk (optimize's `chunk_size` with TokensLoader).
    pub litdata_chunk_tokens: u64,
}

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions {
            // OLMo's own numpy files are 1-4 GB.
            olmo_file_bytes: 1 << 30,
            // LitGPT's preparation scripts: chunk_size = (2049 × 8192) tokens.
            litdata_chunk_tokens: 2049 * 8192,
        }
    }
}

/// One file a format wrote, with its tokens and documents.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FileTokens {
    /// File name inside the corpus folder.
    pub file: String,
    /// Tokens in it (EOS included).
    pub tokens: u64,
    /// Documents in it.
    pub documents: u64,
}

/// `mtkit-tokenize.json`: what a corpus folder of a trainer format holds and how it was made.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FormatMeta {
    /// The format.
    pub format: Format,
    /// Corpus name.
    pub corpus: String,
    /// Hash of the card and its files.
    pub card_hash: String,
    /// SHA-256 of the tokenizer file.
    pub tokenizer_sha256: String,
    /// The tokenizer's vocabulary size.
    pub vocab_size: usize,
    /// The end-of-document id appended to every document.
    pub eos_id: u32,
    /// The ids' dtype (numpy's name).
    pub dtype: String,
    /// Documents written.
    pub documents: u64,
    /// Tokens written (EOS included).
    pub tokens: u64,
    /// The data files, in order (the megatron `.bin`; OLMo's `.npy`; litdata's chunks).
    pub files: Vec<FileTokens>,
    /// Documents sampled (`None`: all), and the sample's seed.
    pub max_docs: Option<u64>,
    /// Seed of the sample.
    pub seed: u64,
    /// Records skipped as bad, by kind.
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// The mtkit version that wrote it.
    pub mtkit_version: String,
}

/// The name of a trainer format's metadata file.
pub const META_FILE: &str = "mtkit-tokenize.json";

/// Reads a corpus folder's `mtkit-tokenize.json`.
pub fn read_format_meta(dir: &Path) -> Result<FormatMeta> {
    let p = dir.join(META_FILE);
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not mtkit's token format metadata", p.display()))
}

/// What a corpus folder holds: its format (mtkit's token files or a trainer format mtkit
/// wrote), or the files there when mtkit did not write them; None when it does not exist or
/// is empty.
pub fn existing(dir: &Path) -> Option<std::result::Result<Format, Vec<String>>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        return None;
    }
    names.sort();
    if let Ok(m) = read_format_meta(dir) {
        return Some(Ok(m.format));
    }
    if names.iter().any(|n| n == "meta.json") && names.iter().any(|n| n.ends_with(".tokens")) {
        return Some(Ok(Format::Mtkit));
    }
    Some(Err(names))
}

/// The dtype a format stores ids of a `vocab`-id vocabulary in: (numpy name, bytes).
pub fn dtype_for(format: Format, vocab: usize) -> Result<(&'static str, usize)> {
    Ok(match format {
        Format::Mtkit => {
            if vocab <= 1 << 16 {
                ("uint16", 2)
            } else {
                ("uint32", 4)
            }
        }
        // megatron-core's DType.optimal_dtype(cardinality).
        Format::Megatron => {
            if vocab < 65_500 {
                ("uint16", 2)
            } else if vocab <= i32::MAX as usize {
                ("int32", 4)
            } else {
                bail!("a vocabulary of {vocab} ids does not fit Megatron's int32 token files")
            }
        }
        // OLMo-core's NumpyDatasetConfig.get_dtype: the smallest unsigned type holding vocab - 1.
        Format::OlmoCore => {
            if vocab.saturating_sub(1) <= u16::MAX as usize {
                ("uint16", 2)
            } else if vocab.saturating_sub(1) <= u32::MAX as usize {
                ("uint32", 4)
            } else {
                bail!("a vocabulary of {vocab} ids does not fit OLMo-core's uint32 token files")
            }
        }
        // LitGPT tokenizes into torch.int (int32) tensors.
        Format::Litdata => {
            if vocab <= i32::MAX as usize {
                ("int32", 4)
            } else {
                bail!("a vocabulary of {vocab} ids does not fit litdata's int32 token chunks")
            }
        }
    })
}

/// Documents of one corpus, in reading order, into a trainer format.
pub trait DocSink: Send {
    /// Appends a document's ids (its EOS included).
    fn push(&mut self, ids: &[u32]) -> Result<()>;
    /// Finishes the files; returns them with their tokens and documents.
    fn finish(self: Box<Self>) -> Result<Vec<FileTokens>>;
}

/// A trainer format's files as a [`super::TokenSink`]: every document to its sink (the
/// trainers take no validation split and no prompt mask), counted; the ending writes the
/// format's metadata ([`META_FILE`]) beside the files.
pub struct TrainerFiles {
    format: Format,
    sink: Box<dyn DocSink>,
    docs: u64,
    tokens: u64,
}

impl TrainerFiles {
    /// Starts `format`'s files for corpus `name` in `dir`.
    pub fn new(
        format: Format,
        dir: &Path,
        name: &str,
        vocab: usize,
        o: &FormatOptions,
    ) -> Result<TrainerFiles> {
        Ok(TrainerFiles {
            format,
            sink: sink(format, dir, name, vocab, o)?,
            docs: 0,
            tokens: 0,
        })
    }
}

impl super::TokenSink for TrainerFiles {
    fn push(&mut self, ids: &[u32], _prompt_len: u32, _val: bool) -> Result<()> {
        self.sink.push(ids)?;
        self.docs += 1;
        self.tokens += ids.len() as u64;
        Ok(())
    }

    fn finish(
        self: Box<Self>,
        dir: &Path,
        end: &super::Ending<'_>,
    ) -> Result<super::TokenFilesMeta> {
        let TrainerFiles {
            format,
            sink,
            docs,
            tokens,
        } = *self;
        let files = sink.finish()?;
        let (dtype, _) = dtype_for(format, end.tok.vocab_size)?;
        let fm = FormatMeta {
            format,
            corpus: end.card.name.clone(),
            card_hash: end.card.content_hash()?,
            tokenizer_sha256: end.tok.sha256.clone(),
            vocab_size: end.tok.vocab_size,
            eos_id: end.eos,
            dtype: dtype.into(),
            documents: docs,
            tokens,
            files,
            max_docs: end.sample.max_docs,
            seed: end.sample.seed,
            skipped: end.summary.skipped.clone(),
            mtkit_version: crate::VERSION.to_string(),
        };
        crate::util::paths::write_atomic_bytes(
            &dir.join(META_FILE),
            (serde_json::to_string_pretty(&fm)? + "\n").as_bytes(),
        )?;
        Ok(super::TokenFilesMeta {
            corpus: fm.corpus,
            card_hash: fm.card_hash,
            tokenizer_sha256: fm.tokenizer_sha256,
            vocab_size: fm.vocab_size,
            eos_id: end.eos,
            train_docs: docs,
            train_tokens: tokens,
            val_docs: 0,
            val_tokens: 0,
            has_prompt: false,
            prompt_mask_dropped: end.has_prompt,
            seed: end.sample.seed,
            skipped: fm.skipped,
            skipped_examples: end.summary.examples.clone(),
        })
    }
}

/// A sink writing `format` for corpus `name` into the folder `dir` (a temporary folder the
/// caller puts in place when everything is written).
pub fn sink(
    format: Format,
    dir: &Path,
    name: &str,
    vocab: usize,
    o: &FormatOptions,
) -> Result<Box<dyn DocSink>> {
    let (_, width) = dtype_for(format, vocab)?;
    Ok(match format {
        Format::Mtkit => bail!("mtkit's own token files are written by mtkit_format::MtkitFiles"),
        Format::Megatron => Box::new(Megatron::new(dir, name, width)?),
        Format::OlmoCore => Box::new(Olmo::new(dir, width, o.olmo_file_bytes)),
        Format::Litdata => Box::new(Litdata::new(dir, o.litdata_chunk_tokens)),
    })
}

fn create(path: &Path) -> Result<std::io::BufWriter<std::fs::File>> {
    Ok(std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    ))
}

fn put_ids(w: &mut impl Write, ids: &[u32], width: usize, path: &Path) -> Result<()> {
    let r = if width == 2 {
        ids.iter()
            .try_for_each(|&id| w.write_all(&(id as u16).to_le_bytes()))
    } else {
        ids.iter()
            .try_for_each(|&id| w.write_all(&id.to_le_bytes()))
    };
    r.with_context(|| format!("cannot write {}", path.display()))
}

/// megatron-core's `.bin` + `.idx`.
struct Megatron {
    dir: PathBuf,
    prefix: String,
    width: usize,
    bin: std::io::BufWriter<std::fs::File>,
    /// Sequence lengths (int32), spilled to a file so that memory does not grow with the corpus.
    lengths: std::io::BufWriter<std::fs::File>,
    docs: u64,
    tokens: u64,
}

impl Megatron {
    fn new(dir: &Path, name: &str, width: usize) -> Result<Megatron> {
        let prefix = format!("{name}_text_document");
        Ok(Megatron {
            bin: create(&dir.join(format!("{prefix}.bin")))?,
            lengths: create(&dir.join(".lengths"))?,
            dir: dir.to_path_buf(),
            prefix,
            width,
            docs: 0,
            tokens: 0,
        })
    }
}

impl DocSink for Megatron {
    fn push(&mut self, ids: &[u32]) -> Result<()> {
        if ids.len() > i32::MAX as usize {
            bail!(
                "a document of {} tokens is longer than Megatron's int32 sequence lengths",
                ids.len()
            );
        }
        put_ids(
            &mut self.bin,
            ids,
            self.width,
            &self.dir.join(format!("{}.bin", self.prefix)),
        )?;
        self.lengths.write_all(&(ids.len() as i32).to_le_bytes())?;
        self.docs += 1;
        self.tokens += ids.len() as u64;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Vec<FileTokens>> {
        let Megatron {
            dir,
            prefix,
            width,
            bin,
            lengths,
            docs,
            tokens,
            ..
        } = *self;
        let idx_path = dir.join(format!("{prefix}.idx"));
        bin.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        lengths.into_inner().map_err(|e| e.into_error())?;
        let lengths_path = dir.join(".lengths");
        let mut idx = create(&idx_path)?;
        let mut put = |b: &[u8]| {
            idx.write_all(b)
                .with_context(|| format!("cannot write {}", idx_path.display()))
        };
        put(b"MMIDIDX\x00\x00")?;
        put(&1u64.to_le_bytes())?;
        put(&[if width == 2 { 8u8 } else { 4u8 }])?;
        put(&docs.to_le_bytes())?;
        put(&(docs + 1).to_le_bytes())?;
        // The lengths, then the byte pointers, then the document indices 0..=docs: streamed
        // from the spilled lengths, twice.
        let mut lf = std::io::BufReader::new(std::fs::File::open(&lengths_path)?);
        std::io::copy(&mut lf, &mut idx)?;
        let mut lf = std::io::BufReader::new(std::fs::File::open(&lengths_path)?);
        let mut at = 0i64;
        let mut buf = [0u8; 4];
        for _ in 0..docs {
            std::io::Read::read_exact(&mut lf, &mut buf)?;
            idx.write_all(&at.to_le_bytes())?;
            at += i32::from_le_bytes(buf) as i64 * width as i64;
        }
        for d in 0..=docs {
            idx.write_all(&(d as i64).to_le_bytes())?;
        }
        idx.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::remove_file(&lengths_path)?;
        Ok(vec![FileTokens {
            file: format!("{prefix}.bin"),
            tokens,
            documents: docs,
        }])
    }
}

/// OLMo-core's `part-NNNNN.npy` files with their `.csv.gz` document boundaries.
struct Olmo {
    dir: PathBuf,
    width: usize,
    max_bytes: u64,
    files: Vec<FileTokens>,
    current: Option<(
        std::io::BufWriter<std::fs::File>,
        flate2::write::GzEncoder<std::io::BufWriter<std::fs::File>>,
    )>,
}

impl Olmo {
    fn new(dir: &Path, width: usize, max_bytes: u64) -> Olmo {
        Olmo {
            dir: dir.to_path_buf(),
            width,
            max_bytes,
            files: Vec::new(),
            current: None,
        }
    }

    fn close(&mut self) -> Result<()> {
        if let Some((npy, gz)) = self.current.take() {
            npy.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            gz.finish()?
                .into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()?;
        }
        Ok(())
    }
}

impl DocSink for Olmo {
    fn push(&mut self, ids: &[u32]) -> Result<()> {
        let bytes = ids.len() as u64 * self.width as u64;
        let full = self
            .files
            .last()
            .is_some_and(|f| f.tokens > 0 && f.tokens * self.width as u64 + bytes > self.max_bytes);
        if self.current.is_none() || full {
            self.close()?;
            let k = self.files.len();
            let npy = create(&self.dir.join(format!("part-{k:05}.npy")))?;
            // No file name and mtime 0 in the gzip header: the same bytes every run.
            let gz = flate2::GzBuilder::new().mtime(0).write(
                create(&self.dir.join(format!("part-{k:05}.csv.gz")))?,
                flate2::Compression::default(),
            );
            self.current = Some((npy, gz));
            self.files.push(FileTokens {
                file: format!("part-{k:05}.npy"),
                tokens: 0,
                documents: 0,
            });
        }
        let k = self.files.len() - 1;
        let (npy, gz) = self.current.as_mut().expect("a file is open");
        let f = &mut self.files[k];
        put_ids(npy, ids, self.width, &self.dir.join(&f.file))?;
        writeln!(gz, "{},{}", f.tokens, f.tokens + ids.len() as u64)?;
        f.tokens += ids.len() as u64;
        f.documents += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<FileTokens>> {
        self.close()?;
        Ok(std::mem::take(&mut self.files))
    }
}

/// litdata's `chunk-0-K.bin` files and `index.json`.
struct Litdata {
    dir: PathBuf,
    max_tokens: u64,
    /// The open chunk's documents (flattened) and their lengths.
    ids: Vec<u32>,
    lens: Vec<u32>,
    files: Vec<FileTokens>,
    /// (file, bytes, items, tokens) of each chunk written.
    chunks: Vec<(String, u64, u64, u64)>,
    /// CRC-32 of every chunk's bytes, for `updated_at` (a SHA-256 of them cost the writing
    /// thread a tenth of a second per 250 MB, on cores the tokenizer needs).
    digest: flate2::Crc,
}

impl Litdata {
    fn new(dir: &Path, max_tokens: u64) -> Litdata {
        Litdata {
            dir: dir.to_path_buf(),
            max_tokens: max_tokens.max(1),
            ids: Vec::new(),
            lens: Vec::new(),
            files: Vec::new(),
            chunks: Vec::new(),
            digest: flate2::Crc::new(),
        }
    }

    fn flush(&mut self) -> Result<()> {
        if self.lens.is_empty() {
            return Ok(());
        }
        let k = self.chunks.len();
        let name = format!("chunk-0-{k}.bin");
        let n = self.lens.len() as u32;
        // Written through a buffer in blocks, not built whole first: a chunk is 67 MB of
        // int32 ids by default, and a second copy of it cost a quarter of tokenize's time.
        let path = self.dir.join(&name);
        let mut out = std::fs::File::create(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mut bytes = 0u64;
        let mut emit = |b: &[u8], digest: &mut flate2::Crc| -> Result<()> {
            out.write_all(b)
                .with_context(|| format!("cannot write {}", path.display()))?;
            digest.update(b);
            bytes += b.len() as u64;
            Ok(())
        };
        let mut block: Vec<u8> = Vec::with_capacity(1 << 20);
        block.extend_from_slice(&n.to_le_bytes());
        let mut at = 4 * (n + 2);
        block.extend_from_slice(&at.to_le_bytes());
        for &l in &self.lens {
            at += 4 * l;
            block.extend_from_slice(&at.to_le_bytes());
            if block.len() >= 1 << 20 {
                emit(&block, &mut self.digest)?;
                block.clear();
            }
        }
        emit(&block, &mut self.digest)?;
        block.clear();
        // The ids as int32: on a little-endian machine the bytes they have in memory (the
        // vocabulary is below 2^31), written straight from the chunk.
        for ids in self.ids.chunks(1 << 18) {
            if cfg!(target_endian = "little") {
                // SAFETY: u32 has no padding and any byte of it may be read; the slice
                // covers exactly the ids' memory, which outlives it.
                let raw =
                    unsafe { std::slice::from_raw_parts(ids.as_ptr().cast::<u8>(), ids.len() * 4) };
                emit(raw, &mut self.digest)?;
            } else {
                block.extend(ids.iter().flat_map(|&id| (id as i32).to_le_bytes()));
                emit(&block, &mut self.digest)?;
                block.clear();
            }
        }
        let tokens = self.ids.len() as u64;
        self.chunks.push((name.clone(), bytes, n as u64, tokens));
        self.files.push(FileTokens {
            file: name,
            tokens,
            documents: n as u64,
        });
        self.ids.clear();
        self.lens.clear();
        Ok(())
    }
}

impl DocSink for Litdata {
    fn push(&mut self, ids: &[u32]) -> Result<()> {
        // optimize's rule: a chunk takes documents while its tokens stay within chunk_size.
        if !self.lens.is_empty() && self.ids.len() as u64 + ids.len() as u64 > self.max_tokens {
            self.flush()?;
        }
        if 4 * (self.ids.len() as u64 + ids.len() as u64 + self.lens.len() as u64 + 3)
            > u32::MAX as u64
        {
            bail!("a litdata chunk would pass 4 GiB (its offsets are u32): lower --litdata-chunk-tokens");
        }
        self.ids.extend_from_slice(ids);
        self.lens.push(ids.len() as u32);
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<FileTokens>> {
        self.flush()?;
        // index.json as optimize writes it (json.dump, sort_keys=True): keys sorted, ", " and
        // ": " separators.
        let chunks: Vec<String> = self
            .chunks
            .iter()
            .map(|(f, bytes, items, tokens)| {
                format!("{{\"chunk_bytes\": {bytes}, \"chunk_size\": {items}, \"dim\": {tokens}, \"filename\": \"{f}\"}}")
            })
            .collect();
        let stamp =
            (((self.digest.amount() as u64) << 32) | self.digest.sum() as u64) % 10_000_000_000;
        let index = format!(
            "{{\"chunks\": [{}], \"config\": {{\"chunk_bytes\": null, \"chunk_size\": {}, \"compression\": null, \"compression_batch_size\": null, \"compression_level\": null, \"data_format\": [\"no_header_tensor:16\"], \"data_spec\": \"[1, {{\\\"type\\\": null, \\\"context\\\": null, \\\"children_spec\\\": []}}]\", \"encryption\": null, \"ipc_compression\": null, \"item_loader\": \"TokensLoader\", \"types\": \"tensor\"}}, \"updated_at\": \"{stamp}\"}}",
            chunks.join(", "),
            self.max_tokens
        );
        let path = self.dir.join("index.json");
        std::fs::write(&path, index).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(std::mem::take(&mut self.files))
    }
}

/// The data files of corpus `name` in `format` under `data` (a `tokenize -o` folder), with
/// their tokens, or an error that names the `mtkit tokenize` command that makes them.
pub fn files_of(data: &Path, name: &str, format: Format) -> Result<(PathBuf, FormatMeta)> {
    let dir = data.join(name);
    let tokenize = format!(
        "mtkit tokenize {name} -o {} --format {}",
        data.display(),
        format.name()
    );
    let meta = match read_format_meta(&dir) {
        Ok(m) => m,
        Err(_) => bail!(
            "source `{name}` is not tokenized as {} in {}: run `{tokenize}`",
            format.name(),
            data.display()
        ),
    };
    if meta.format != format {
        bail!(
            "source `{name}` is tokenized as {} in {}, not as {}: run `{tokenize}` (into another folder)",
            meta.format.name(),
            dir.display(),
            format.name()
        );
    }
    Ok((dir, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_follow_each_trainers_rule() {
        assert_eq!(dtype_for(Format::Megatron, 50_280).unwrap(), ("uint16", 2));
        assert_eq!(dtype_for(Format::Megatron, 65_500).unwrap(), ("int32", 4));
        assert_eq!(dtype_for(Format::OlmoCore, 65_536).unwrap(), ("uint16", 2));
        assert_eq!(dtype_for(Format::OlmoCore, 65_537).unwrap(), ("uint32", 4));
        assert_eq!(dtype_for(Format::Litdata, 50_280).unwrap(), ("int32", 4));
        assert!(
            format!("{}", dtype_for(Format::Litdata, 1 << 32).unwrap_err())
                .contains("does not fit")
        );
        assert!(format!("{}", dtype_for(Format::Megatron, 1 << 32).unwrap_err()).contains("int32"));
        let e = "parquet".parse::<Format>().unwrap_err();
        assert!(
            format!("{e}").contains("mtkit, megatron, olmo-core, litdata"),
            "{e}"
        );
    }
}
