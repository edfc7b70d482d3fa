//! Stage 5, export: what leaves mtkit for a trainer. Token files in mtkit's own format and
//! in the trainers' formats ([`tokens`], `mtkit tokenize`), a proposal as trainer configs
//! ([`emit`], `suggest-mix --emit`), and the run configs `mtkit-train` reads
//! ([`run_config`]).

pub mod emit;
pub mod run_config;
pub mod tokens;
