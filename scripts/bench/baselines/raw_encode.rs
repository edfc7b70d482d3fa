//! The tokenizer's limit, for `make bench`: encodes every `text` of a JSONL file with the
//! `tokenizers` crate alone (the same tokenizer file, allocator and rayon threads as mtkit),
//! with all texts already in memory, and prints bytes, tokens and seconds of the encode as JSON.
//!
//!     cargo run --release --example raw_encode -- TOKENIZER.json INPUT.jsonl
//!
//! `raw_encode_glibc` is the same with the system allocator, to show what the allocator buys.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "raw/encode.rs"]
mod encode;

fn main() {
    encode::main()
}
