//! Tokenization: one `tokenizer.json` loaded once, documents encoded without special tokens,
//! each cut to a maximum number of tokens.
//!
//! Two engines give the same ids. HF tokenizers' full pipeline encodes any tokenizer.json; the
//! fast path ([`fast`]) covers byte-level BPE tokenizers (GPT-NeoX-20B, GPT-2 and their family)
//! exactly and is many times faster: it skips offset bookkeeping, remembers each pre-token's
//! ids in a per-thread cache ([`Encoder`]), and stops at the token cut instead of encoding the
//! whole document. [`EngineChoice::Auto`] takes the fast path wherever it covers the tokenizer.
//!
//! The default tokenizer is GPT-NeoX-20B's BPE (the Pythia tokenizer), which `make setup`
//! places in the cache; `--tokenizer PATH` or `MTKIT_TOKENIZER` selects any other.

pub mod check;
pub mod fast;
pub mod pipeline;
pub mod pretokenize;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use hashbrown::HashMap;
use sha2::{Digest, Sha256};

use fast::FastPath;

/// File name of the default tokenizer inside `<cache>/tokenizers/`.
pub const DEFAULT_TOKENIZER_FILE: &str = "gpt-neox-20b.json";

/// The default tokenizer's path in the cache.
pub fn default_tokenizer_path() -> PathBuf {
    crate::util::paths::cache_dir()
        .join("tokenizers")
        .join(DEFAULT_TOKENIZER_FILE)
}

/// Which engine encodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// mtkit's fast path for byte-level BPE.
    Fast,
    /// HF tokenizers' full pipeline (`encode`).
    Hf,
}

impl Engine {
    /// The name used in options, metadata and messages.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Fast => "fast",
            Engine::Hf => "hf",
        }
    }
}

/// Which engine to use when loading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// The fast path when it covers the tokenizer exactly, else HF's pipeline.
    #[default]
    Auto,
    /// The fast path; an error when it does not cover the tokenizer.
    Fast,
    /// HF's pipeline always.
    Hf,
}

impl std::str::FromStr for EngineChoice {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<EngineChoice> {
        match s {
            "auto" => Ok(EngineChoice::Auto),
            "fast" => Ok(EngineChoice::Fast),
            "hf" => Ok(EngineChoice::Hf),
            _ => bail!("expected auto, fast or hf, got {s:?}"),
        }
    }
}

/// Pre-tokens longer than this are encoded without being remembered (rare, and each would
/// take a cache slot for one use).
const CACHE_MAX_PIECE: usize = 128;
/// A thread's cache is emptied when it holds this many pre-tokens, so memory stays bounded on
/// any corpus (at most about 200 MB per thread, with every key at the longest; typical text
/// stays far below: its pre-tokens average a few bytes); frequent pre-tokens come back at once.
const CACHE_MAX_ENTRIES: usize = 1 << 20;

/// A loaded tokenizer with its identity.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    fast: Option<FastPath>,
    /// Why the fast path is not used, when it is not.
    pub fast_path_declined: Option<String>,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// SHA-256 of the tokenizer file: profiles made with different tokenizers never mix.
    pub sha256: String,
    /// Number of ids, added tokens included.
    pub vocab_size: usize,
}

impl Tokenizer {
    /// Loads `path`, or `MTKIT_TOKENIZER`, or the default tokenizer from the cache, with the
    /// fast path where it applies.
    pub fn load(path: Option<&Path>) -> Result<Tokenizer> {
        Tokenizer::load_with(path, EngineChoice::Auto)
    }

    /// [`Tokenizer::load`] with a choice of engine.
    pub fn load_with(path: Option<&Path>, engine: EngineChoice) -> Result<Tokenizer> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os("MTKIT_TOKENIZER").filter(|p| !p.is_empty()) {
                Some(p) => PathBuf::from(p),
                None => {
                    let p = default_tokenizer_path();
                    if !p.exists() {
                        bail!(
                            "the default tokenizer (GPT-NeoX-20B) is not installed at {}: run `make setup` (or scripts/setup.sh), or pass --tokenizer PATH to a tokenizer.json",
                            p.display()
                        );
                    }
                    p
                }
            },
        };
        let bytes = std::fs::read(&path)
            .with_context(|| format!("cannot read tokenizer {}", path.display()))?;
        let mut inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| {
            anyhow!(
                "{} is not a tokenizer.json that the tokenizers library can load: {e}",
                path.display()
            )
        })?;
        inner.with_truncation(None).map_err(|e| anyhow!("{e}"))?;
        inner.with_padding(None);
        let sha256 = crate::util::digest::hex(&Sha256::digest(&bytes));
        let vocab_size = inner.get_vocab_size(true);
        let (fast, fast_path_declined) = match engine {
            EngineChoice::Hf => (None, Some("--encoder hf was asked for".to_string())),
            EngineChoice::Auto | EngineChoice::Fast => match FastPath::new(&inner) {
                Ok(f) => (Some(f), None),
                Err(why) if engine == EngineChoice::Fast => bail!(
                    "--encoder fast: the fast path does not cover {}: {why}; use --encoder auto or hf",
                    path.display()
                ),
                Err(why) => (None, Some(why)),
            },
        };
        Ok(Tokenizer {
            inner,
            fast,
            fast_path_declined,
            path,
            sha256,
            vocab_size,
        })
    }

    /// The engine that encodes.
    pub fn engine(&self) -> Engine {
        if self.fast.is_some() {
            Engine::Fast
        } else {
            Engine::Hf
        }
    }

    /// A line saying which engine encodes and why.
    pub fn describe_engine(&self) -> String {
        match &self.fast_path_declined {
            None => format!(
                "encoder: fast (byte-level BPE fast path; ids identical to HF tokenizers {})",
                HF_TOKENIZERS_VERSION
            ),
            Some(why) => format!("encoder: hf (HF tokenizers {HF_TOKENIZERS_VERSION} pipeline; fast path not used: {why})"),
        }
    }

    /// A per-thread encoder (with its own pre-token cache).
    pub fn encoder(&self) -> Encoder<'_> {
        Encoder {
            tok: self,
            cache: PieceCache::default(),
        }
    }

    /// Token ids of `text` without special tokens, cut to `max_tokens` (one-off; workers
    /// encoding many documents keep an [`Encoder`]).
    pub fn encode(&self, text: &str, max_tokens: Option<usize>) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        self.encoder().encode_into(text, max_tokens, &mut out)?;
        Ok(out)
    }

    /// Token ids of `text` by HF's full pipeline, whatever the engine (the reference the fast
    /// path is tested against).
    pub fn encode_hf(&self, text: &str, max_tokens: Option<usize>) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| anyhow!("tokenizer failed: {e}"))?;
        let mut ids = enc.get_ids().to_vec();
        if let Some(m) = max_tokens {
            ids.truncate(m);
        }
        Ok(ids)
    }

    /// The id of a token's text, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The text of a token id, if the id exists.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Decodes ids back to text (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| anyhow!("tokenizer failed to decode: {e}"))
    }
}

/// The version of HF tokenizers that mtkit is built with (the reference for identical ids).
pub const HF_TOKENIZERS_VERSION: &str = "0.23.2";

/// Encodes documents on one thread, remembering each pre-token's ids.
pub struct Encoder<'t> {
    tok: &'t Tokenizer,
    cache: PieceCache,
}

/// Pre-token → its ids. Most pre-tokens are short and encode to one to three ids: those of up
/// to 15 bytes are keyed by their bytes and length packed in a u128, with up to three ids held
/// in the entry itself, so that a hit costs one probe of one cache line (the table is larger
/// than the CPU caches on real text, and the misses are what a hit costs). Longer pre-tokens,
/// and ids that do not fit, live in maps and an array beside it.
struct PieceCache {
    /// A direct-mapped front table of the short pre-tokens met last (1 MiB: it stays in the
    /// CPU's caches, where the full table does not).
    front: Vec<(u128, Ids)>,
    short: HashMap<u128, Ids>,
    long: HashMap<Box<[u8]>, Ids>,
    /// Ids of entries with more than three, back to back.
    spill: Vec<u32>,
    /// Entries at which the cache is emptied.
    limit: usize,
}

const FRONT_BITS: u32 = 15;

impl Default for PieceCache {
    fn default() -> PieceCache {
        PieceCache {
            // Allocated at the first insert, so that one-off encoders cost nothing.
            front: Vec::new(),
            short: HashMap::new(),
            long: HashMap::new(),
            spill: Vec::new(),
            limit: CACHE_MAX_ENTRIES,
        }
    }
}

#[inline]
fn front_slot(k: u128) -> usize {
    let h = ((k as u64) ^ ((k >> 64) as u64).rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> (64 - FRONT_BITS)) as usize
}

/// Up to three ids inline, or (start, length) in `spill` (`len` > 3).
#[derive(Clone, Copy, Default)]
struct Ids {
    ids: [u32; 3],
    len: u32,
}

#[inline]
fn short_key(piece: &[u8]) -> Option<u128> {
    if piece.len() > 15 {
        return None;
    }
    let mut k = (piece.len() as u128) << 120;
    for (i, &b) in piece.iter().enumerate() {
        k |= (b as u128) << (8 * i);
    }
    Some(k)
}

impl PieceCache {
    /// Appends the remembered ids of `piece` to `out`; false when it is not remembered.
    #[inline]
    fn extend(&mut self, piece: &[u8], out: &mut Vec<u32>) -> bool {
        let found = match short_key(piece) {
            Some(k) if !self.front.is_empty() => {
                let slot = front_slot(k);
                if self.front[slot].0 == k {
                    Some(self.front[slot].1)
                } else {
                    let e = self.short.get(&k).copied();
                    if let Some(e) = e {
                        self.front[slot] = (k, e);
                    }
                    e
                }
            }
            Some(_) => None,
            None => self.long.get(piece).copied(),
        };
        let Some(e) = found else {
            return false;
        };
        if e.len <= 3 {
            // Pushing one to three ids beats a call to memmove.
            for &id in &e.ids[..e.len as usize] {
                out.push(id);
            }
        } else {
            let at = e.ids[0] as usize;
            out.extend_from_slice(&self.spill[at..at + e.len as usize]);
        }
        true
    }

    fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    /// Encodes `piece`, remembers its ids and appends them to `out`.
    fn insert(
        &mut self,
        fast: &FastPath,
        bpe: &tokenizers::models::bpe::BPE,
        piece: &str,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        if self.len() >= self.limit {
            *self = PieceCache {
                limit: self.limit,
                ..PieceCache::default()
            };
        }
        if self.front.is_empty() {
            // Key 0 is no pre-token (every key holds a length of at least one).
            self.front = vec![(0, Ids::default()); 1 << FRONT_BITS];
        }
        let from = out.len();
        fast.encode_piece(bpe, piece, out)?;
        let got = &out[from..];
        let mut e = Ids {
            ids: [0; 3],
            len: got.len() as u32,
        };
        if got.len() <= 3 {
            e.ids[..got.len()].copy_from_slice(got);
        } else {
            e.ids[0] = self.spill.len() as u32;
            self.spill.extend_from_slice(got);
        }
        match short_key(piece.as_bytes()) {
            Some(k) => {
                self.front[front_slot(k)] = (k, e);
                self.short.insert(k, e)
            }
            None => self.long.insert(piece.as_bytes().into(), e),
        };
        Ok(())
    }
}

impl Encoder<'_> {
    /// Appends the ids of `text` (no special tokens) to `out`, at most `max_tokens` of them:
    /// exactly HF's `encode(text)` cut to its first `max_tokens` ids.
    pub fn encode_into(
        &mut self,
        text: &str,
        max_tokens: Option<usize>,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        let start = out.len();
        let limit = max_tokens.map(|m| start + m).unwrap_or(usize::MAX);
        let Some(fast) = &self.tok.fast else {
            out.extend(self.tok.encode_hf(text, max_tokens)?);
            return Ok(());
        };
        let tokenizers::models::ModelWrapper::BPE(bpe) = self.tok.inner.get_model() else {
            unreachable!("the fast path is built for BPE models only");
        };
        if limit == start {
            return Ok(());
        }
        let mut failure = None;
        let cache = &mut self.cache;
        fast.walk(text, |unit| {
            let piece = match unit {
                fast::Unit::Added(id) => {
                    out.push(id);
                    return out.len() < limit;
                }
                fast::Unit::Piece(p) => p,
            };
            if !cache.extend(piece.as_bytes(), out) {
                let r = if piece.len() > CACHE_MAX_PIECE {
                    fast.encode_piece(bpe, piece, out)
                } else {
                    cache.insert(fast, bpe, piece, out)
                };
                if let Err(e) = r {
                    failure = Some(e);
                    return false;
                }
            }
            out.len() < limit
        });
        if let Some(e) = failure {
            return Err(e);
        }
        out.truncate(limit.min(out.len()));
        Ok(())
    }
}

/// One [`Encoder`] per worker thread of rayon's pool (and one for any other thread), so
/// that each thread keeps its cache across the batches it encodes.
pub struct EncoderPool<'t> {
    slots: Vec<Mutex<Encoder<'t>>>,
}

impl<'t> EncoderPool<'t> {
    /// Encoders for the current rayon pool.
    pub fn new(tok: &'t Tokenizer) -> EncoderPool<'t> {
        EncoderPool {
            slots: (0..rayon::current_num_threads() + 1)
                .map(|_| Mutex::new(tok.encoder()))
                .collect(),
        }
    }

    /// Runs `f` with the calling thread's encoder.
    pub fn with<R>(&self, f: impl FnOnce(&mut Encoder<'t>) -> R) -> R {
        let slot = rayon::current_thread_index().map(|i| i + 1).unwrap_or(0);
        let mut enc = self.slots[slot % self.slots.len()]
            .lock()
            .expect("encoder lock");
        f(&mut enc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache emptied many times over (a limit of 7 pre-tokens) still gives HF's ids.
    #[test]
    fn a_cache_emptied_when_full_gives_the_same_ids() {
        let path = default_tokenizer_path();
        if !path.exists() {
            eprintln!(
                "SKIP: no tokenizer at {} (run `make setup`)",
                path.display()
            );
            return;
        }
        let tok = Tokenizer::load_with(Some(&path), EngineChoice::Fast).unwrap();
        let mut enc = tok.encoder();
        enc.cache.limit = 7;
        let text = "The quick brown fox's 42 jumps  over\tthe lazy dog; naïve café, \
                    supercalifragilisticexpialidocious <|endoftext|> again and again.";
        for round in 0..3 {
            let mut ids = Vec::new();
            enc.encode_into(text, None, &mut ids).unwrap();
            assert_eq!(ids, tok.encode_hf(text, None).unwrap(), "round {round}");
            assert!(enc.cache.len() <= 7);
        }
    }
}
