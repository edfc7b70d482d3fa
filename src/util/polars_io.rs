//! Polars on a user's file, made safe: a parquet footer walked and checked before polars
//! reads it (polars allocates what a damaged footer claims), a panic inside polars turned into
//! an error naming the file, and tables as Arrow IPC bytes for the Python package. Depends on
//! nothing of mtkit's.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context, Result};

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

/// Checks a parquet file's trailer and walks its footer (Thrift compact protocol) before polars
/// reads it: polars allocates what a damaged footer claims (a list of 2^40 row groups, a
/// string of 100 GB), and a failed allocation aborts the process where an error was due. Every
/// list, map and string the footer declares must fit in the bytes left; nesting is bounded.
pub fn check_parquet_footer(path: &Path) -> Result<()> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: read-only; a file changed while it is read makes the check fail or pass, and
    // polars then reports what it finds; nothing is written through the map.
    let map = unsafe { memmap2::Mmap::map(&f)? };
    check_parquet_bytes(path, &map)
}

/// [`check_parquet_footer`] on a file's bytes already in memory (`path` names it in errors).
pub fn check_parquet_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    let damaged =
        |why: String| anyhow::anyhow!("{}: not a readable parquet file ({why})", path.display());
    let size = bytes.len() as u64;
    if size < 12 {
        return Err(damaged(format!("{size} bytes is too short")));
    }
    let tail = &bytes[bytes.len() - 8..];
    if &tail[4..] != b"PAR1" {
        return Err(damaged("no PAR1 at its end".into()));
    }
    let footer_len = u32::from_le_bytes(tail[..4].try_into().unwrap()) as u64;
    if footer_len + 12 > size {
        return Err(damaged(format!(
            "its footer length {footer_len} exceeds the file"
        )));
    }
    let data_end = size - 8 - footer_len;
    let footer = &bytes[data_end as usize..(size - 8) as usize];
    let mut r = ThriftWalk {
        buf: footer,
        pos: 0,
    };
    // Typed, not merely well-formed: polars' footer decoder picks what it reads by field id
    // alone, so a field of the wrong type would be read as another (an i64 read as a list
    // header asked for 32 GB; a non-boolean read as a boolean panics).
    r.typed_struct(&FILE_METADATA, 0)
        .map_err(|why| damaged(format!("its footer: {why}")))?;
    // Then every page header of every column chunk: polars sizes its buffers by them (a
    // negative value count became a request for 2^61 bytes).
    let chunks = column_chunks(footer).map_err(|why| damaged(format!("its footer: {why}")))?;
    for (k, c) in chunks.iter().enumerate() {
        check_pages(bytes, data_end, c)
            .map_err(|why| damaged(format!("column chunk {}: {why}", k + 1)))?;
    }
    Ok(())
}

/// The Thrift type a footer field must have where polars' decoder reads it: the fields of
/// parquet.thrift that polars 0.55's hand-written footer decoder reads by field id without
/// looking at the declared type (any other field it skips by its declared type, as the walk
/// does).
#[derive(Clone, Copy)]
enum Due {
    Bool,
    Byte,
    /// i16, i32 or i64: all zig-zag varints on the wire, read alike.
    Int,
    Binary,
    Struct(&'static ThriftStruct),
    List(&'static Due),
}

/// A struct of parquet.thrift: its name (for errors) and the fields polars reads.
struct ThriftStruct {
    name: &'static str,
    fields: &'static [(i16, Due)],
}

impl Due {
    /// Whether a value declared with compact-protocol type `ty` is what is due.
    fn accepts(self, ty: u8) -> bool {
        match self {
            Due::Bool => ty == 1 || ty == 2,
            Due::Byte => ty == 3,
            Due::Int => (4..=6).contains(&ty),
            Due::Binary => ty == 8,
            Due::Struct(_) => ty == 12,
            Due::List(_) => ty == 9 || ty == 10,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Due::Bool => "a boolean",
            Due::Byte => "a byte",
            Due::Int => "an integer",
            Due::Binary => "a string",
            Due::Struct(s) => s.name,
            Due::List(_) => "a list",
        }
    }
}

const EMPTY: ThriftStruct = ThriftStruct {
    name: "an empty struct",
    fields: &[],
};
const TIME_UNIT: ThriftStruct = ThriftStruct {
    name: "TimeUnit",
    fields: &[
        (1, Due::Struct(&EMPTY)),
        (2, Due::Struct(&EMPTY)),
        (3, Due::Struct(&EMPTY)),
    ],
};
const TIME_TYPE: ThriftStruct = ThriftStruct {
    name: "TimeType",
    fields: &[(1, Due::Bool), (2, Due::Struct(&TIME_UNIT))],
};
const LOGICAL_TYPE: ThriftStruct = ThriftStruct {
    name: "LogicalType",
    fields: &[
        (1, Due::Struct(&EMPTY)),
        (2, Due::Struct(&EMPTY)),
        (3, Due::Struct(&EMPTY)),
        (4, Due::Struct(&EMPTY)),
        (
            5,
            Due::Struct(&ThriftStruct {
                name: "DecimalType",
                fields: &[(1, Due::Int), (2, Due::Int)],
            }),
        ),
        (6, Due::Struct(&EMPTY)),
        (7, Due::Struct(&TIME_TYPE)),
        (8, Due::Struct(&TIME_TYPE)),
        (
            10,
            Due::Struct(&ThriftStruct {
                name: "IntType",
                fields: &[(1, Due::Byte), (2, Due::Bool)],
            }),
        ),
        (11, Due::Struct(&EMPTY)),
        (12, Due::Struct(&EMPTY)),
        (13, Due::Struct(&EMPTY)),
        (14, Due::Struct(&EMPTY)),
        (15, Due::Struct(&EMPTY)),
    ],
};
const SCHEMA_ELEMENT: ThriftStruct = ThriftStruct {
    name: "SchemaElement",
    fields: &[
        (1, Due::Int),
        (2, Due::Int),
        (3, Due::Int),
        (4, Due::Binary),
        (5, Due::Int),
        (6, Due::Int),
        (7, Due::Int),
        (8, Due::Int),
        (9, Due::Int),
        (10, Due::Struct(&LOGICAL_TYPE)),
    ],
};
const STATISTICS: ThriftStruct = ThriftStruct {
    name: "Statistics",
    fields: &[
        (1, Due::Binary),
        (2, Due::Binary),
        (3, Due::Int),
        (4, Due::Int),
        (5, Due::Binary),
        (6, Due::Binary),
        (7, Due::Bool),
        (8, Due::Bool),
    ],
};
const COLUMN_META_DATA: ThriftStruct = ThriftStruct {
    name: "ColumnMetaData",
    fields: &[
        (1, Due::Int),
        (2, Due::List(&Due::Int)),
        (3, Due::List(&Due::Binary)),
        (4, Due::Int),
        (5, Due::Int),
        (6, Due::Int),
        (7, Due::Int),
        (9, Due::Int),
        (10, Due::Int),
        (11, Due::Int),
        (12, Due::Struct(&STATISTICS)),
        (14, Due::Int),
        (15, Due::Int),
    ],
};
const COLUMN_CHUNK: ThriftStruct = ThriftStruct {
    name: "ColumnChunk",
    fields: &[
        (1, Due::Binary),
        (2, Due::Int),
        (3, Due::Struct(&COLUMN_META_DATA)),
        (4, Due::Int),
        (5, Due::Int),
        (6, Due::Int),
        (7, Due::Int),
    ],
};
const ROW_GROUP: ThriftStruct = ThriftStruct {
    name: "RowGroup",
    fields: &[
        (1, Due::List(&Due::Struct(&COLUMN_CHUNK))),
        (2, Due::Int),
        (3, Due::Int),
        (
            4,
            Due::List(&Due::Struct(&ThriftStruct {
                name: "SortingColumn",
                fields: &[(1, Due::Int), (2, Due::Bool), (3, Due::Bool)],
            })),
        ),
        (5, Due::Int),
        (6, Due::Int),
        (7, Due::Int),
    ],
};
const FILE_METADATA: ThriftStruct = ThriftStruct {
    name: "FileMetaData",
    fields: &[
        (1, Due::Int),
        (2, Due::List(&Due::Struct(&SCHEMA_ELEMENT))),
        (3, Due::Int),
        (4, Due::List(&Due::Struct(&ROW_GROUP))),
        (
            5,
            Due::List(&Due::Struct(&ThriftStruct {
                name: "KeyValue",
                fields: &[(1, Due::Binary), (2, Due::Binary)],
            })),
        ),
        (6, Due::Binary),
        (
            7,
            Due::List(&Due::Struct(&ThriftStruct {
                name: "ColumnOrder",
                fields: &[(1, Due::Struct(&EMPTY)), (2, Due::Struct(&EMPTY))],
            })),
        ),
    ],
};

/// What the footer says of one column chunk.
#[derive(Debug, Default)]
struct ColumnChunk {
    num_values: i64,
    total_compressed_size: i64,
    data_page_offset: i64,
    dictionary_page_offset: Option<i64>,
}

/// The column chunks a footer (FileMetaData) declares, every count and offset checked to be
/// non-negative.
fn column_chunks(footer: &[u8]) -> std::result::Result<Vec<ColumnChunk>, String> {
    let mut w = ThriftWalk {
        buf: footer,
        pos: 0,
    };
    let mut chunks = Vec::new();
    let mut last = 0;
    while let Some((id, ty)) = w.field(&mut last)? {
        match (id, ty) {
            (3, 4..=6) => {
                w.non_negative(ty, "num_rows")?;
            }
            (4, 9) => {
                let (n, elem) = w.list_header()?;
                for _ in 0..n {
                    if elem != 12 {
                        return Err("row groups that are not structs".into());
                    }
                    row_group(&mut w, &mut chunks)?;
                }
            }
            _ => w.skip_value(ty, 1)?,
        }
    }
    Ok(chunks)
}

fn row_group(w: &mut ThriftWalk, chunks: &mut Vec<ColumnChunk>) -> std::result::Result<(), String> {
    let mut last = 0;
    while let Some((id, ty)) = w.field(&mut last)? {
        match (id, ty) {
            (1, 9) => {
                let (n, elem) = w.list_header()?;
                for _ in 0..n {
                    if elem != 12 {
                        return Err("column chunks that are not structs".into());
                    }
                    let mut chunk = None;
                    let mut last = 0;
                    while let Some((id, ty)) = w.field(&mut last)? {
                        if (id, ty) == (3, 12) {
                            chunk = Some(column_meta(w)?);
                        } else {
                            w.skip_value(ty, 2)?;
                        }
                    }
                    chunks.extend(chunk);
                }
            }
            (2..=3, 4..=6) => {
                w.non_negative(ty, "a row group's size")?;
            }
            _ => w.skip_value(ty, 2)?,
        }
    }
    Ok(())
}

fn column_meta(w: &mut ThriftWalk) -> std::result::Result<ColumnChunk, String> {
    let mut c = ColumnChunk::default();
    let mut last = 0;
    while let Some((id, ty)) = w.field(&mut last)? {
        match (id, ty) {
            (5, 4..=6) => c.num_values = w.non_negative(ty, "num_values")?,
            (6, 4..=6) => {
                w.non_negative(ty, "total_uncompressed_size")?;
            }
            (7, 4..=6) => c.total_compressed_size = w.non_negative(ty, "total_compressed_size")?,
            (9, 4..=6) => c.data_page_offset = w.non_negative(ty, "data_page_offset")?,
            (11, 4..=6) => {
                c.dictionary_page_offset = Some(w.non_negative(ty, "dictionary_page_offset")?)
            }
            _ => w.skip_value(ty, 3)?,
        }
    }
    Ok(c)
}

/// Walks the page headers of one column chunk: each inside the chunk and the file's data,
/// its sizes and counts non-negative, no page holding more values than the chunk.
fn check_pages(file: &[u8], data_end: u64, c: &ColumnChunk) -> std::result::Result<(), String> {
    let start = c
        .dictionary_page_offset
        .filter(|&d| d > 0)
        .map_or(c.data_page_offset, |d| d.min(c.data_page_offset)) as u64;
    let end = start
        .checked_add(c.total_compressed_size as u64)
        .filter(|&e| e <= data_end)
        .ok_or_else(|| {
            format!(
                "its pages ({start} + {} bytes) run past the data",
                c.total_compressed_size
            )
        })?;
    let mut pos = start;
    while pos < end {
        let mut w = ThriftWalk {
            buf: &file[..end as usize],
            pos: pos as usize,
        };
        let mut compressed = None;
        let mut last = 0;
        while let Some((id, ty)) = w.field(&mut last)? {
            match (id, ty) {
                (2, 4..=6) => {
                    w.non_negative(ty, "uncompressed_page_size")?;
                }
                (3, 4..=6) => compressed = Some(w.non_negative(ty, "compressed_page_size")?),
                // data_page_header, dictionary_page_header, data_page_header_v2: their
                // counts (values, nulls, rows) and lengths.
                (5 | 7 | 8, 12) => {
                    let mut last = 0;
                    while let Some((id, ty)) = w.field(&mut last)? {
                        match (id, ty) {
                            (1..=3 | 5 | 6, 4..=6) => {
                                let v = w.non_negative(ty, "a page's count")?;
                                if id == 1 && c.num_values > 0 && v > c.num_values {
                                    return Err(format!(
                                        "a page of {v} values in a chunk of {}",
                                        c.num_values
                                    ));
                                }
                            }
                            _ => w.skip_value(ty, 1)?,
                        }
                    }
                }
                _ => w.skip_value(ty, 1)?,
            }
        }
        let size = compressed.ok_or("a page header without its size")? as u64;
        pos = (w.pos as u64)
            .checked_add(size)
            .filter(|&p| p <= end)
            .ok_or_else(|| format!("a page of {size} bytes runs past its chunk"))?;
    }
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

    /// The next field of a struct: (id, type), or `None` at its end.
    fn field(&mut self, last: &mut i16) -> std::result::Result<Option<(i16, u8)>, String> {
        let h = self.byte()?;
        if h == 0 {
            return Ok(None);
        }
        let id = match h >> 4 {
            0 => {
                let z = self.varint()?;
                ((z >> 1) as i64 ^ -((z & 1) as i64)) as i16
            }
            delta => last.wrapping_add(delta as i16),
        };
        *last = id;
        Ok(Some((id, h & 0x0f)))
    }

    /// An integer field's value (byte, i16, i32, i64), which must not be negative.
    fn non_negative(&mut self, ty: u8, what: &str) -> std::result::Result<i64, String> {
        let v = match ty {
            3 => self.byte()? as i8 as i64,
            _ => {
                let z = self.varint()?;
                (z >> 1) as i64 ^ -((z & 1) as i64)
            }
        };
        if v < 0 {
            return Err(format!("{what} is {v}"));
        }
        Ok(v)
    }

    /// A list header: (elements, element type), the count checked against the bytes left
    /// (every element takes at least one byte, booleans in a list too).
    fn list_header(&mut self) -> std::result::Result<(u64, u8), String> {
        let h = self.byte()?;
        let n = match h >> 4 {
            15 => self.varint()?,
            k => k as u64,
        };
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(format!("a list of {n} elements in {left} bytes"));
        }
        Ok((n, h & 0x0f))
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
                let (n, elem) = self.list_header()?;
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

    /// A struct whose fields polars reads are checked to have their due types (the others
    /// are skipped by their declared types, as polars skips them).
    fn typed_struct(
        &mut self,
        shape: &ThriftStruct,
        depth: usize,
    ) -> std::result::Result<(), String> {
        if depth > Self::MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        let mut last = 0;
        while let Some((id, ty)) = self.field(&mut last)? {
            match shape.fields.iter().find(|(i, _)| *i == id) {
                Some(&(_, due)) => {
                    self.typed_value(due, ty, depth, &|| format!("{} field {id}", shape.name))?
                }
                None => self.skip_value(ty, depth + 1)?,
            }
        }
        Ok(())
    }

    fn typed_value(
        &mut self,
        due: Due,
        ty: u8,
        depth: usize,
        what: &dyn Fn() -> String,
    ) -> std::result::Result<(), String> {
        if !due.accepts(ty) {
            return Err(format!(
                "{} has Thrift type {ty} where {} is due",
                what(),
                due.name()
            ));
        }
        match due {
            Due::Bool => Ok(()), // carried in the field header
            Due::Struct(shape) => self.typed_struct(shape, depth + 1),
            Due::List(elem) => {
                let (n, elem_ty) = self.list_header()?;
                for k in 0..n {
                    self.typed_value(*elem, elem_ty, depth + 1, &|| {
                        format!("element {} of {}", k + 1, what())
                    })?;
                }
                Ok(())
            }
            _ => self.skip_value(ty, depth + 1),
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

/// `df` as the bytes of an Arrow IPC stream (what `polars.read_ipc_stream` and pyarrow read):
/// how tables reach the Python package without a second build of polars.
pub fn ipc_stream_bytes(df: &mut polars::prelude::DataFrame) -> Result<Vec<u8>> {
    use polars::prelude::{IpcStreamWriter, SerWriter};
    let mut out = Vec::new();
    IpcStreamWriter::new(&mut out)
        .finish(df)
        .context("cannot write the table as an Arrow IPC stream")?;
    Ok(out)
}
