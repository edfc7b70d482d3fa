//! mtkit: the data side of language-model midtraining.
//!
//! The folders are the pipeline's stages, in the order data flows; each uses only the folders
//! listed above it (`tests/architecture.rs` checks it, ARCHITECTURE.md draws it):
//!
//! 0. [`util`]: leaves any stage may use (seeded rng, atomic writes, digests, number format,
//!    memory limits and sizes, progress and interrupts, polars made safe).
//! 1. [`data`]: dataset cards and catalogs, templates, corpus files and readers, demo corpora.
//! 2. [`tokenize`]: the tokenizer (HF-identical ids, the fast path) and read → tokenize.
//! 3. [`profile`]: token and exact n-gram counts of a corpus, spilled to disk over a budget.
//! 4. [`analysis`]: proximity and its advantage, mixture proposals, regressions, tables, plots.
//! 5. [`export`]: token files for the trainers, proposals as trainer configs, run configs.
//!
//! Beside the stages: [`hf`] (the Hugging Face Hub and checkpoint folders), [`cluster`]
//! (Slurm), [`cli_support`] (what the two command lines share) and [`fuzz`] (entry points of
//! the fuzzers). The binary in `src/main.rs` and `src/cli/` (one file per subcommand) is a thin
//! layer over this library; the trainer is the `mtkit-train` crate in `train/`, the Python
//! package the crate in `python/`.

pub mod util;

pub mod data;

pub mod tokenize;

pub mod profile;

pub mod analysis;

pub mod export;

pub mod cluster;
pub mod hf;

pub mod cli_support;
pub mod fuzz;

/// mtkit's version, recorded in every profile and output.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
