//! Proof of identity, document by document: every document of a corpus encoded by the fast
//! path and by HF tokenizers' full pipeline, ids compared in full (`mtkit check-encoder`).

use anyhow::{bail, Result};
use rayon::prelude::*;

use super::{EncoderPool, Engine, Tokenizer};
use crate::data::catalog::Card;
use crate::data::corpus::{read_documents, Document, SampleSpec};
use crate::util::progress::Progress;

/// Where the two engines first disagree in a document.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// The record's index in the corpus.
    pub record: u64,
    /// The first token position that differs.
    pub position: usize,
    /// The fast path's ids from a few tokens before that position.
    pub fast: Vec<u32>,
    /// HF's ids over the same span.
    pub hf: Vec<u32>,
}

/// The outcome of comparing the engines on one corpus.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    /// Documents compared.
    pub documents: u64,
    /// Tokens compared (HF's count).
    pub tokens: u64,
    /// UTF-8 bytes of the compared documents.
    pub bytes: u64,
    /// Documents whose ids differ.
    pub mismatched_documents: u64,
    /// The first mismatch in reading order.
    pub first: Option<Mismatch>,
}

fn first_difference(a: &[u32], b: &[u32]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// Encodes every document of `card`'s sample with both engines and compares the ids, each
/// document cut to `max_tokens` as profiles cut them. `tok` must have the fast path.
pub fn compare_engines(
    card: &Card,
    tok: &Tokenizer,
    sample: &SampleSpec,
    max_tokens: Option<usize>,
    progress: &dyn Progress,
) -> Result<Comparison> {
    if tok.engine() != Engine::Fast {
        bail!(
            "the fast path does not cover {}: {}",
            tok.path.display(),
            tok.fast_path_declined
                .as_deref()
                .unwrap_or("unknown reason")
        );
    }
    let encoders = EncoderPool::new(tok);
    let mut out = Comparison::default();
    let mut batch: Vec<Document> = Vec::new();
    progress.start(&card.name, sample.max_docs);
    let flush = |batch: &mut Vec<Document>, out: &mut Comparison| -> Result<()> {
        let results: Vec<(u64, usize, Option<Mismatch>)> = batch
            .par_iter()
            .map(|d| -> Result<_> {
                let hf = tok.encode_hf(&d.text, max_tokens)?;
                let mut fast = Vec::new();
                encoders.with(|e| e.encode_into(&d.text, max_tokens, &mut fast))?;
                let m = first_difference(&fast, &hf).map(|p| {
                    let from = p.saturating_sub(3);
                    Mismatch {
                        record: d.index,
                        position: p,
                        fast: fast[from.min(fast.len())..(p + 4).min(fast.len())].to_vec(),
                        hf: hf[from.min(hf.len())..(p + 4).min(hf.len())].to_vec(),
                    }
                });
                Ok((d.text.len() as u64, hf.len(), m))
            })
            .collect::<Result<_>>()?;
        let mut tokens = 0;
        let mut bytes = 0;
        for (b, t, m) in results {
            out.documents += 1;
            out.bytes += b;
            out.tokens += t as u64;
            bytes += b;
            tokens += t as u64;
            if let Some(m) = m {
                out.mismatched_documents += 1;
                if out.first.is_none() {
                    out.first = Some(m);
                }
            }
        }
        progress.advance(batch.len() as u64, bytes, tokens);
        batch.clear();
        Ok(())
    };
    read_documents(card, sample, &mut |d| {
        batch.push(d);
        if batch.len() >= 256 {
            flush(&mut batch, &mut out)?;
        }
        Ok(())
    })?;
    flush(&mut batch, &mut out)?;
    progress.finish();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::first_difference;

    #[test]
    fn first_difference_by_hand() {
        assert_eq!(first_difference(&[1, 2, 3], &[1, 2, 3]), None);
        assert_eq!(first_difference(&[1, 2, 3], &[1, 5, 3]), Some(1));
        assert_eq!(first_difference(&[1, 2], &[1, 2, 3]), Some(2));
        assert_eq!(first_difference(&[], &[7]), Some(0));
    }
}
