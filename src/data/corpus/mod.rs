//! Reading corpora: jsonl (plain, .gz, .zst), JSON arrays, parquet, Arrow and plain text,
//! streamed record by record (one reader per file of this folder); deterministic sampling and
//! sharding; the bad-record policy.
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

use crate::data::catalog::{Card, Resolved, TextSplit};
use crate::data::files::{open_decompressed, read_up_to, Format, BOM};
use crate::data::template::{RenderError, Template};
use crate::util::polars_io::catch_polars;
use crate::util::rng::mix64;

mod arrow;
mod count;
mod jsonl;
mod parquet;
mod records;
mod text;

use arrow::walk_arrow;
pub use count::{cheap_count, expected_documents, known_count, COUNT_MAX_BYTES};
use jsonl::walk_jsonl;
use parquet::walk_parquet;
pub use records::{read_records, RecordSource};
use text::walk_text;

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
    /// The first few problems, with their locations (all of them are named on stderr as
    /// they are found when [`crate::util::progress::list_every_skipped`] is on).
    pub examples: Vec<String>,
}

/// Skipped records by kind as words: `2 malformed_json, 1 missing_field`.
pub fn skipped_kinds(skipped: &BTreeMap<String, u64>) -> String {
    skipped
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ReadSummary {
    /// Total skipped records.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    fn note(&mut self, p: &Problem, n: u64) {
        *self.skipped.entry(p.kind.name().to_string()).or_default() += n;
        if crate::util::progress::listing_every_skipped() {
            // `-v`: every one, as found, so that a corpus with millions of bad records is
            // listed without holding the list.
            eprintln!("mtkit: skipped: {}", p.message);
        }
        if self.examples.len() < 5 {
            self.examples.push(p.message.clone());
        }
    }

    /// One line like `3 skipped (2 malformed_json, 1 missing_field)`, or empty.
    pub fn skipped_line(&self) -> String {
        if self.skipped.is_empty() {
            return String::new();
        }
        format!(
            "{} skipped ({})",
            self.skipped_total(),
            skipped_kinds(&self.skipped)
        )
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
            crate::data::demo::generate(d, &mut |i, rec| {
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

/// The sampler over any walk of records.
fn read_with(
    name: &str,
    template: &Template,
    spec: &SampleSpec,
    extra: &[Template],
    walk_records: &mut dyn FnMut(&[&str], &mut Visit<'_>) -> Result<usize>,
    on_doc: &mut dyn FnMut(Document) -> Result<()>,
) -> Result<ReadSummary> {
    let fields = all_fields(template, extra);
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
            crate::util::progress::check_interrupt()?;
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
            let (mut text, parts) = match render_all(&raw, template, extra) {
                Ok(rendered) => rendered,
                Err(p) => return on_problem(&mut summary, p, 1),
            };
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
        return Err(no_documents(name, spec, &summary));
    }
    Ok(summary)
}

/// The fields a read needs: the template's, then the extra templates' not already there.
fn all_fields<'a>(template: &'a Template, extra: &'a [Template]) -> Vec<&'a str> {
    let mut fields = template.fields();
    for t in extra {
        for f in t.fields() {
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
    }
    fields
}

/// A record's text (not empty) and its extra templates' renders, or what is wrong with it.
fn render_all(
    raw: &Raw<'_>,
    template: &Template,
    extra: &[Template],
) -> std::result::Result<(String, Vec<String>), Problem> {
    let text = raw.render(template)?;
    if text.trim().is_empty() {
        return Err(Problem {
            kind: ProblemKind::EmptyText,
            message: raw.locate("the rendered text is empty"),
        });
    }
    let parts = extra
        .iter()
        .map(|t| raw.render(t))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((text, parts))
}

/// The error of a read that delivered no document: where (the shard) and why (what was
/// skipped, and the first of it).
fn no_documents(name: &str, spec: &SampleSpec, summary: &ReadSummary) -> anyhow::Error {
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
    anyhow!("corpus `{name}` has no documents{shard}{why}")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::catalog::{Card, LocalSource, Role};
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
            text::split_paragraphs("a\nb\n\n  \nc\r\n\r\nd"),
            vec!["a\nb", "c", "d"]
        );
    }
}
