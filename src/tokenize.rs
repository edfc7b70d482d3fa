//! Tokenization: one `tokenizer.json` loaded once, documents encoded in parallel batches
//! (rayon), no special tokens, each document cut to a maximum number of tokens.
//!
//! The default tokenizer is GPT-NeoX-20B's BPE (the Pythia tokenizer), which `make setup`
//! places in the cache; `--tokenizer PATH` or `MTKIT_TOKENIZER` selects any other.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

/// File name of the default tokenizer inside `<cache>/tokenizers/`.
pub const DEFAULT_TOKENIZER_FILE: &str = "gpt-neox-20b.json";

/// The default tokenizer's path in the cache.
pub fn default_tokenizer_path() -> PathBuf {
    crate::paths::cache_dir()
        .join("tokenizers")
        .join(DEFAULT_TOKENIZER_FILE)
}

/// A loaded tokenizer with its identity.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// SHA-256 of the tokenizer file: profiles made with different tokenizers never mix.
    pub sha256: String,
    /// Number of ids, added tokens included.
    pub vocab_size: usize,
}

impl Tokenizer {
    /// Loads `path`, or `MTKIT_TOKENIZER`, or the default tokenizer from the cache.
    pub fn load(path: Option<&Path>) -> Result<Tokenizer> {
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
        let sha256 = crate::catalog::hex(&Sha256::digest(&bytes));
        let vocab_size = inner.get_vocab_size(true);
        Ok(Tokenizer {
            inner,
            path,
            sha256,
            vocab_size,
        })
    }

    /// Token ids of `text` without special tokens, cut to `max_tokens`.
    pub fn encode(&self, text: &str, max_tokens: Option<usize>) -> Result<Vec<u32>> {
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

    /// [`Tokenizer::encode`] over many texts in parallel; output order matches input order.
    pub fn encode_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        max_tokens: Option<usize>,
    ) -> Result<Vec<Vec<u32>>> {
        texts
            .par_iter()
            .map(|t| self.encode(t.as_ref(), max_tokens))
            .collect()
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
