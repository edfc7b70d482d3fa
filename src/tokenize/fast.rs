//! The fast path for byte-level BPE tokenizers (GPT-NeoX-20B, GPT-2 and their family).
//!
//! HF tokenizers' `encode` runs, per document: added tokens that are matched on the raw text
//! are split out; each remaining piece is normalized (NFC or nothing) and the added tokens that
//! are matched on normalized text are split out of it; each remaining piece is cut by the
//! GPT-2 pattern into pre-tokens, whose bytes are mapped to byte-level characters and encoded
//! by the BPE model, each on its own. The fast path does the same steps with the same
//! ingredients (the same Aho-Corasick automaton kind and match rule for added tokens, the same
//! NFC implementation, the same regex engine's character classes, the BPE model object itself)
//! but without the bookkeeping of offsets and alignments that profiles do not need, and it
//! remembers each pre-token's ids, so that a pre-token met again costs one hash look-up.
//!
//! [`FastPath::new`] accepts a tokenizer only when every stage is one the fast path
//! reproduces; anything else is encoded by HF's full pipeline (see [`super::Engine`]).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};

use anyhow::{anyhow, Result};
use daachorse::{DoubleArrayAhoCorasick, DoubleArrayAhoCorasickBuilder, MatchKind};
use tokenizers::models::bpe::BPE;
use tokenizers::models::ModelWrapper;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::Model;
use unicode_normalization_alignments::UnicodeNormalization;

use super::pretokenize;

/// Added tokens matched on one form of the text: an automaton over their contents.
struct AddedTokens {
    trie: Option<DoubleArrayAhoCorasick<u32>>,
}

impl AddedTokens {
    fn new(patterns: Vec<(String, u32)>) -> Result<AddedTokens> {
        if patterns.is_empty() {
            return Ok(AddedTokens { trie: None });
        }
        // The same automaton and match rule as HF's AddedVocabulary.
        let trie = DoubleArrayAhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build_with_values(patterns)
            .map_err(|e| anyhow!("added tokens: {e}"))?;
        Ok(AddedTokens { trie: Some(trie) })
    }

    /// Calls `text` for each non-empty stretch between matches and `token` for each match.
    #[inline]
    fn split<'s>(
        &self,
        s: &'s str,
        mut text: impl FnMut(&'s str) -> bool,
        mut token: impl FnMut(u32) -> bool,
    ) {
        let Some(trie) = &self.trie else {
            if !s.is_empty() {
                text(s);
            }
            return;
        };
        let mut from = 0;
        for m in trie.leftmost_find_iter(s) {
            if from < m.start() && !text(&s[from..m.start()]) {
                return;
            }
            if !token(m.value()) {
                return;
            }
            from = m.end();
        }
        if from < s.len() {
            text(&s[from..]);
        }
    }
}

/// One unit of a document, in order.
pub enum Unit<'a> {
    /// A pre-token, to be encoded by the BPE model.
    Piece(&'a str),
    /// An added token, already an id.
    Added(u32),
}

/// What the fast path needs of a byte-level BPE tokenizer.
pub struct FastPath {
    raw_added: AddedTokens,
    normalized_added: AddedTokens,
    nfc: bool,
    add_prefix_space: bool,
    byte_char: [char; 256],
}

/// NFC as HF's NFC normalizer applies it (the same crate), skipped for text it cannot change:
/// every character below U+0300 is NFC-stable and composes with nothing below U+0300.
fn nfc(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| b < 0xCC) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfc().map(|(c, _)| c).collect())
    }
}

/// GPT-2's map from bytes to the printable characters byte-level BPE vocabularies use.
fn byte_chars() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        out[b as usize] = if printable {
            b as char
        } else {
            n += 1;
            char::from_u32(255 + n).expect("below U+0200")
        };
    }
    out
}

impl FastPath {
    /// The fast path for `tok`, or why it does not cover it exactly.
    pub fn new(tok: &tokenizers::Tokenizer) -> std::result::Result<FastPath, String> {
        let nfc = match tok.get_normalizer() {
            None => false,
            Some(NormalizerWrapper::NFC(_)) => true,
            Some(other) => {
                return Err(format!(
                    "its normalizer ({}) is not NFC or none",
                    variant(other)
                ))
            }
        };
        let add_prefix_space = match tok.get_pre_tokenizer() {
            Some(PreTokenizerWrapper::ByteLevel(b)) if b.use_regex => b.add_prefix_space,
            Some(PreTokenizerWrapper::ByteLevel(_)) => {
                return Err("its ByteLevel pre-tokenizer does not use the GPT-2 pattern".into())
            }
            Some(other) => {
                return Err(format!(
                    "its pre-tokenizer ({}) is not ByteLevel",
                    variant(other)
                ))
            }
            None => return Err("it has no pre-tokenizer".into()),
        };
        match tok.get_model() {
            ModelWrapper::BPE(b) if b.dropout.is_none() => {}
            ModelWrapper::BPE(_) => return Err("its BPE model uses dropout".into()),
            other => return Err(format!("its model ({}) is not BPE", variant(other))),
        }
        if tok.get_encode_special_tokens() {
            return Err("it encodes special tokens as text".into());
        }
        let mut raw = Vec::new();
        let mut normalized = Vec::new();
        let mut added: Vec<_> = tok.get_added_tokens_decoder().into_iter().collect();
        added.sort_by_key(|(id, _)| *id);
        for (id, t) in added {
            if t.single_word || t.lstrip || t.rstrip {
                return Err(format!(
                    "its added token {:?} has single_word, lstrip or rstrip set",
                    t.content
                ));
            }
            if t.normalized {
                let content = if nfc {
                    nfc_of(&t.content)
                } else {
                    t.content.clone()
                };
                normalized.push((content, id));
            } else {
                raw.push((t.content.clone(), id));
            }
        }
        Ok(FastPath {
            raw_added: AddedTokens::new(raw).map_err(|e| e.to_string())?,
            normalized_added: AddedTokens::new(normalized).map_err(|e| e.to_string())?,
            nfc,
            add_prefix_space,
            byte_char: byte_chars(),
        })
    }

    /// Calls `each` with the document's units in order (pre-tokens to encode, added tokens'
    /// ids), until it returns false.
    #[inline]
    pub fn walk(&self, text: &str, each: &mut dyn FnMut(Unit) -> bool) {
        // The callback is reached from nested closures; a RefCell lends it to each in turn.
        let go = Cell::new(true);
        let each = RefCell::new(each);
        let pretokens = |t: &str| {
            pretokenize::split(t, |p| {
                if go.get() {
                    go.set((*each.borrow_mut())(Unit::Piece(p)));
                }
            });
            go.get()
        };
        let added = |id: u32| {
            go.set((*each.borrow_mut())(Unit::Added(id)));
            go.get()
        };
        self.raw_added.split(
            text,
            |raw| {
                let normal = if self.nfc {
                    nfc(raw)
                } else {
                    Cow::Borrowed(raw)
                };
                self.normalized_added.split(
                    &normal,
                    |t| {
                        if self.add_prefix_space && !t.starts_with(' ') {
                            pretokens(&format!(" {t}"))
                        } else {
                            pretokens(t)
                        }
                    },
                    added,
                );
                go.get()
            },
            added,
        );
    }

    /// The BPE ids of one pre-token, appended to `out`.
    pub fn encode_piece(&self, bpe: &BPE, piece: &str, out: &mut Vec<u32>) -> Result<()> {
        let mapped: String = piece.bytes().map(|b| self.byte_char[b as usize]).collect();
        let toks = bpe
            .tokenize(&mapped)
            .map_err(|e| anyhow!("tokenizer failed on {piece:?}: {e}"))?;
        out.extend(toks.iter().map(|t| t.id));
        Ok(())
    }
}

fn nfc_of(s: &str) -> String {
    s.nfc().map(|(c, _)| c).collect()
}

/// The serde tag of a tokenizer component, for messages.
fn variant<T: serde::Serialize>(x: &T) -> String {
    serde_json::to_value(x)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_chars_are_gpt2s() {
        let c = byte_chars();
        // GPT-2's encoder.py: space → Ġ (U+0120), newline → Ċ (U+010A), 'a' stays.
        assert_eq!(c[b' ' as usize], '\u{120}');
        assert_eq!(c[b'\n' as usize], '\u{10A}');
        assert_eq!(c[b'a' as usize], 'a');
        assert_eq!(c[0xAD], '\u{143}');
        let distinct: std::collections::HashSet<char> = c.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }

    #[test]
    fn nfc_composes_and_skips_latin1() {
        assert!(matches!(nfc("café"), Cow::Borrowed(_)));
        assert_eq!(nfc("cafe\u{301}"), "café");
        assert_eq!(nfc(">\u{338}"), "\u{226F}");
    }
}
