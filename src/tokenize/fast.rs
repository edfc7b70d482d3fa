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

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use anyhow::{anyhow, Result};
use tokenizers::models::bpe::BPE;
use tokenizers::models::ModelWrapper;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::Model;
use unicode_normalization_alignments::UnicodeNormalization;

use super::pretokenize;

/// Added tokens matched on one form of the text: an automaton over their contents, with
/// the ids in pattern order.
struct AddedTokens {
    trie: Option<AhoCorasick>,
    ids: Vec<u32>,
}

impl AddedTokens {
    fn new(patterns: Vec<(String, u32)>) -> Result<AddedTokens> {
        if patterns.is_empty() {
            return Ok(AddedTokens {
                trie: None,
                ids: Vec::new(),
            });
        }
        // HF's AddedVocabulary matches with a daachorse automaton, leftmost-longest: among the
        // matches that start first, the longest. The aho-corasick crate implements the same
        // rule (with SIMD prefilters, several times faster on text); the identity tests
        // compare the two on every added token in hostile text.
        let trie = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns.iter().map(|(p, _)| p.as_bytes()))
            .map_err(|e| anyhow!("added tokens: {e}"))?;
        Ok(AddedTokens {
            trie: Some(trie),
            ids: patterns.iter().map(|(_, id)| *id).collect(),
        })
    }

    /// The stretches of `s` between matches (non-empty) and the matches' ids, in order.
    #[inline]
    fn segments<'s>(&'s self, s: &'s str) -> Segments<'s> {
        Segments {
            s,
            from: 0,
            matches: self.trie.as_ref().map(|t| t.find_iter(s)),
            ids: &self.ids,
            pending: None,
        }
    }
}

/// A piece of text between added tokens, or an added token.
enum Segment<'s> {
    Text(&'s str),
    Token(u32),
}

struct Segments<'s> {
    s: &'s str,
    from: usize,
    matches: Option<aho_corasick::FindIter<'s, 's>>,
    ids: &'s [u32],
    pending: Option<(usize, u32)>,
}

impl<'s> Iterator for Segments<'s> {
    type Item = Segment<'s>;

    #[inline]
    fn next(&mut self) -> Option<Segment<'s>> {
        if let Some((end, id)) = self.pending.take() {
            self.from = end;
            return Some(Segment::Token(id));
        }
        if let Some(m) = self.matches.as_mut().and_then(|it| it.next()) {
            let id = self.ids[m.pattern().as_usize()];
            if self.from < m.start() {
                let text = &self.s[self.from..m.start()];
                self.pending = Some((m.end(), id));
                return Some(Segment::Text(text));
            }
            self.from = m.end();
            return Some(Segment::Token(id));
        }
        if self.from < self.s.len() {
            let text = &self.s[self.from..];
            self.from = self.s.len();
            return Some(Segment::Text(text));
        }
        None
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

/// NFC as HF's NFC normalizer applies it (the same crate), applied only where it can change
/// something. Every character below U+0300 has canonical combining class 0 and combines with
/// nothing before it, so NFC never acts across a boundary in front of one: the text is cut at
/// such boundaries and only the stretches holding a character from U+0300 on (plus the
/// character before, which may compose with a following mark) go through NFC.
fn nfc(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    // UTF-8 of U+0300 starts with 0xCC; every lead byte below it encodes a character below it.
    let Some(first) = b.iter().position(|&x| x >= 0xCC) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 8);
    let mut done = 0;
    let mut at = first;
    loop {
        // Back to the character before (a safe boundary is in front of it).
        let mut start = at;
        if start > done {
            start -= 1;
            while !s.is_char_boundary(start) {
                start -= 1;
            }
        }
        // On to the next character below U+0300 (its lead byte is below 0xCC and not a
        // continuation byte).
        let mut end = at;
        while end < b.len() && !(b[end] < 0x80 || (0xC0..0xCC).contains(&b[end])) {
            end += 1;
        }
        out.push_str(&s[done..start]);
        out.extend(s[start..end].nfc().map(|(c, _)| c));
        done = end;
        match b[end..].iter().position(|&x| x >= 0xCC) {
            Some(k) => at = end + k,
            None => break,
        }
    }
    out.push_str(&s[done..]);
    Cow::Owned(out)
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
    pub fn walk(&self, text: &str, mut each: impl FnMut(Unit) -> bool) {
        for raw in self.raw_added.segments(text) {
            let raw = match raw {
                Segment::Token(id) => {
                    if !each(Unit::Added(id)) {
                        return;
                    }
                    continue;
                }
                Segment::Text(t) => t,
            };
            let normal = if self.nfc {
                nfc(raw)
            } else {
                Cow::Borrowed(raw)
            };
            for seg in self.normalized_added.segments(&normal) {
                let t = match seg {
                    Segment::Token(id) => {
                        if !each(Unit::Added(id)) {
                            return;
                        }
                        continue;
                    }
                    Segment::Text(t) => t,
                };
                let spaced;
                let t = if self.add_prefix_space && !t.starts_with(' ') {
                    spaced = format!(" {t}");
                    spaced.as_str()
                } else {
                    t
                };
                let mut i = 0;
                while i < t.len() {
                    let end = pretokenize::piece_end(t, i);
                    if !each(Unit::Piece(&t[i..end])) {
                        return;
                    }
                    i = end;
                }
            }
        }
    }

    /// The BPE ids of one pre-token, appended to `out`.
    pub fn encode_piece(&self, bpe: &BPE, piece: &str, out: &mut Vec<u32>) -> Result<()> {
        let mapped: String = piece.bytes().map(|b| self.byte_char[b as usize]).collect();
        let tokenize = |s: &str| {
            bpe.tokenize(s).map_err(|e| {
                let shown: String = piece.chars().take(40).collect();
                anyhow!("tokenizer failed on the pre-token starting {shown:?}: {e}")
            })
        };
        if mapped.len() <= 2 * LONG_PIECE_WINDOW {
            out.extend(tokenize(&mapped)?.iter().map(|t| t.id));
            return Ok(());
        }
        encode_long_piece(&mapped, &tokenize, out)
    }
}

/// Pre-tokens longer than twice this many bytes (a run of a megabyte without a space or a
/// punctuation mark: base64, minified data, one long number) are encoded window by window,
/// so that memory stays proportional to the window: HF's BPE holds about 50 bytes per byte of
/// a pre-token (10 GB for a 200 MB one), and a document's size is otherwise the bound.
pub const LONG_PIECE_WINDOW: usize = 1 << 16;

/// The ids of a long mapped pre-token, window by window: the BPE of a window and of one twice
/// as long are computed from the same start, and the tokens they agree on (ids and byte
/// offsets), up to three quarters of the shorter window, are taken; the next windows start
/// where those end. Where the two never agree, windows double, up to the whole rest. Checked
/// to give HF's own ids on long runs of letters, digits, base64 and minified JSON
/// (tokenize::tests).
fn encode_long_piece(
    mapped: &str,
    tokenize: &dyn Fn(&str) -> Result<Vec<tokenizers::Token>>,
    out: &mut Vec<u32>,
) -> Result<()> {
    let boundary = |mut i: usize| {
        while i < mapped.len() && !mapped.is_char_boundary(i) {
            i += 1;
        }
        i.min(mapped.len())
    };
    let mut start = 0;
    let mut w = LONG_PIECE_WINDOW;
    while mapped.len() - start > 2 * w {
        let (e1, e2) = (boundary(start + w), boundary(start + 2 * w));
        let a = tokenize(&mapped[start..e1])?;
        let b = tokenize(&mapped[start..e2])?;
        let safe = 3 * (e1 - start) / 4;
        let keep = a
            .iter()
            .zip(&b)
            .take_while(|(x, y)| x.id == y.id && x.offsets == y.offsets && x.offsets.1 <= safe)
            .count();
        if keep == 0 || a[keep - 1].offsets.1 < (e1 - start) / 4 {
            w *= 2;
            continue;
        }
        out.extend(a[..keep].iter().map(|t| t.id));
        start += a[keep - 1].offsets.1;
        w = LONG_PIECE_WINDOW;
    }
    out.extend(tokenize(&mapped[start..])?.iter().map(|t| t.id));
    Ok(())
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
        // Stretches cut at characters below U+0300 give the same as NFC of the whole.
        for t in [
            "ab e\u{301}\u{323} x \u{1100}\u{1161}\u{11a8}y —é\u{301}z",
            "\u{301}start",
            "end\u{301}",
            "漢字 and 한국어 \u{212b}",
        ] {
            assert_eq!(nfc(t), nfc_of(t), "{t:?}");
        }
    }
}
