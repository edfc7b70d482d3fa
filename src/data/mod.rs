//! Stage 1, data: what a corpus is and how its records become documents. Dataset cards and
//! catalogs ([`catalog`]), record-to-text templates ([`template`]), which files mtkit reads
//! ([`files`]), the built-in demo corpora ([`demo`]), and the readers with sampling and
//! sharding ([`corpus`]).

pub mod catalog;
pub mod corpus;
pub mod demo;
pub mod files;
pub mod template;
