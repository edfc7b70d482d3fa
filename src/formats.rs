//! Corpus file formats: which files mtkit reads (by name), how they are compressed, opening
//! them decompressed, and running polars on a user's parquet file. Used by the catalog (which
//! files a folder holds), the corpus readers, the Hub client and profiles, so it depends on
//! nothing of mtkit's.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Container format of a corpus file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (`.jsonl`, `.ndjson`; `.json` holding lines or one array).
    Jsonl,
    /// Apache Parquet (`.parquet`), read in row slices through polars.
    Parquet,
    /// Plain text (`.txt`, `.md`), split into documents as the card says.
    Text,
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

/// Runs polars on a user's file: polars can panic on a damaged file (in its own threads too)
/// instead of failing, and a damaged file is an error naming it like any other.
pub fn catch_polars<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        bail!(
            "{}: the parquet reader failed on this file: it is damaged or not parquet",
            path.display()
        )
    })
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
