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

/// Checks a parquet file's trailer and walks its footer (Thrift compact protocol) before polars
/// reads it: polars allocates what a damaged footer claims (a list of 2^40 row groups, a
/// string of 100 GB), and a failed allocation aborts the process where an error was due. Every
/// list, map and string the footer declares must fit in the bytes left; nesting is bounded.
pub fn check_parquet_footer(path: &Path) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let damaged =
        |why: String| anyhow::anyhow!("{}: not a readable parquet file ({why})", path.display());
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = f.metadata()?.len();
    if size < 12 {
        return Err(damaged(format!("{size} bytes is too short")));
    }
    let mut tail = [0u8; 8];
    f.seek(SeekFrom::End(-8))?;
    f.read_exact(&mut tail)?;
    if &tail[4..] != b"PAR1" {
        return Err(damaged("no PAR1 at its end".into()));
    }
    let footer_len = u32::from_le_bytes(tail[..4].try_into().unwrap()) as u64;
    if footer_len + 12 > size {
        return Err(damaged(format!(
            "its footer length {footer_len} exceeds the file"
        )));
    }
    let mut footer = vec![0u8; footer_len as usize];
    f.seek(SeekFrom::Start(size - 8 - footer_len))?;
    f.read_exact(&mut footer)?;
    let mut r = ThriftWalk {
        buf: &footer,
        pos: 0,
    };
    r.skip_struct(0)
        .map_err(|why| damaged(format!("its footer: {why}")))?;
    Ok(())
}

/// A walk over Thrift compact-protocol bytes that checks sizes without building anything.
struct ThriftWalk<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl ThriftWalk<'_> {
    const MAX_DEPTH: usize = 64;

    fn byte(&mut self) -> std::result::Result<u8, String> {
        let b = *self.buf.get(self.pos).ok_or("ends early")?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> std::result::Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: u64) -> std::result::Result<(), String> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(format!("declares {n} bytes where {left} are left"));
        }
        self.pos += n as usize;
        Ok(())
    }

    fn skip_value(&mut self, ty: u8, depth: usize) -> std::result::Result<(), String> {
        if depth > Self::MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        match ty {
            1 | 2 => Ok(()), // booleans carried in the field header
            3 => self.take(1),
            4..=6 => self.varint().map(|_| ()),
            7 => self.take(8),
            8 => {
                let n = self.varint()?;
                self.take(n)
            }
            9 | 10 => {
                let h = self.byte()?;
                let elem = h & 0x0f;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    k => k as u64,
                };
                // Every element takes at least one byte (booleans in a list do too).
                let left = (self.buf.len() - self.pos) as u64;
                if n > left {
                    return Err(format!("a list of {n} elements in {left} bytes"));
                }
                for _ in 0..n {
                    if elem == 1 || elem == 2 {
                        self.take(1)?;
                    } else {
                        self.skip_value(elem, depth + 1)?;
                    }
                }
                Ok(())
            }
            11 => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                let kv = self.byte()?;
                let left = (self.buf.len() - self.pos) as u64;
                if n > left {
                    return Err(format!("a map of {n} entries in {left} bytes"));
                }
                for _ in 0..n {
                    self.skip_value(kv >> 4, depth + 1)?;
                    self.skip_value(kv & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            12 => self.skip_struct(depth + 1),
            other => Err(format!("unknown Thrift type {other}")),
        }
    }

    fn skip_struct(&mut self, depth: usize) -> std::result::Result<(), String> {
        if depth > Self::MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        loop {
            let h = self.byte()?;
            if h == 0 {
                return Ok(());
            }
            if h >> 4 == 0 {
                self.varint()?; // a field id that is not a small delta
            }
            self.skip_value(h & 0x0f, depth)?;
        }
    }
}
