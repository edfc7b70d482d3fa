//! Token files for training: what `mtkit tokenize` writes and the trainer memory-maps.
//!
//! `DIR/NAME/` holds, for each split (`train`, `val`):
//! - `SPLIT.tokens`: a 32-byte header, then the token ids little-endian. Header: magic
//!   `MTKTOKS\0` (8 bytes), format version u32 = 1, bytes per token u32 (2 when the
//!   vocabulary fits in 16 bits, else 4), vocabulary size u32, EOS id u32, token count u64.
//! - `SPLIT.docs`: one 16-byte entry per document: start u64 (token offset), length u32
//!   (tokens, the closing EOS included), prompt length u32 (tokens of the card's `prompt`
//!   part, which SFT leaves out of the loss; 0 when the card has no prompt/response split).
//! - `meta.json`: corpus, card hash, tokenizer hash, EOS, counts, split seed.
//!
//! Each document is followed by EOS. The validation split is a seeded, uniform choice of
//! `--val-docs` documents (the same bottom-k rule as `--max-docs`); the rest is train.

pub mod mtkit_format;
pub mod trainer_formats;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::catalog::Card;
use crate::data::corpus::{read_documents, SampleSpec};
use crate::export::tokens::trainer_formats::{Format, FormatOptions};
use crate::tokenize::pipeline::{read_in_batches, Batching};
use crate::tokenize::Tokenizer;
use crate::util::progress::Progress;

const MAGIC: &[u8; 8] = b"MTKTOKS\0";
const HEADER: usize = 32;

/// What `meta.json` records about a tokenized corpus.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TokenFilesMeta {
    /// Corpus name.
    pub corpus: String,
    /// Hash of the card and its files.
    pub card_hash: String,
    /// SHA-256 of the tokenizer file.
    pub tokenizer_sha256: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// End-of-document id.
    pub eos_id: u32,
    /// Documents and tokens per split.
    pub train_docs: u64,
    /// Tokens in train.
    pub train_tokens: u64,
    /// Documents in val.
    pub val_docs: u64,
    /// Tokens in val.
    pub val_tokens: u64,
    /// Whether documents carry a prompt/response split.
    pub has_prompt: bool,
    /// The documents had a prompt/response split that the written format has no place for
    /// (Megatron, OLMo-core and litdata files hold ids only): the mask was not written. Said
    /// by `tokenize`'s table, never stored.
    #[serde(skip)]
    pub prompt_mask_dropped: bool,
    /// Seed of the train/validation split.
    pub seed: u64,
    /// Records skipped as bad, by kind.
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// The first few of them, each with its file and line (or record) and field. Said by
    /// `tokenize`, never stored.
    #[serde(skip)]
    pub skipped_examples: Vec<String>,
}

/// The end-of-document id: the tokenizer's `<|endoftext|>` (or `</s>`, `<eos>`).
pub fn eos_id(tok: &Tokenizer) -> Result<u32> {
    ["<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>"]
        .iter()
        .find_map(|t| tok.token_to_id(t))
        .ok_or_else(|| {
            anyhow!(
                "tokenizer {} has no end-of-text token (<|endoftext|>, </s>, <eos>)",
                tok.path.display()
            )
        })
}

/// Tokenizes a corpus into `out/NAME/`, holding out `val_docs` documents for validation.
pub fn write(
    card: &Card,
    tok: &Tokenizer,
    sample: &SampleSpec,
    val_docs: u64,
    out: &Path,
    progress: &dyn Progress,
) -> Result<TokenFilesMeta> {
    write_format(
        card,
        tok,
        sample,
        val_docs,
        out,
        Format::Mtkit,
        &FormatOptions::default(),
        &[],
        progress,
    )
}

/// `mtkit tokenize`'s whole flow, for the CLI and the Python binding alike: each of `cards`
/// into `out/NAME/` in `format` ([`write_format`]); `val_docs` defaults to 100 for mtkit's
/// format and 0 for the trainers'; with `exclude` = (EVAL, n), the documents sharing an
/// n-token n-gram with EVAL (every item, whole) are left out, as `mtkit overlap` finds them.
/// Returns each corpus's summary and how many documents the exclusion left out.
#[allow(clippy::too_many_arguments)]
pub fn write_corpora(
    cards: &[&Card],
    tok: &Tokenizer,
    sample: &SampleSpec,
    val_docs: Option<u64>,
    out: &Path,
    format: Format,
    options: &FormatOptions,
    exclude: Option<(&Card, usize)>,
    progress: &dyn Progress,
) -> Result<Vec<(TokenFilesMeta, usize)>> {
    let val_docs = val_docs.unwrap_or(if format == Format::Mtkit { 100 } else { 0 });
    let left_out: Vec<Vec<u64>> = match exclude {
        Some((eval, n)) => crate::analysis::overlap::scan_against_whole_eval(
            cards, eval, tok, sample, None, n, progress,
        )?
        .into_iter()
        .map(|s| s.contaminated)
        .collect(),
        None => vec![Vec::new(); cards.len()],
    };
    cards
        .iter()
        .zip(&left_out)
        .map(|(card, left)| {
            let m = write_format(
                card, tok, sample, val_docs, out, format, options, left, progress,
            )?;
            Ok((m, left.len()))
        })
        .collect()
}

/// [`write`] in any of the [`crate::export::tokens::trainer_formats`]: mtkit's token files, or a trainer's
/// (Megatron, OLMo-core, litdata), which take no validation split (their trainers split or
/// read validation data of their own). The summary is in [`TokenFilesMeta`]'s terms (train
/// = everything for a trainer format); a trainer format's own metadata is written beside its
/// files. A corpus folder holding another format's files, or files mtkit did not write, is
/// refused with their names. The records in `left_out` (ascending: those `tokenize
/// --exclude-overlap` found) are read past and written nowhere.
#[allow(clippy::too_many_arguments)]
pub fn write_format(
    card: &Card,
    tok: &Tokenizer,
    sample: &SampleSpec,
    val_docs: u64,
    out: &Path,
    format: Format,
    options: &FormatOptions,
    left_out: &[u64],
    progress: &dyn Progress,
) -> Result<TokenFilesMeta> {
    let eos = eos_id(tok)?;
    if format != Format::Mtkit && val_docs > 0 {
        bail!(
            "--val-docs {val_docs}: the {} format has no validation split (its trainer takes validation data of its own); tokenize a validation corpus separately, or leave --val-docs out",
            format.name()
        );
    }
    crate::export::tokens::trainer_formats::dtype_for(format, tok.vocab_size)?;
    // What is at OUT/NAME decides where the corpus goes: nothing or mtkit's own folder, that
    // place; a link to a folder (a scratch disk), the folder it points to, the link kept; a
    // file or any other link is refused, never removed.
    let dir = crate::util::paths::folder_destination(&out.join(&card.name))?;
    match crate::export::tokens::trainer_formats::existing(&dir) {
        Some(Ok(f)) if f != format => bail!(
            "{} holds {} token files; tokenizing it as {} would replace them: choose another -o, or remove the folder",
            dir.display(),
            f.name(),
            format.name()
        ),
        Some(Err(files)) => bail!(
            "{} holds files mtkit did not write ({}); choose another -o, or remove them",
            dir.display(),
            files.join(", ")
        ),
        _ => {}
    }
    if let Some(n) = sample.max_docs {
        if n <= val_docs {
            bail!(
                "corpus `{}`: --max-docs {n} leaves no training documents after holding out --val-docs {val_docs}: raise --max-docs or lower --val-docs",
                card.name
            );
        }
    }
    // The corpus is written into a temporary folder beside DIR/NAME and put in place whole:
    // a failed run leaves nothing, and two runs into the same folder at once leave one
    // run's files, never a mix. A folder `out` this call creates is removed again on failure.
    let created = !out.exists();
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let before = crate::util::paths::identity(&dir);
    let r = crate::util::paths::temp_dir_for(&dir).and_then(|tmp| {
        let meta = write_into(
            card,
            tok,
            sample,
            val_docs,
            tmp.path(),
            eos,
            format,
            options,
            left_out,
            progress,
        )?;
        if crate::util::paths::identity(&dir) != before {
            progress.warn(&format!(
                "{} was written by another process while this one tokenized; this run's files replace it",
                dir.display()
            ));
        }
        crate::util::paths::install_dir_over_folder(tmp, &dir)?;
        Ok(meta)
    });
    if r.is_err() && created {
        let _ = std::fs::remove_dir(out); // only when empty
    }
    r
}

#[allow(clippy::too_many_arguments)]
fn write_into(
    card: &Card,
    tok: &Tokenizer,
    sample: &SampleSpec,
    val_docs: u64,
    dir: &Path,
    eos: u32,
    format: Format,
    options: &FormatOptions,
    left_out: &[u64],
    progress: &dyn Progress,
) -> Result<TokenFilesMeta> {
    // Which records are validation documents. A sample of N documents (--max-docs N) arrives
    // in the order of a seeded hash of the record index, so its first --val-docs documents are
    // a seeded uniform choice among the sampled ones; a whole corpus arrives in file order, so
    // a first pass picks --val-docs of its records by another seeded hash.
    let val_first = sample.max_docs.is_some();
    let val = match val_docs > 0 && !val_first {
        true => validation_records(card, sample, val_docs)?,
        false => std::collections::HashSet::new(),
    };
    let split = match (&card.prompt, &card.response) {
        (Some(p), Some(r)) => Some((
            crate::data::template::Template::parse(p)?,
            crate::data::template::Template::parse(r)?,
        )),
        _ => None,
    };
    let sink: Box<dyn TokenSink> = match format {
        Format::Mtkit => Box::new(mtkit_format::MtkitFiles::new(
            dir,
            tok.vocab_size > 1 << 16,
        )?),
        f => Box::new(trainer_formats::TrainerFiles::new(
            f,
            dir,
            &card.name,
            tok.vocab_size,
            options,
        )?),
    };
    // The bar's total: the card's record count where it is known without reading.
    let expected = card
        .resolve()
        .ok()
        .and_then(|r| crate::data::corpus::expected_documents(&r, sample));
    progress.start(&card.name, expected.or(sample.max_docs));
    let tokenizing = Tokenizing {
        card,
        sample,
        tok,
        eos,
        split: split.as_ref(),
        val_first: if val_first { val_docs } else { 0 },
        left_out,
        progress,
    };
    let (summary, sink) = tokenizing.run(sink, val)?;
    progress.finish();
    let end = Ending {
        card,
        tok,
        sample,
        eos,
        has_prompt: split.is_some(),
        summary: &summary,
    };
    sink.finish(dir, &end)
}

/// The `val_docs` records of a whole corpus held out for validation: a seeded bottom-k
/// choice among its records (another seed than the sample's).
fn validation_records(
    card: &Card,
    sample: &SampleSpec,
    val_docs: u64,
) -> Result<std::collections::HashSet<u64>> {
    let spec = SampleSpec {
        max_docs: Some(val_docs),
        seed: sample.seed ^ 0x7661_6c00,
        ..sample.clone()
    };
    let mut val = std::collections::HashSet::new();
    read_documents(card, &spec, &mut |d| {
        val.insert(d.index);
        Ok(())
    })?;
    Ok(val)
}

/// What a sink's ending needs besides its documents: the corpus, the tokenizer, the sample,
/// whether documents carry a prompt/response split, and what the read skipped.
pub struct Ending<'a> {
    pub card: &'a Card,
    pub tok: &'a Tokenizer,
    pub sample: &'a SampleSpec,
    pub eos: u32,
    pub has_prompt: bool,
    pub summary: &'a crate::data::corpus::ReadSummary,
}

/// Documents of one corpus, in reading order, into one format's token files: mtkit's own
/// ([`mtkit_format::MtkitFiles`]) or a trainer's ([`trainer_formats::TrainerFiles`]).
pub trait TokenSink: Send {
    /// Appends a document: its ids (EOS included), its prompt's length in tokens (0: none),
    /// and whether it belongs to the validation split.
    fn push(&mut self, ids: &[u32], prompt_len: u32, val: bool) -> Result<()>;
    /// Finishes the files in `dir` and writes the format's metadata; gives the summary.
    fn finish(self: Box<Self>, dir: &Path, end: &Ending<'_>) -> Result<TokenFilesMeta>;
}

/// One corpus read, tokenized and handed to a sink.
struct Tokenizing<'a> {
    card: &'a Card,
    sample: &'a SampleSpec,
    tok: &'a Tokenizer,
    eos: u32,
    /// The card's prompt and response templates, when it has them.
    split: Option<&'a (
        crate::data::template::Template,
        crate::data::template::Template,
    )>,
    /// With a sample (--max-docs N), its first this many documents are the validation split.
    val_first: u64,
    /// Records read past (ascending).
    left_out: &'a [u64],
    progress: &'a dyn Progress,
}

impl Tokenizing<'_> {
    /// Batches are tokenized in parallel one at a time, and written in reading order on a
    /// thread of their own while the next batch is tokenized: writing (the formats' layouts,
    /// a copy to the page cache) then costs no time of its own unless it is the slower part.
    /// `val` holds the validation records chosen beforehand (a whole corpus).
    fn run(
        &self,
        mut sink: Box<dyn TokenSink>,
        mut val: std::collections::HashSet<u64>,
    ) -> Result<(crate::data::corpus::ReadSummary, Box<dyn TokenSink>)> {
        let extra: Vec<_> = self
            .split
            .iter()
            .flat_map(|(p, r)| [p.clone(), r.clone()])
            .collect();
        let encoders = crate::tokenize::EncoderPool::new(self.tok);
        let encode = |d: &crate::data::corpus::Document| -> Result<(Vec<u32>, u32)> {
            encoders.with(|e| {
                let mut ids = Vec::new();
                let mut pl = 0;
                if self.split.is_some() {
                    e.encode_into(&d.extra[0], None, &mut ids)?;
                    pl = ids.len() as u32;
                    e.encode_into(&d.extra[1], None, &mut ids)?;
                } else {
                    e.encode_into(&d.text, None, &mut ids)?;
                }
                ids.push(self.eos);
                Ok((ids, pl))
            })
        };
        let batching = Batching {
            docs: 1024,
            bytes: u64::MAX,
        };
        let (left_out, val_first, progress) = (self.left_out, self.val_first, self.progress);
        read_in_batches(self.card, self.sample, &extra, batching, |rx, _| {
            use rayon::prelude::*;
            type Encoded = (Vec<crate::data::corpus::Document>, Vec<(Vec<u32>, u32)>);
            let (to_writer, batches) = std::sync::mpsc::sync_channel::<Encoded>(2);
            std::thread::scope(|scope| {
                let writer = scope.spawn(move || -> Result<Box<dyn TokenSink>> {
                    let mut delivered = 0u64;
                    for (docs, enc) in batches {
                        let (mut bytes, mut toks) = (0u64, 0u64);
                        for (d, (ids, pl)) in docs.iter().zip(&enc) {
                            if left_out.binary_search(&d.index).is_ok() {
                                continue;
                            }
                            if delivered < val_first {
                                val.insert(d.index);
                            }
                            delivered += 1;
                            bytes += d.text.len() as u64;
                            toks += ids.len() as u64;
                            sink.push(ids, *pl, val.contains(&d.index))?;
                        }
                        progress.advance(docs.len() as u64, bytes, toks);
                    }
                    Ok(sink)
                });
                let mut encoded = Ok(());
                for batch in rx {
                    match batch
                        .docs
                        .par_iter()
                        .map(encode)
                        .collect::<Result<Vec<_>>>()
                    {
                        // A closed queue: the writer failed, and its error is the one returned.
                        Ok(enc) => {
                            if to_writer.send((batch.docs, enc)).is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            encoded = Err(e);
                            break;
                        }
                    }
                }
                drop(to_writer);
                let sink = writer.join().expect("the token writer does not panic");
                encoded?;
                sink
            })
        })
    }
}

/// Refuses a token file holding an id outside the vocabulary (a damaged file).
fn check_ids(path: &Path, body: &[u8], width: u32, vocab_size: u32) -> Result<()> {
    let max_id = if width == 4 {
        body.chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .max()
    } else {
        body.chunks_exact(2)
            .map(|c| u16::from_le_bytes(c.try_into().unwrap()) as u32)
            .max()
    };
    if let Some(id) = max_id.filter(|&id| id >= vocab_size) {
        bail!(
            "{}: token id {id} is outside the vocabulary of {vocab_size}: the file is damaged",
            path.display()
        );
    }
    Ok(())
}

/// Documents tile the token stream in order: each starts where the one before ended, its
/// prompt within it, and together they hold every token of `tokens_path`.
fn check_documents(dpath: &Path, docs: &[u8], n_tokens: u64, tokens_path: &Path) -> Result<()> {
    let path = tokens_path;
    let mut next = 0u64;
    for (k, d) in docs.chunks_exact(16).enumerate() {
        let start = u64::from_le_bytes(d[..8].try_into().unwrap());
        let len = u32::from_le_bytes(d[8..12].try_into().unwrap()) as u64;
        let prompt = u32::from_le_bytes(d[12..16].try_into().unwrap()) as u64;
        if start != next || prompt > len || start + len > n_tokens {
            bail!(
                "{}: document {} (start {start}, {len} tokens, prompt {prompt}) does not fit the {n_tokens} tokens of {}: the files are damaged or from different runs",
                dpath.display(),
                k + 1,
                path.display()
            );
        }
        next = start + len;
    }
    if next != n_tokens {
        bail!(
            "{}: the documents hold {next} of the {n_tokens} tokens of {}: the files are damaged or from different runs",
            dpath.display(),
            path.display()
        );
    }
    Ok(())
}

/// A memory-mapped split of a tokenized corpus.
pub struct Split {
    tokens: memmap2::Mmap,
    docs: memmap2::Mmap,
    wide: bool,
    /// Token count.
    pub n_tokens: u64,
    /// Vocabulary size recorded in the header.
    pub vocab_size: u32,
    /// EOS id recorded in the header.
    pub eos_id: u32,
    /// Where it was read from.
    pub path: PathBuf,
}

impl Split {
    /// Tokens in the split (end-of-document tokens included).
    pub fn n_tokens(&self) -> u64 {
        self.n_tokens
    }

    /// Opens `dir/SPLIT.tokens` and `dir/SPLIT.docs`.
    pub fn open(dir: &Path, split: &str) -> Result<Split> {
        let path = dir.join(format!("{split}.tokens"));
        let f = std::fs::File::open(&path).with_context(|| {
            format!(
                "cannot open {} (run `mtkit tokenize` first)",
                path.display()
            )
        })?;
        // SAFETY: the files are written once, atomically, and never modified in place.
        let tokens = unsafe { memmap2::Mmap::map(&f)? };
        if tokens.len() < HEADER || &tokens[..8] != MAGIC {
            bail!("{} is not an mtkit token file", path.display());
        }
        let u32_at = |o: usize| u32::from_le_bytes(tokens[o..o + 4].try_into().unwrap());
        if u32_at(8) != 1 {
            bail!(
                "{}: token file version {} is not supported",
                path.display(),
                u32_at(8)
            );
        }
        let width = u32_at(12);
        if width != 2 && width != 4 {
            bail!(
                "{}: token width {width} bytes is not 2 or 4: the file is damaged",
                path.display()
            );
        }
        let n_tokens = u64::from_le_bytes(tokens[24..32].try_into().unwrap());
        let expected = n_tokens
            .checked_mul(width as u64)
            .and_then(|b| b.checked_add(HEADER as u64));
        if expected != Some(tokens.len() as u64) {
            bail!(
                "{} is truncated or damaged: its header says {n_tokens} tokens of {width} bytes, the file holds {} bytes",
                path.display(),
                tokens.len()
            );
        }
        let (vocab_size, eos_id) = (u32_at(16), u32_at(20));
        if eos_id >= vocab_size {
            bail!("{}: EOS id {eos_id} is outside the vocabulary of {vocab_size}: the file is damaged", path.display());
        }
        // Every id inside the vocabulary: the model indexes its embedding with them.
        check_ids(&path, &tokens[HEADER..], width, vocab_size)?;
        let dpath = dir.join(format!("{split}.docs"));
        let df = std::fs::File::open(&dpath)
            .with_context(|| format!("cannot open {}", dpath.display()))?;
        let docs = unsafe { memmap2::Mmap::map(&df)? };
        if docs.len() % 16 != 0 {
            bail!("{}: {} bytes is not a whole number of 16-byte document entries: the file is damaged", dpath.display(), docs.len());
        }
        check_documents(&dpath, &docs, n_tokens, &path)?;
        Ok(Split {
            wide: width == 4,
            vocab_size,
            eos_id,
            tokens,
            docs,
            n_tokens,
            path,
        })
    }

    /// Token at position `i`.
    #[inline]
    pub fn token(&self, i: u64) -> u32 {
        let o = HEADER + (i as usize) * if self.wide { 4 } else { 2 };
        if self.wide {
            u32::from_le_bytes(self.tokens[o..o + 4].try_into().unwrap())
        } else {
            u16::from_le_bytes(self.tokens[o..o + 2].try_into().unwrap()) as u32
        }
    }

    /// Tokens `start..start + n`, wrapping around the end.
    pub fn window(&self, start: u64, n: usize) -> Vec<i64> {
        (0..n as u64)
            .map(|k| self.token((start + k) % self.n_tokens) as i64)
            .collect()
    }

    /// Number of documents.
    pub fn n_docs(&self) -> usize {
        self.docs.len() / 16
    }

    /// Document `i`: (start, length, prompt length).
    pub fn doc(&self, i: usize) -> (u64, u32, u32) {
        let o = i * 16;
        let d = &self.docs[o..o + 16];
        (
            u64::from_le_bytes(d[..8].try_into().unwrap()),
            u32::from_le_bytes(d[8..12].try_into().unwrap()),
            u32::from_le_bytes(d[12..16].try_into().unwrap()),
        )
    }
}

/// Reads `DIR/NAME/meta.json`.
pub fn read_meta(dir: &Path) -> Result<TokenFilesMeta> {
    let p = dir.join("meta.json");
    let s = std::fs::read_to_string(&p)
        .with_context(|| format!("cannot read {} (run `mtkit tokenize` first)", p.display()))?;
    serde_json::from_str(&s).with_context(|| format!("{} is not valid", p.display()))
}
