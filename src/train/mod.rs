//! Training runs as data: the run config that `suggest-mix --emit mtkit` writes and the
//! trainer reads. The trainer itself (LibTorch) is the `mtkit-train` package in `train/`, so
//! that the data commands never load LibTorch.

pub mod config;
