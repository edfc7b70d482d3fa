//! Corpus files: which files mtkit reads (by name: jsonl, text, parquet, arrow, and a Hugging
//! Face `save_to_disk` folder), how they are compressed, opening them decompressed, and which
//! files in a folder are mtkit's own outputs rather than corpus. Used by the catalog (which
//! files a folder holds), the corpus readers and the Hub client.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Reads into `buf` until it is full or the reader ends, and says how many bytes came: a
/// short count means the end, where one `read` may stop early on any reader.
pub fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Container format of a corpus file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (`.jsonl`, `.ndjson`; `.json` holding lines or one array).
    Jsonl,
    /// Apache Parquet (`.parquet`), read in row slices through polars.
    Parquet,
    /// Plain text (`.txt`, `.md`), split into documents as the card says.
    Text,
    /// Arrow IPC stream (`.arrow`): what Hugging Face `datasets` writes to its cache and with
    /// `save_to_disk`, read batch by batch.
    ArrowStream,
}

/// Compression of a corpus file, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (`.gz`), including multi-member files.
    Gzip,
    /// Zstandard (`.zst`, `.zstd`).
    Zstd,
}

/// A file's lower-cased name without its compression suffix, and the compression.
fn stem_and_compression(path: &Path) -> Option<(String, Compression)> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    for (suffix, comp) in [
        (".gz", Compression::Gzip),
        (".zst", Compression::Zstd),
        (".zstd", Compression::Zstd),
    ] {
        if let Some(stem) = name.strip_suffix(suffix) {
            return Some((stem.to_string(), comp));
        }
    }
    Some((name, Compression::None))
}

impl Format {
    /// Format and compression from the file name, or `None` for files mtkit does not read.
    pub fn detect(path: &Path) -> Option<(Format, Compression)> {
        let (stem, comp) = stem_and_compression(path)?;
        let ext = stem.rsplit('.').next()?;
        let fmt = match ext {
            "jsonl" | "ndjson" | "json" => Format::Jsonl,
            "parquet" if comp == Compression::None => Format::Parquet,
            "txt" | "text" | "md" => Format::Text,
            "arrow" if comp == Compression::None => Format::ArrowStream,
            _ => return None,
        };
        Some((fmt, comp))
    }

    /// Whether the file is a `.json` file (possibly compressed), which may hold one JSON array
    /// of records; `.jsonl` and `.ndjson` files are JSON Lines whatever their first byte.
    pub fn may_be_json_array(path: &Path) -> bool {
        stem_and_compression(path).is_some_and(|(stem, _)| stem.ends_with(".json"))
    }
}

/// The data files of a Hugging Face `datasets` folder written by `save_to_disk` (`state.json`
/// names them, in order), or None when `dir` is not one. A DatasetDict folder (one folder per
/// split) is refused naming its splits, and a dataset whose state holds an indices mapping
/// (rows selected or shuffled but not written) is refused with the way to write them.
pub fn hf_dataset_files(dir: &Path) -> Result<Option<Vec<std::path::PathBuf>>> {
    let dict = dir.join("dataset_dict.json");
    if dict.is_file() {
        let splits: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("state.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let mut splits = splits;
        splits.sort();
        bail!(
            "{} is a Hugging Face DatasetDict (splits: {}); name one split's folder, e.g. {}",
            dir.display(),
            splits.join(", "),
            dir.join(splits.first().map(String::as_str).unwrap_or("train"))
                .display()
        );
    }
    let state = dir.join("state.json");
    if !state.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&state)
        .with_context(|| format!("cannot read {}", state.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", state.display()))?;
    if v.get("_indices_data_files")
        .and_then(|x| x.as_array())
        .is_some_and(|a| !a.is_empty())
    {
        bail!(
            "{}: the dataset holds an indices mapping (rows selected or shuffled, not written out), which mtkit does not apply; write the rows with `ds.flatten_indices().save_to_disk(...)`",
            state.display()
        );
    }
    let files = v
        .get("_data_files")
        .and_then(|x| x.as_array())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no `_data_files` list (not a `datasets` save_to_disk folder?)",
                state.display()
            )
        })?;
    let mut out = Vec::new();
    for f in files {
        let name = f.get("filename").and_then(|n| n.as_str()).ok_or_else(|| {
            anyhow::anyhow!("{}: a `_data_files` entry has no filename", state.display())
        })?;
        let p = Path::new(name);
        if p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            bail!(
                "{}: data file {name:?} is not inside the folder",
                state.display()
            );
        }
        out.push(dir.join(p));
    }
    Ok(Some(out))
}

/// The UTF-8 byte-order mark some editors write at the start of a file; not part of the text.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Opens a file, decompressing by its name.
pub fn open_decompressed(path: &Path) -> Result<Box<dyn Read + Send>> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let comp = Format::detect(path)
        .map(|(_, c)| c)
        .unwrap_or(Compression::None);
    Ok(match comp {
        Compression::None => Box::new(f),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 20,
            f,
        ))),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(f)
                .with_context(|| format!("{}: not a zstd stream", path.display()))?,
        ),
    })
}

/// Whether `path` is something mtkit wrote rather than a corpus, so that a folder corpus
/// whose folder also holds mtkit's outputs (`-o` inside it) does not read them on the next
/// run: a profile (a parquet file whose footer has the `mtkit.profile` metadata key), a
/// profile's `.sha256`, or a token folder (`meta.json` beside `*.tokens`, or a trainer
/// format's `mtkit-tokenize.json`).
pub fn is_mtkit_output(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if path.is_dir() {
        if path.join("mtkit-tokenize.json").is_file() {
            return true;
        }
        let tokens = std::fs::read_dir(path).ok().is_some_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".tokens"))
        });
        return tokens && path.join("meta.json").is_file();
    }
    if name.ends_with(".parquet.sha256") {
        return true;
    }
    if !name.ends_with(".parquet") {
        return false;
    }
    // The footer is at the end: its length, then PAR1. The key is stored as plain bytes.
    let footer = || -> std::io::Result<Vec<u8>> {
        use std::io::{Seek, SeekFrom};
        let mut f = File::open(path)?;
        let size = f.seek(SeekFrom::End(0))?;
        if size < 12 {
            return Ok(Vec::new());
        }
        let mut tail = [0u8; 8];
        f.seek(SeekFrom::End(-8))?;
        f.read_exact(&mut tail)?;
        let len = u32::from_le_bytes(tail[..4].try_into().unwrap()) as u64;
        if &tail[4..] != b"PAR1" || len + 12 > size || len > 64 << 20 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; len as usize];
        f.seek(SeekFrom::Start(size - 8 - len))?;
        f.read_exact(&mut buf)?;
        Ok(buf)
    };
    const KEY: &[u8] = b"mtkit.profile";
    footer().is_ok_and(|b| b.windows(KEY.len()).any(|w| w == KEY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        assert_eq!(
            Format::detect(Path::new("x.jsonl.gz")),
            Some((Format::Jsonl, Compression::Gzip))
        );
        assert_eq!(
            Format::detect(Path::new("x.JSON.zst")),
            Some((Format::Jsonl, Compression::Zstd))
        );
        assert_eq!(
            Format::detect(Path::new("x.parquet")),
            Some((Format::Parquet, Compression::None))
        );
        assert_eq!(
            Format::detect(Path::new("x.txt")),
            Some((Format::Text, Compression::None))
        );
        assert_eq!(Format::detect(Path::new("x.csv")), None);
    }
}
