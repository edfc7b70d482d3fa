//! The Arrow IPC reader (files and streams, as Hugging Face `save_to_disk` writes them): every
//! message's bounds checked before polars reads it, then records row by row.

use super::*;

/// The rows a record batch may declare beyond one per bit of its body: a batch of only
/// Null-typed arrays has no body at all, and a real one (a column `datasets` saw only `None`
/// in) is short.
const MAX_BODYLESS_ROWS: i64 = 1 << 12;

/// Checks an Arrow IPC stream's framing against the file before polars reads it: polars'
/// reader allocates each buffer at the length its message declares before reading it, so a
/// damaged length (terabytes; found by the arrow_file fuzz target) aborted the process. Every
/// message's body must lie inside the file and every buffer inside its body; compressed bodies
/// (whose declared sizes would need the same care; `datasets` never writes them) are refused,
/// and so is a batch declaring more rows than its body could hold.
fn check_arrow_stream(path: &Path) -> Result<()> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let mut f = BufReader::new(
        File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    let damaged = |at: u64, what: &str| {
        anyhow!(
            "{}: damaged Arrow IPC stream: the message at byte {at} {what}",
            path.display()
        )
    };
    let mut pos = 0u64;
    loop {
        let start = pos;
        let mut word = [0u8; 4];
        if read_up_to(&mut f, &mut word)
            .with_context(|| format!("cannot read {}", path.display()))?
            < 4
        {
            return Ok(()); // the end (a torn tail is polars' to report)
        }
        pos += 4;
        let mut len = u32::from_le_bytes(word);
        if len == 0xFFFF_FFFF {
            if read_up_to(&mut f, &mut word)
                .with_context(|| format!("cannot read {}", path.display()))?
                < 4
            {
                return Ok(());
            }
            pos += 4;
            len = u32::from_le_bytes(word);
        }
        if len == 0 {
            return Ok(()); // end-of-stream marker
        }
        let len = u64::from(len);
        if len > size - pos {
            return Err(damaged(
                start,
                &format!(
                    "declares {len} bytes of metadata, past the end of the file ({size} bytes)"
                ),
            ));
        }
        let mut meta = vec![0u8; len as usize];
        f.read_exact(&mut meta)?;
        pos += len;
        let Some(ArrowMessageBounds {
            body,
            buffers,
            rows,
            node_lengths,
            variadic_counts,
            compressed,
        }) = arrow_message_bounds(&meta)
        else {
            return Err(damaged(
                start,
                "has metadata that is not a valid Arrow message",
            ));
        };
        if body < 0 || body as u64 > size - pos {
            return Err(damaged(
                start,
                &format!(
                    "declares a body of {body} bytes, past the end of the file ({size} bytes)"
                ),
            ));
        }
        if compressed {
            bail!("{}: the Arrow IPC stream's record batches are compressed (LZ4/zstd bodies); mtkit reads uncompressed streams, as Hugging Face datasets writes them", path.display());
        }
        for &(off, blen) in &buffers {
            if off < 0 || blen < 0 || off.checked_add(blen).is_none_or(|end| end > body) {
                return Err(damaged(
                    start,
                    &format!(
                        "has a buffer at {off} of {blen} bytes outside its body of {body} bytes"
                    ),
                ));
            }
        }
        // Rows cost at least a bit of body each (a validity bit, an offset, a value) except in
        // arrays of type Null, which have no buffers at all: a batch that declares more rows
        // than its body has bits (and a small allowance for a short all-null batch) is damaged,
        // and polars would otherwise build, and mtkit walk, that many rows from nothing (found
        // by the arrow_file fuzz target).
        let most_rows = body.saturating_mul(8).saturating_add(MAX_BODYLESS_ROWS);
        for (what, n) in std::iter::once(("rows", rows)).chain(
            node_lengths
                .iter()
                .map(|&n| ("rows in one of its arrays", n)),
        ) {
            if n < 0 || n > most_rows {
                return Err(damaged(
                    start,
                    &format!("declares {n} {what} in a body of {body} bytes"),
                ));
            }
        }
        if let Some(&n) = variadic_counts
            .iter()
            .find(|&&n| n < 0 || n as u64 > buffers.len() as u64)
        {
            return Err(damaged(
                start,
                &format!(
                    "declares {n} variadic buffers, more than its {} buffers",
                    buffers.len()
                ),
            ));
        }
        f.seek_relative(body)?;
        pos += body as u64;
    }
}

/// What an Arrow IPC `Message` declares about the bytes and rows that follow it: what
/// [`check_arrow_stream`] holds against the file before polars allocates anything by it.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ArrowMessageBounds {
    /// bodyLength: the bytes after the metadata that belong to this message.
    pub body: i64,
    /// The record batch's buffers as (offset, length) inside the body.
    pub buffers: Vec<(i64, i64)>,
    /// The record batch's row count (`length`), 0 for other messages.
    pub rows: i64,
    /// Every field node's length (the rows of each array, nested children included).
    pub node_lengths: Vec<i64>,
    /// The variadic buffer counts (string and binary views).
    pub variadic_counts: Vec<i64>,
    /// Whether the record batch's body is compressed.
    pub compressed: bool,
}

/// [`ArrowMessageBounds`] of
/// an Arrow IPC `Message` flatbuffer, every read bounds-checked; None if it is malformed.
pub(super) fn arrow_message_bounds(m: &[u8]) -> Option<ArrowMessageBounds> {
    let u16_at = |at: usize| {
        Some(u16::from_le_bytes(
            m.get(at..at.checked_add(2)?)?.try_into().ok()?,
        ))
    };
    let u32_at = |at: usize| {
        Some(u32::from_le_bytes(
            m.get(at..at.checked_add(4)?)?.try_into().ok()?,
        ))
    };
    let i64_at = |at: usize| {
        Some(i64::from_le_bytes(
            m.get(at..at.checked_add(8)?)?.try_into().ok()?,
        ))
    };
    let deref = |at: usize| at.checked_add(u32_at(at)? as usize);
    // The position of field `i` of the table at `t`, or Some(None) when it is absent.
    let field = |t: usize, i: usize| -> Option<Option<usize>> {
        let vt = (t as i64).checked_sub(i64::from(u32_at(t)? as i32))?;
        let vt = usize::try_from(vt).ok()?;
        let vlen = u16_at(vt)? as usize;
        let slot = 4 + 2 * i;
        if slot + 2 > vlen {
            return Some(None);
        }
        match u16_at(vt + slot)? {
            0 => Some(None),
            o => Some(Some(t.checked_add(o as usize)?)),
        }
    };
    let root = deref(0)?;
    let header_type = match field(root, 1)? {
        Some(at) => *m.get(at)?,
        None => 0,
    };
    let body = match field(root, 3)? {
        Some(at) => i64_at(at)?,
        None => 0,
    };
    let batch = match (header_type, field(root, 2)?) {
        (3, Some(at)) => Some(deref(at)?),
        (2, Some(at)) => {
            let dict = deref(at)?;
            match field(dict, 1)? {
                Some(d) => Some(deref(d)?),
                None => None,
            }
        }
        _ => None,
    };
    let mut bounds = ArrowMessageBounds {
        body,
        ..ArrowMessageBounds::default()
    };
    // A vector of `width`-byte elements, each read at `read(element)`: its length is checked
    // against the message before anything is allocated by it.
    let vector = |at: usize, width: usize| -> Option<(usize, usize)> {
        let v = deref(at)?;
        let n = u32_at(v)? as usize;
        if n > m.len() / width {
            return None;
        }
        Some((v + 4, n))
    };
    if let Some(rb) = batch {
        // RecordBatch: 0 length, 1 nodes [FieldNode {length, null_count}], 2 buffers
        // [Buffer {offset, length}], 3 compression, 4 variadicBufferCounts [long].
        if let Some(at) = field(rb, 0)? {
            bounds.rows = i64_at(at)?;
        }
        if let Some(at) = field(rb, 1)? {
            let (first, n) = vector(at, 16)?;
            for k in 0..n {
                bounds.node_lengths.push(i64_at(first + 16 * k)?);
            }
        }
        if let Some(at) = field(rb, 2)? {
            let (first, n) = vector(at, 16)?;
            for k in 0..n {
                let b = first + 16 * k;
                bounds.buffers.push((i64_at(b)?, i64_at(b + 8)?));
            }
        }
        bounds.compressed = field(rb, 3)?.is_some();
        if let Some(at) = field(rb, 4)? {
            let (first, n) = vector(at, 8)?;
            for k in 0..n {
                bounds.variadic_counts.push(i64_at(first + 8 * k)?);
            }
        }
    }
    Some(bounds)
}

/// An Arrow IPC stream file (Hugging Face `datasets`' cache and `save_to_disk` files), record
/// batch by record batch, only the template's columns decoded.
pub(super) fn walk_arrow(
    path: &Path,
    fields: &[&str],
    index: &mut u64,
    visit: &mut Visit<'_>,
) -> Result<()> {
    use polars::prelude::{Column, DataFrame, PolarsResult};
    use polars_arrow::io::ipc::read::{read_stream_metadata, StreamReader, StreamState};
    let mut f = BufReader::with_capacity(
        1 << 20,
        File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    let head = f.fill_buf()?;
    if head.starts_with(b"ARROW1") {
        bail!(
            "{}: an Arrow IPC file (Feather v2); mtkit reads the Arrow IPC stream format that Hugging Face datasets writes",
            path.display()
        );
    }
    check_arrow_stream(path)?;
    let md = catch_polars(path, || {
        read_stream_metadata(&mut f)
            .with_context(|| format!("{}: not an Arrow IPC stream", path.display()))
    })?;
    let names: Vec<String> = md.schema.iter_names().map(|n| n.to_string()).collect();
    if let Some(missing) = fields.iter().find(|c| !names.iter().any(|n| n == *c)) {
        visit(Item::FileProblem(
            Problem {
                kind: ProblemKind::MissingField,
                message: format!(
                    "{}: no column `{missing}` for the text template (columns: {}); the file is skipped",
                    path.display(),
                    names.join(", ")
                ),
            },
            1,
        ))?;
        return Ok(());
    }
    let projection: Vec<usize> = fields
        .iter()
        .map(|c| names.iter().position(|n| n == c).expect("checked above"))
        .collect();
    let mut sorted = projection.clone();
    sorted.sort_unstable();
    let mut reader = StreamReader::new(f, md, Some(sorted));
    let cols: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
    let mut pos = 0u64;
    loop {
        let batch = catch_polars(path, || match reader.next() {
            None => Ok(None),
            Some(Ok(StreamState::Waiting)) => Ok(None),
            Some(Ok(StreamState::Some(b))) => {
                let df = DataFrame::from(b);
                let series: Vec<Column> = cols
                    .iter()
                    .map(|c| df.column(c).cloned())
                    .collect::<PolarsResult<_>>()?;
                let mut rows = Vec::new();
                for row in 0..df.height() {
                    let mut m = Map::new();
                    for (name, s) in cols.iter().zip(&series) {
                        m.insert(name.clone(), any_to_json(s.get(row)?));
                    }
                    rows.push(m);
                }
                Ok(Some(rows))
            }
            Some(Err(e)) => Err(anyhow!(
                "{}: a damaged Arrow record batch ({e})",
                path.display()
            )),
        })?;
        let Some(rows) = batch else { break };
        for m in &rows {
            pos += 1;
            visit(Item::Record(Raw {
                index: *index,
                file: path,
                pos,
                unit: "row",
                body: Body::Object(m),
            }))?;
            *index += 1;
        }
    }
    Ok(())
}
