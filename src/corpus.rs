//! Reading corpora: jsonl (plain, .gz, .zst), JSON arrays, parquet and plain text, streamed
//! record by record; deterministic sampling and sharding; the bad-record policy.
//!
//! Every record has an *index*: its position in the corpus, counting records across the
//! card's files in order. Sampling and sharding are functions of that index and the seed
//! alone, so they are the same on every machine and every run.
//!
//! Bad records (malformed JSON, a missing field, invalid UTF-8, a truncated compressed
//! stream) are skipped and counted by default; with `strict` the first one is an error. Each
//! problem names the file, line (or row) and field.

use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::catalog::{Card, Resolved, TextSplit};
use crate::formats::{catch_polars, open_decompressed, read_up_to, Format, BOM};
use crate::rng::mix64;
use crate::template::{RenderError, Template};

/// Why a record was skipped.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The line is not valid JSON.
    MalformedJson,
    /// The JSON value is not an object.
    NotAnObject,
    /// The template names a field the record lacks or holds null.
    MissingField,
    /// The field holds an object, which has no text form.
    NotText,
    /// The line is not valid UTF-8.
    InvalidUtf8,
    /// A compressed stream ended early or is corrupt; the rest of the file is lost.
    TruncatedStream,
    /// The rendered text is empty.
    EmptyText,
}

impl ProblemKind {
    /// The snake_case name used in summaries.
    pub fn name(&self) -> &'static str {
        match self {
            ProblemKind::MalformedJson => "malformed_json",
            ProblemKind::NotAnObject => "not_an_object",
            ProblemKind::MissingField => "missing_field",
            ProblemKind::NotText => "not_text",
            ProblemKind::InvalidUtf8 => "invalid_utf8",
            ProblemKind::TruncatedStream => "truncated_stream",
            ProblemKind::EmptyText => "empty_text",
        }
    }
}

/// A bad record with its location, ready to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What went wrong.
    pub kind: ProblemKind,
    /// `file:line: message`.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// How to pick documents from a corpus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SampleSpec {
    /// Keep this many documents, chosen uniformly at random by seed (`None`: all, in order).
    pub max_docs: Option<u64>,
    /// Seed of the sample's order and selection.
    pub seed: u64,
    /// Cut each document to its first `max_chars` characters (Unicode scalar values).
    pub max_chars: Option<usize>,
    /// Only documents of this shard.
    pub shard: Option<Shard>,
    /// Fail on the first bad record instead of skipping it.
    pub strict: bool,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            max_docs: None,
            seed: 42,
            max_chars: None,
            shard: None,
            strict: false,
        }
    }
}

/// Shard `index` of `count` (1-based): the records whose corpus index is `index - 1` modulo
/// `count`. The `count` shards are disjoint and together are the whole corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Shard {
    /// 1-based shard number.
    pub index: u64,
    /// Number of shards.
    pub count: u64,
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Shard> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| anyhow!("--shard takes K/N, e.g. 2/8; got {s:?}"))?;
        let k: u64 = k
            .trim()
            .parse()
            .map_err(|_| anyhow!("--shard {s:?}: K is not a whole number"))?;
        let n: u64 = n
            .trim()
            .parse()
            .map_err(|_| anyhow!("--shard {s:?}: N is not a whole number"))?;
        if n == 0 || k == 0 || k > n {
            bail!("--shard {s:?}: K must be between 1 and N (shards are numbered 1..=N)");
        }
        Ok(Shard { index: k, count: n })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether the record at `index` belongs to this shard.
    pub fn contains(&self, index: u64) -> bool {
        index % self.count == self.index - 1
    }
}

/// One document, as text.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The record's index in the corpus.
    pub index: u64,
    /// The rendered (and possibly cut) text.
    pub text: String,
    /// Renders of the extra templates asked for (not cut), in order.
    pub extra: Vec<String>,
}

/// What a read saw.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReadSummary {
    /// Files read.
    pub files: usize,
    /// Records rendered (sampling skips rendering records it would not keep).
    pub records: u64,
    /// Documents delivered.
    pub documents: u64,
    /// UTF-8 bytes of the delivered documents, after cutting.
    pub bytes: u64,
    /// Skipped records by kind.
    pub skipped: BTreeMap<String, u64>,
    /// The first few problems, with their locations.
    pub examples: Vec<String>,
}

impl ReadSummary {
    /// Total skipped records.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    fn note(&mut self, p: &Problem, n: u64) {
        *self.skipped.entry(p.kind.name().to_string()).or_default() += n;
        if self.examples.len() < 5 {
            self.examples.push(p.message.clone());
        }
    }

    /// One line like `3 skipped (2 malformed_json, 1 missing_field)`, or empty.
    pub fn skipped_line(&self) -> String {
        if self.skipped.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = self
            .skipped
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        format!("{} skipped ({})", self.skipped_total(), parts.join(", "))
    }
}

/// A record before rendering.
enum Body<'a> {
    JsonLine(&'a [u8]),
    Object(&'a Map<String, Value>),
}

/// A located raw record handed to the sampler.
struct Raw<'a> {
    index: u64,
    file: &'a Path,
    /// 1-based line (jsonl), row (parquet) or document number (text, demo).
    pos: u64,
    unit: &'static str,
    body: Body<'a>,
}

impl Raw<'_> {
    fn locate(&self, msg: impl std::fmt::Display) -> String {
        format!(
            "{}: {} {}: {}",
            self.file.display(),
            self.unit,
            self.pos,
            msg
        )
    }

    fn render(&self, t: &Template) -> std::result::Result<String, Problem> {
        let rendered = match &self.body {
            Body::Object(m) => t.render(m),
            Body::JsonLine(bytes) => {
                if let Err(e) = std::str::from_utf8(bytes) {
                    return Err(Problem {
                        kind: ProblemKind::InvalidUtf8,
                        message: self.locate(format!(
                            "invalid UTF-8 at byte {} of the line",
                            e.valid_up_to()
                        )),
                    });
                }
                let v: Value = serde_json::from_slice(bytes).map_err(|e| Problem {
                    kind: ProblemKind::MalformedJson,
                    message: self.locate(format!("malformed JSON ({e})")),
                })?;
                match v {
                    Value::Object(m) => t.render(&m),
                    other => {
                        return Err(Problem {
                            kind: ProblemKind::NotAnObject,
                            message: self.locate(format!(
                                "expected a JSON object, found {}",
                                json_kind(&other)
                            )),
                        })
                    }
                }
            }
        };
        rendered.map_err(|e| match e {
            RenderError::MissingField(f) => Problem {
                kind: ProblemKind::MissingField,
                message: self.locate(format!(
                    "record has no field `{f}` (template {:?})",
                    t.source()
                )),
            },
            RenderError::NotText(f) => Problem {
                kind: ProblemKind::NotText,
                message: self.locate(format!(
                    "field `{f}` holds an object, which has no text form"
                )),
            },
        })
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What a walker hands its visitor.
enum Item<'a> {
    Record(Raw<'a>),
    /// A problem that loses `count` records (or an unknown number, counted once).
    FileProblem(Problem, u64),
}

type Visit<'v> = dyn FnMut(Item<'_>) -> Result<()> + 'v;

/// Walks every record of a resolved source in order.
fn walk(source: &Resolved, fields: &[&str], visit: &mut Visit<'_>) -> Result<usize> {
    match source {
        Resolved::Demo(d) => {
            let demo_path = PathBuf::from(format!("<demo:{}>", d.kind));
            let mut err = None;
            crate::demo::generate(d, &mut |i, rec| {
                if err.is_some() {
                    return;
                }
                let raw = Raw {
                    index: i,
                    file: &demo_path,
                    pos: i + 1,
                    unit: "document",
                    body: Body::Object(&rec),
                };
                if let Err(e) = visit(Item::Record(raw)) {
                    err = Some(e);
                }
            })?;
            if let Some(e) = err {
                return Err(e);
            }
            Ok(0)
        }
        Resolved::Files { files, split } => {
            let mut index = 0u64;
            for f in files {
                let (fmt, _) = Format::detect(f).ok_or_else(|| {
                    anyhow!("{}: unknown file type (mtkit reads .jsonl, .json, .parquet, .txt, optionally .gz or .zst)", f.display())
                })?;
                match fmt {
                    Format::Jsonl => walk_jsonl(f, &mut index, visit)?,
                    Format::Parquet => walk_parquet(f, fields, &mut index, visit)?,
                    Format::Text => walk_text(f, *split, &mut index, visit)?,
                    Format::ArrowStream => walk_arrow(f, fields, &mut index, visit)?,
                }
            }
            Ok(files.len())
        }
    }
}

fn stream_problem(path: &Path, line: u64, e: &std::io::Error) -> Problem {
    Problem {
        kind: ProblemKind::TruncatedStream,
        message: format!(
            "{}: the compressed stream is truncated or corrupt after line {line} ({e}); the rest of the file is skipped",
            path.display()
        ),
    }
}

fn walk_jsonl(path: &Path, index: &mut u64, visit: &mut Visit<'_>) -> Result<()> {
    let mut r = BufReader::with_capacity(1 << 20, open_decompressed(path)?);
    match r.fill_buf() {
        Ok(b) if b.starts_with(BOM) => r.consume(BOM.len()),
        _ => {}
    }
    // A `.json` file may hold one array of records instead of lines.
    let first = loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) => {
                visit(Item::FileProblem(stream_problem(path, 0, &e), 1))?;
                return Ok(());
            }
        };
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(p) => break Some(buf[p]),
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    };
    if first == Some(b'[') && Format::may_be_json_array(path) {
        let mut all = Vec::new();
        if let Err(e) = r.read_to_end(&mut all) {
            visit(Item::FileProblem(stream_problem(path, 0, &e), 1))?;
            return Ok(());
        }
        let v: Vec<Value> = serde_json::from_slice(&all)
            .with_context(|| format!("{}: not a JSON array of records", path.display()))?;
        for (i, rec) in v.iter().enumerate() {
            match rec {
                Value::Object(m) => visit(Item::Record(Raw {
                    index: *index,
                    file: path,
                    pos: i as u64 + 1,
                    unit: "element",
                    body: Body::Object(m),
                }))?,
                other => visit(Item::FileProblem(
                    Problem {
                        kind: ProblemKind::NotAnObject,
                        message: format!(
                            "{}: element {}: expected a JSON object, found {}",
                            path.display(),
                            i + 1,
                            json_kind(other)
                        ),
                    },
                    1,
                ))?,
            }
            *index += 1;
        }
        return Ok(());
    }
    let mut line = Vec::with_capacity(8192);
    let mut lineno = 0u64;
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                visit(Item::FileProblem(stream_problem(path, lineno, &e), 1))?;
                break;
            }
        }
        lineno += 1;
        let trimmed = trim_ascii(&line);
        if trimmed.is_empty() {
            continue;
        }
        visit(Item::Record(Raw {
            index: *index,
            file: path,
            pos: lineno,
            unit: "line",
            body: Body::JsonLine(trimmed),
        }))?;
        *index += 1;
    }
    Ok(())
}

fn trim_ascii(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() {
            b = rest
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest
        } else {
            break;
        }
    }
    b
}

fn walk_text(path: &Path, split: TextSplit, index: &mut u64, visit: &mut Visit<'_>) -> Result<()> {
    let mut bytes = Vec::new();
    if let Err(e) = open_decompressed(path)?.read_to_end(&mut bytes) {
        visit(Item::FileProblem(stream_problem(path, 0, &e), 1))?;
        return Ok(());
    }
    if bytes.starts_with(BOM) {
        bytes.drain(..BOM.len());
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let off = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..off].iter().filter(|&&b| b == b'\n').count() + 1;
            visit(Item::FileProblem(
                Problem {
                    kind: ProblemKind::InvalidUtf8,
                    message: format!("{}: line {line}: invalid UTF-8 at byte {off} of the file; the file is skipped", path.display()),
                },
                1,
            ))?;
            return Ok(());
        }
    };
    let docs: Vec<&str> = match split {
        TextSplit::File => vec![text.as_str()],
        TextSplit::Line => text.lines().filter(|l| !l.trim().is_empty()).collect(),
        TextSplit::Paragraph => split_paragraphs(&text),
    };
    for (i, d) in docs.into_iter().enumerate() {
        let mut m = Map::new();
        m.insert("text".into(), Value::String(d.to_string()));
        visit(Item::Record(Raw {
            index: *index,
            file: path,
            pos: i as u64 + 1,
            unit: "document",
            body: Body::Object(&m),
        }))?;
        *index += 1;
    }
    Ok(())
}

/// Splits text at runs of blank lines, dropping empty pieces.
fn split_paragraphs(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut end = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            if let Some(s) = start.take() {
                out.push(&text[s..end]);
            }
        } else {
            if start.is_none() {
                start = Some(pos);
            }
            end = pos + line.trim_end_matches(['\n', '\r']).len();
        }
        pos += line.len();
    }
    if let Some(s) = start {
        out.push(&text[s..end]);
    }
    out
}

const PARQUET_SLICE: usize = 8192;

fn walk_parquet(
    path: &Path,
    fields: &[&str],
    index: &mut u64,
    visit: &mut Visit<'_>,
) -> Result<()> {
    use polars::prelude::{Column, ParquetReader, PolarsResult, SerReader};
    let open = || File::open(path).with_context(|| format!("cannot open {}", path.display()));
    crate::formats::check_parquet_footer(path)?;
    let (schema, n_rows) = catch_polars(path, || {
        let mut reader = ParquetReader::new(open()?);
        let schema = reader
            .schema()
            .with_context(|| format!("{}: not a readable parquet file", path.display()))?;
        let n_rows = reader
            .num_rows()
            .with_context(|| format!("{}: not a readable parquet file", path.display()))?;
        Ok((schema, n_rows))
    })?;
    let names: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
    let missing: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| !names.iter().any(|n| n == f))
        .collect();
    if let Some(f) = missing.first() {
        visit(Item::FileProblem(
            Problem {
                kind: ProblemKind::MissingField,
                message: format!(
                    "{}: no column `{f}` for the text template (columns: {}); its {n_rows} rows are skipped",
                    path.display(),
                    names.join(", ")
                ),
            },
            n_rows as u64,
        ))?;
        *index += n_rows as u64;
        return Ok(());
    }
    let cols: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
    let mut offset = 0usize;
    while offset < n_rows {
        let len = PARQUET_SLICE.min(n_rows - offset);
        // polars may panic on a damaged file instead of failing: only its calls are guarded,
        // not the visitor's.
        let rows: Vec<Map<String, Value>> = catch_polars(path, || {
            let df = ParquetReader::new(open()?)
                .with_columns(Some(cols.clone()))
                .with_slice(Some((offset, len)))
                .finish()
                .with_context(|| {
                    format!(
                        "{}: cannot read rows {}..{}",
                        path.display(),
                        offset + 1,
                        offset + len
                    )
                })?;
            let series: Vec<Column> = cols
                .iter()
                .map(|c| df.column(c).cloned())
                .collect::<PolarsResult<_>>()?;
            let mut rows = Vec::with_capacity(df.height());
            for row in 0..df.height() {
                let mut m = Map::new();
                for (name, s) in cols.iter().zip(&series) {
                    m.insert(name.clone(), any_to_json(s.get(row)?));
                }
                rows.push(m);
            }
            Ok(rows)
        })?;
        for (row, m) in rows.iter().enumerate() {
            let pos = (offset + row) as u64 + 1;
            visit(Item::Record(Raw {
                index: *index,
                file: path,
                pos,
                unit: "row",
                body: Body::Object(m),
            }))?;
            *index += 1;
        }
        offset += len;
    }
    Ok(())
}

/// Checks an Arrow IPC stream's framing against the file before polars reads it: polars'
/// reader allocates each buffer at the length its message declares before reading it, so a
/// damaged length (terabytes; found by the arrow_file fuzz target) aborted the process. Every
/// message's body must lie inside the file and every buffer inside its body; compressed bodies
/// (whose declared sizes would need the same care; `datasets` never writes them) are refused.
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
        let Some((body, buffers, compressed)) = arrow_message_bounds(&meta) else {
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
        for (off, blen) in buffers {
            if off < 0 || blen < 0 || off.checked_add(blen).is_none_or(|end| end > body) {
                return Err(damaged(
                    start,
                    &format!(
                        "has a buffer at {off} of {blen} bytes outside its body of {body} bytes"
                    ),
                ));
            }
        }
        f.seek_relative(body)?;
        pos += body as u64;
    }
}

/// bodyLength, the record batch's buffers as (offset, length), and whether it is compressed.
type ArrowMessageBounds = (i64, Vec<(i64, i64)>, bool);

/// [`ArrowMessageBounds`] of
/// an Arrow IPC `Message` flatbuffer, every read bounds-checked; None if it is malformed.
fn arrow_message_bounds(m: &[u8]) -> Option<ArrowMessageBounds> {
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
    let mut buffers = Vec::new();
    let mut compressed = false;
    if let Some(rb) = batch {
        if let Some(at) = field(rb, 2)? {
            let v = deref(at)?;
            let n = u32_at(v)? as usize;
            if n > m.len() / 16 {
                return None;
            }
            for k in 0..n {
                let b = v + 4 + 16 * k;
                buffers.push((i64_at(b)?, i64_at(b + 8)?));
            }
        }
        compressed = field(rb, 3)?.is_some();
    }
    Some((body, buffers, compressed))
}

/// An Arrow IPC stream file (Hugging Face `datasets`' cache and `save_to_disk` files), record
/// batch by record batch, only the template's columns decoded.
fn walk_arrow(path: &Path, fields: &[&str], index: &mut u64, visit: &mut Visit<'_>) -> Result<()> {
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
                let mut rows = Vec::with_capacity(df.height());
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

fn any_to_json(v: polars::prelude::AnyValue<'_>) -> Value {
    use polars::prelude::AnyValue as A;
    match v {
        A::Null => Value::Null,
        A::String(s) => Value::String(s.to_string()),
        A::StringOwned(s) => Value::String(s.to_string()),
        A::Boolean(b) => Value::Bool(b),
        A::Int8(x) => x.into(),
        A::Int16(x) => x.into(),
        A::Int32(x) => x.into(),
        A::Int64(x) => x.into(),
        A::UInt8(x) => x.into(),
        A::UInt16(x) => x.into(),
        A::UInt32(x) => x.into(),
        A::UInt64(x) => x.into(),
        A::Float32(x) => serde_json::Number::from_f64(x as f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        A::Float64(x) => serde_json::Number::from_f64(x)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        A::List(s) => Value::Array(s.iter().map(any_to_json).collect()),
        A::Struct(..) | A::StructOwned(..) => Value::Object(Map::new()),
        other => Value::String(other.to_string()),
    }
}

/// Cuts `text` to its first `max_chars` Unicode scalar values.
pub fn cut_chars(text: &mut String, max_chars: Option<usize>) {
    if let Some(n) = max_chars {
        if let Some((byte, _)) = text.char_indices().nth(n) {
            text.truncate(byte);
        }
    }
}

/// The sampling key of record `index`: documents are kept in increasing key order.
fn sample_key(seed: u64, index: u64) -> u64 {
    mix64(seed ^ mix64(index))
}

/// Reads a card's documents under `spec` and hands each to `on_doc`, in order: corpus order
/// when all documents are kept; sample order (a seeded shuffle) with `max_docs`. Sampling is
/// a bottom-k sample over `hash(seed, index)`, so it is uniform, deterministic and needs memory
/// for `max_docs` documents only; records that cannot enter the sample are not parsed.
///
/// Fails when the corpus yields no documents, or on the first bad record with `spec.strict`.
pub fn read_documents(
    card: &Card,
    spec: &SampleSpec,
    on_doc: &mut dyn FnMut(Document) -> Result<()>,
) -> Result<ReadSummary> {
    read_documents_with(card, spec, &[], on_doc)
}

/// [`read_documents`], also rendering each record through `extra` templates (e.g. a card's
/// SFT `prompt` and `response`); a record any template cannot render is a bad record.
pub fn read_documents_with(
    card: &Card,
    spec: &SampleSpec,
    extra: &[Template],
    on_doc: &mut dyn FnMut(Document) -> Result<()>,
) -> Result<ReadSummary> {
    let template = card.template()?;
    let source = card.resolve()?;
    read_with(
        &card.name,
        &template,
        spec,
        extra,
        &mut |fields, visit| walk(&source, fields, visit),
        on_doc,
    )
}

/// Records that are not files: a function that hands each record, in order, to its callback
/// (a binding's Python iterable, say). Each record is a JSON object a template renders.
pub type RecordSource<'a> =
    dyn Fn(&mut dyn FnMut(Map<String, Value>) -> Result<()>) -> Result<()> + Sync + 'a;

/// [`read_documents`] of in-memory records: the same sampling (the bottom-k sample by
/// record index), cut and bad-record rules as a file of the same records in the same order,
/// rendered by `template` (`{text}` for plain strings wrapped as `{"text": ...}`). `name` is
/// what messages call the source.
pub fn read_records(
    name: &str,
    template: &Template,
    records: &RecordSource<'_>,
    spec: &SampleSpec,
    on_doc: &mut dyn FnMut(Document) -> Result<()>,
) -> Result<ReadSummary> {
    let place = PathBuf::from(format!("<{name}>"));
    read_with(
        name,
        template,
        spec,
        &[],
        &mut |_, visit| {
            let mut index = 0u64;
            records(&mut |m| {
                let raw = Raw {
                    index,
                    file: &place,
                    pos: index + 1,
                    unit: "record",
                    body: Body::Object(&m),
                };
                index += 1;
                visit(Item::Record(raw))
            })?;
            Ok(0)
        },
        on_doc,
    )
}

/// The sampler over any walk of records.
fn read_with(
    name: &str,
    template: &Template,
    spec: &SampleSpec,
    extra: &[Template],
    walk_records: &mut dyn FnMut(&[&str], &mut Visit<'_>) -> Result<usize>,
    on_doc: &mut dyn FnMut(Document) -> Result<()>,
) -> Result<ReadSummary> {
    let mut fields = template.fields();
    for t in extra {
        for f in t.fields() {
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
    }
    let mut summary = ReadSummary::default();
    let mut heap: BinaryHeap<(u64, u64, String, Vec<String>)> = BinaryHeap::new();
    let strict = spec.strict;
    let on_problem = |summary: &mut ReadSummary, p: Problem, n: u64| -> Result<()> {
        if strict {
            bail!("{} (--strict stops at the first bad record)", p.message);
        }
        summary.note(&p, n);
        Ok(())
    };
    let files = {
        let mut visit = |item: Item<'_>| -> Result<()> {
            crate::progress::check_interrupt()?;
            let raw = match item {
                Item::FileProblem(p, n) => return on_problem(&mut summary, p, n),
                Item::Record(r) => r,
            };
            if let Some(sh) = spec.shard {
                if !sh.contains(raw.index) {
                    return Ok(());
                }
            }
            let key = sample_key(spec.seed, raw.index);
            if let Some(k) = spec.max_docs {
                if heap.len() as u64 >= k && heap.peek().map(|t| key >= t.0).unwrap_or(true) {
                    return Ok(());
                }
            }
            summary.records += 1;
            let mut text = match raw.render(template) {
                Ok(t) => t,
                Err(p) => return on_problem(&mut summary, p, 1),
            };
            if text.trim().is_empty() {
                let p = Problem {
                    kind: ProblemKind::EmptyText,
                    message: raw.locate("the rendered text is empty"),
                };
                return on_problem(&mut summary, p, 1);
            }
            let mut parts = Vec::with_capacity(extra.len());
            for t in extra {
                match raw.render(t) {
                    Ok(s) => parts.push(s),
                    Err(p) => return on_problem(&mut summary, p, 1),
                }
            }
            cut_chars(&mut text, spec.max_chars);
            match spec.max_docs {
                None => {
                    summary.documents += 1;
                    summary.bytes += text.len() as u64;
                    on_doc(Document {
                        index: raw.index,
                        text,
                        extra: parts,
                    })
                }
                Some(k) => {
                    if k > 0 {
                        heap.push((key, raw.index, text, parts));
                        if heap.len() as u64 > k {
                            heap.pop();
                        }
                    }
                    Ok(())
                }
            }
        };
        walk_records(&fields, &mut visit)?
    };
    summary.files = files;
    if spec.max_docs.is_some() {
        for (_, index, text, extra) in heap.into_sorted_vec() {
            summary.documents += 1;
            summary.bytes += text.len() as u64;
            on_doc(Document { index, text, extra })?;
        }
    }
    if summary.documents == 0 {
        let why = if summary.skipped.is_empty() {
            String::new()
        } else {
            format!(
                "; {}; first: {}",
                summary.skipped_line(),
                summary.examples.first().cloned().unwrap_or_default()
            )
        };
        let shard = spec
            .shard
            .map(|s| format!(" in shard {s}"))
            .unwrap_or_default();
        bail!("corpus `{name}` has no documents{shard}{why}");
    }
    Ok(summary)
}

/// Reads all selected documents into memory (for small samples and `data show`).
pub fn collect_documents(card: &Card, spec: &SampleSpec) -> Result<(Vec<Document>, ReadSummary)> {
    let mut docs = Vec::new();
    let summary = read_documents(card, spec, &mut |d| {
        docs.push(d);
        Ok(())
    })?;
    Ok((docs, summary))
}

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

/// Decompressed bytes [`cheap_count`] reads at most in one call before it gives up.
pub const COUNT_MAX_BYTES: u64 = 512 << 20;

/// The records of one corpus file, reading at most `budget` decompressed bytes (taken off
/// it); `None` where the count is not cheap.
fn count_records(f: &Path, budget: &mut u64) -> Option<u64> {
    match Format::detect(f)? {
        (Format::Parquet, _) => {
            crate::formats::check_parquet_footer(f).ok()?;
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
mod count_cache {
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
        crate::paths::cache_dir().join("counts.json")
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
                    let _ = crate::paths::write_atomic_bytes(&path(), &bytes);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Card, LocalSource, Role};
    use std::io::Write;

    pub(crate) fn card_for(paths: Vec<PathBuf>, text: &str) -> Card {
        Card {
            name: "t".into(),
            description: String::new(),
            license: String::new(),
            role: Role::Pretrain,
            text: text.into(),
            prompt: None,
            response: None,
            tokens: None,
            hub: None,
            local: Some(LocalSource {
                paths: paths.iter().map(|p| p.display().to_string()).collect(),
                split: TextSplit::File,
            }),
            demo: None,
            origin: "test".into(),
            base_dir: None,
        }
    }

    fn texts(card: &Card, spec: &SampleSpec) -> Result<(Vec<String>, ReadSummary)> {
        let (d, s) = collect_documents(card, spec)?;
        Ok((d.into_iter().map(|d| d.text).collect(), s))
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    const LINES: &str = "{\"text\":\"a\"}\n{\"text\":\"b\"}\n\n{\"text\":\"c\"}";

    #[test]
    fn reads_jsonl_plain_gzip_zstd_alike() {
        let d = tempfile::tempdir().unwrap();
        let plain = write(d.path(), "a.jsonl", LINES.as_bytes());
        let g = write(d.path(), "a.jsonl.gz", &gz(LINES.as_bytes()));
        let z = write(
            d.path(),
            "a.jsonl.zst",
            &zstd::encode_all(LINES.as_bytes(), 3).unwrap(),
        );
        for p in [plain, g, z] {
            let (t, s) =
                texts(&card_for(vec![p.clone()], "{text}"), &SampleSpec::default()).unwrap();
            assert_eq!(t, vec!["a", "b", "c"], "{}", p.display());
            assert_eq!(s.documents, 3);
            assert_eq!(s.bytes, 3);
        }
    }

    #[test]
    fn reads_multi_member_gzip() {
        let d = tempfile::tempdir().unwrap();
        let mut bytes = gz(b"{\"text\":\"a\"}\n");
        bytes.extend(gz(b"{\"text\":\"b\"}\n"));
        let p = write(d.path(), "m.jsonl.gz", &bytes);
        let (t, _) = texts(&card_for(vec![p], "{text}"), &SampleSpec::default()).unwrap();
        assert_eq!(t, vec!["a", "b"]);
    }

    #[test]
    fn reads_json_arrays() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "a.json", b" [{\"instruction\":\"i\",\"output\":\"o\"}, {\"instruction\":\"j\",\"output\":\"p\"}]");
        let (t, _) = texts(
            &card_for(vec![p], "{instruction}|{output}"),
            &SampleSpec::default(),
        )
        .unwrap();
        assert_eq!(t, vec!["i|o", "j|p"]);
    }

    #[test]
    fn reads_text_splits() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "a.txt", b"one\ntwo\n\n\nthree\n");
        let mut card = card_for(vec![p], "{text}");
        assert_eq!(
            texts(&card, &SampleSpec::default()).unwrap().0,
            vec!["one\ntwo\n\n\nthree\n"]
        );
        card.local.as_mut().unwrap().split = TextSplit::Paragraph;
        assert_eq!(
            texts(&card, &SampleSpec::default()).unwrap().0,
            vec!["one\ntwo", "three"]
        );
        card.local.as_mut().unwrap().split = TextSplit::Line;
        assert_eq!(
            texts(&card, &SampleSpec::default()).unwrap().0,
            vec!["one", "two", "three"]
        );
    }

    #[test]
    fn reads_parquet_with_template() {
        use polars::prelude::*;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.parquet");
        let mut df = df!("question" => ["q1", "q2", "q3"], "answer" => [Some("a1"), None, Some("a3")], "n" => [1i64, 2, 3]).unwrap();
        ParquetWriter::new(File::create(&p).unwrap())
            .finish(&mut df)
            .unwrap();
        let card = card_for(vec![p], "{question}={answer}#{n}");
        let (t, s) = texts(&card, &SampleSpec::default()).unwrap();
        assert_eq!(t, vec!["q1=a1#1", "q3=a3#3"]);
        assert_eq!(s.skipped.get("missing_field"), Some(&1));
        assert!(
            s.examples[0].contains("a.parquet: row 2: record has no field `answer`"),
            "{:?}",
            s.examples
        );
        let e = texts(
            &card_for(vec![d.path().join("a.parquet")], "{nope}"),
            &SampleSpec::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("no column `nope`") && e.contains("columns: question, answer, n"),
            "{e}"
        );
    }

    #[test]
    fn bad_records_are_skipped_counted_or_strict() {
        let d = tempfile::tempdir().unwrap();
        let mut bytes =
            b"{\"text\":\"ok\"}\n{\"text\": oops}\n{\"other\":\"x\"}\n[1,2]\n{\"text\":\"".to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(b"\"}\n{\"text\":\"  \"}\n{\"text\":\"fine\"}\n");
        let p = write(d.path(), "bad.jsonl", &bytes);
        let card = card_for(vec![p], "{text}");
        let (t, s) = texts(&card, &SampleSpec::default()).unwrap();
        assert_eq!(t, vec!["ok", "fine"]);
        let want: BTreeMap<String, u64> = [
            ("malformed_json", 1),
            ("missing_field", 1),
            ("not_an_object", 1),
            ("invalid_utf8", 1),
            ("empty_text", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(s.skipped, want);
        assert!(
            s.examples[0].contains("bad.jsonl: line 2: malformed JSON"),
            "{:?}",
            s.examples
        );
        assert!(
            s.examples[1].contains("line 3: record has no field `text`"),
            "{:?}",
            s.examples
        );
        assert!(
            s.examples[3].contains("line 5: invalid UTF-8 at byte 9"),
            "{:?}",
            s.examples
        );
        let strict = SampleSpec {
            strict: true,
            ..Default::default()
        };
        let e = texts(&card, &strict).unwrap_err().to_string();
        assert!(
            e.contains("bad.jsonl: line 2: malformed JSON") && e.contains("--strict"),
            "{e}"
        );
    }

    #[test]
    fn truncated_streams_are_reported() {
        let d = tempfile::tempdir().unwrap();
        // Large enough for several zstd blocks (128 KiB each), so half the file decodes in part.
        let body: String = (0..20000)
            .map(|i| format!("{{\"text\":\"doc number {i} with some words\"}}\n"))
            .collect();
        let g = gz(body.as_bytes());
        let z = zstd::encode_all(body.as_bytes(), 3).unwrap();
        for (name, bytes) in [("t.jsonl.gz", &g), ("t.jsonl.zst", &z)] {
            let p = write(d.path(), name, &bytes[..bytes.len() / 2]);
            let card = card_for(vec![p], "{text}");
            let (t, s) = texts(&card, &SampleSpec::default()).unwrap();
            assert!(!t.is_empty() && t.len() < 20000, "{name}: {} docs", t.len());
            assert_eq!(s.skipped.get("truncated_stream"), Some(&1), "{name}");
            assert!(
                s.examples
                    .iter()
                    .any(|e| e.contains(name) && e.contains("truncated or corrupt")),
                "{:?}",
                s.examples
            );
            let e = texts(
                &card,
                &SampleSpec {
                    strict: true,
                    ..Default::default()
                },
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("truncated or corrupt"), "{e}");
        }
    }

    #[test]
    fn empty_corpus_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "e.jsonl", b"\n\n");
        let e = texts(&card_for(vec![p], "{text}"), &SampleSpec::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("corpus `t` has no documents"), "{e}");
    }

    #[test]
    fn sampling_is_deterministic_uniform_and_cut() {
        let d = tempfile::tempdir().unwrap();
        let body: String = (0..1000)
            .map(|i| format!("{{\"text\":\"document {i:04}\"}}\n"))
            .collect();
        let p = write(d.path(), "s.jsonl", body.as_bytes());
        let card = card_for(vec![p], "{text}");
        let spec = SampleSpec {
            max_docs: Some(100),
            seed: 7,
            max_chars: Some(12),
            ..Default::default()
        };
        let (a, _) = collect_documents(&card, &spec).unwrap();
        let (b, _) = collect_documents(&card, &spec).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 100);
        assert!(a.iter().all(|d| d.text.chars().count() == 12));
        // The sample is exactly the 100 smallest keys (a second computation of the rule).
        let mut keys: Vec<(u64, u64)> = (0..1000u64).map(|i| (sample_key(7, i), i)).collect();
        keys.sort();
        let want: Vec<u64> = keys[..100].iter().map(|k| k.1).collect();
        assert_eq!(a.iter().map(|d| d.index).collect::<Vec<_>>(), want);
        let (c, _) = collect_documents(
            &card,
            &SampleSpec {
                seed: 8,
                ..spec.clone()
            },
        )
        .unwrap();
        assert_ne!(a, c, "another seed gives another sample");
    }

    #[test]
    fn shards_partition_the_corpus() {
        let d = tempfile::tempdir().unwrap();
        let body: String = (0..103)
            .map(|i| format!("{{\"text\":\"d{i}\"}}\n"))
            .collect();
        let p1 = write(d.path(), "a.jsonl", body.as_bytes());
        let p2 = write(d.path(), "b.jsonl.gz", &gz(body.as_bytes()));
        let card = card_for(vec![p1, p2], "{text}");
        let (all, _) = collect_documents(&card, &SampleSpec::default()).unwrap();
        let mut union = Vec::new();
        for k in 1..=4 {
            let spec = SampleSpec {
                shard: Some(Shard { index: k, count: 4 }),
                ..Default::default()
            };
            let (part, _) = collect_documents(&card, &spec).unwrap();
            assert!(part.iter().all(|d| d.index % 4 == k - 1));
            union.extend(part);
        }
        union.sort_by_key(|d| d.index);
        assert_eq!(union, all);
        assert!("0/4".parse::<Shard>().is_err());
        assert!("5/4".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }

    #[test]
    fn cut_counts_characters_not_bytes() {
        let mut s = "héllo wörld".to_string();
        cut_chars(&mut s, Some(4));
        assert_eq!(s, "héll");
    }

    #[test]
    fn paragraphs_split_on_blank_lines() {
        assert_eq!(
            split_paragraphs("a\nb\n\n  \nc\r\n\r\nd"),
            vec!["a\nb", "c", "d"]
        );
    }
}
