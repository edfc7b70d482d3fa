//! mtkit's own token files (the layout is in [`super`]'s doc): a train and a validation
//! split, each a `.tokens` file (header, ids) and a `.docs` file (start, length, prompt length
//! per document), and `meta.json`. One [`super::TokenSink`] among the formats.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Result};

use super::{Ending, TokenFilesMeta, TokenSink, HEADER, MAGIC};

/// The two splits being written, into temporary files put in place by [`TokenSink::finish`].
pub struct MtkitFiles {
    train: SplitWriter,
    val: SplitWriter,
}

impl MtkitFiles {
    /// Starts both splits in `dir`; ids take 4 bytes when `wide` (a vocabulary past 16 bits).
    pub fn new(dir: &Path, wide: bool) -> Result<MtkitFiles> {
        Ok(MtkitFiles {
            train: SplitWriter::new(dir, "train", wide)?,
            val: SplitWriter::new(dir, "val", wide)?,
        })
    }
}

impl TokenSink for MtkitFiles {
    fn push(&mut self, ids: &[u32], prompt_len: u32, val: bool) -> Result<()> {
        match val {
            true => self.val.push(ids, prompt_len),
            false => self.train.push(ids, prompt_len),
        }
    }

    fn finish(self: Box<Self>, dir: &Path, end: &Ending<'_>) -> Result<TokenFilesMeta> {
        let MtkitFiles { train, val } = *self;
        if train.n_docs == 0 {
            bail!(
                "corpus `{}`: every document went to validation; lower --val-docs",
                end.card.name
            );
        }
        let meta = TokenFilesMeta {
            corpus: end.card.name.clone(),
            card_hash: end.card.content_hash()?,
            tokenizer_sha256: end.tok.sha256.clone(),
            vocab_size: end.tok.vocab_size,
            eos_id: end.eos,
            train_docs: train.n_docs,
            train_tokens: train.n_tokens,
            val_docs: val.n_docs,
            val_tokens: val.n_tokens,
            has_prompt: end.has_prompt,
            prompt_mask_dropped: false,
            seed: end.sample.seed,
            skipped: end.summary.skipped.clone(),
            skipped_examples: end.summary.examples.clone(),
        };
        train.finish(dir, "train", end.tok.vocab_size as u32, end.eos)?;
        val.finish(dir, "val", end.tok.vocab_size as u32, end.eos)?;
        crate::util::paths::write_atomic_bytes(
            &dir.join("meta.json"),
            serde_json::to_string_pretty(&meta)?.as_bytes(),
        )?;
        Ok(meta)
    }
}

struct SplitWriter {
    tokens: std::io::BufWriter<tempfile::NamedTempFile>,
    docs: std::io::BufWriter<tempfile::NamedTempFile>,
    wide: bool,
    n_tokens: u64,
    n_docs: u64,
}

impl SplitWriter {
    fn new(dir: &Path, split: &str, wide: bool) -> Result<SplitWriter> {
        let temp =
            |ext: &str| crate::util::paths::temp_file_for(&dir.join(format!("{split}.{ext}")));
        let mut tokens = std::io::BufWriter::new(temp("tokens")?);
        tokens.write_all(&[0u8; HEADER])?;
        let docs = std::io::BufWriter::new(temp("docs")?);
        Ok(SplitWriter {
            tokens,
            docs,
            wide,
            n_tokens: 0,
            n_docs: 0,
        })
    }

    fn push(&mut self, ids: &[u32], prompt_len: u32) -> Result<()> {
        self.docs.write_all(&self.n_tokens.to_le_bytes())?;
        self.docs.write_all(&(ids.len() as u32).to_le_bytes())?;
        self.docs.write_all(&prompt_len.to_le_bytes())?;
        for &id in ids {
            if self.wide {
                self.tokens.write_all(&id.to_le_bytes())?;
            } else {
                self.tokens.write_all(&(id as u16).to_le_bytes())?;
            }
        }
        self.n_tokens += ids.len() as u64;
        self.n_docs += 1;
        Ok(())
    }

    fn finish(self, dir: &Path, split: &str, vocab: u32, eos: u32) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        let mut f = self.tokens.into_inner().map_err(|e| anyhow!("{e}"))?;
        f.as_file_mut().seek(SeekFrom::Start(0))?;
        let mut h = Vec::with_capacity(HEADER);
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&1u32.to_le_bytes());
        h.extend_from_slice(&(if self.wide { 4u32 } else { 2u32 }).to_le_bytes());
        h.extend_from_slice(&vocab.to_le_bytes());
        h.extend_from_slice(&eos.to_le_bytes());
        h.extend_from_slice(&self.n_tokens.to_le_bytes());
        f.as_file_mut().write_all(&h)?;
        f.as_file().sync_all()?;
        crate::util::paths::make_readable(f.path());
        f.persist(dir.join(format!("{split}.tokens")))
            .map_err(|e| e.error)?;
        let d = self.docs.into_inner().map_err(|e| anyhow!("{e}"))?;
        d.as_file().sync_all()?;
        crate::util::paths::make_readable(d.path());
        d.persist(dir.join(format!("{split}.docs")))
            .map_err(|e| e.error)?;
        Ok(())
    }
}
