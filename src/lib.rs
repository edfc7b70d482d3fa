//! mtkit: the data side of language-model midtraining.
//!
//! The flow, each module using only those above it:
//! [`catalog`] (dataset cards) → [`corpus`] (readers, sampling) → [`tokenize`] →
//! [`profile`] (token and n-gram counts) → [`proximity`] (similarities, proximity advantage).
//! Leaves that anything may use: [`rng`], [`paths`], [`digest`], [`numfmt`], [`memory`], [`formats`], [`template`],
//! [`stats`], [`progress`], [`plot`]. `tests/architecture.rs` checks that imports follow these layers.
//! The binary in `src/main.rs` and `src/cli/` is a thin layer over this library.

pub mod catalog;
pub mod cli_support;
pub mod corpus;
pub mod demo;
pub mod digest;
pub mod export;
pub mod formats;
pub mod fuzz;
pub mod hf_config;
pub mod hub;
pub mod memory;
pub mod mix;
pub mod numfmt;
pub mod paths;
pub mod plot;
pub mod profile;
pub mod progress;
pub mod proximity;
pub mod report;
pub mod rng;
pub mod slurm;
pub mod stats;
pub mod template;
pub mod token_files;
pub mod token_formats;
pub mod tokenize;
pub mod train;

/// mtkit's version, recorded in every profile and output.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
