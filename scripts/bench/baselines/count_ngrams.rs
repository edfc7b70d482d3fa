//! N-gram counting alone, for `make bench`: counts orders 1..=N of every document of a token
//! shard written by `mtkit tokenize` (the closing EOS left out) with mtkit's profile counter
//! on one thread, and prints the time and a digest of the counts as JSON.
//!
//!     cargo run --release --example count_ngrams -- TOKENS_DIR/NAME [N]
//!
//! scripts/bench/reference_ngrams.py does the same with collections.Counter; the digests must
//! agree.

use std::path::Path;
use std::time::Instant;

use mtkit::export::tokens::Split;
use mtkit::profile::{unpack, Counter, NgramCounts, NgramMode};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(
        args.get(1)
            .expect("usage: count_ngrams TOKENS_DIR/NAME [N]"),
    );
    let n: usize = args.get(2).map(|a| a.parse().expect("N")).unwrap_or(4);
    let split = Split::open(dir, "train").expect("open the token file");
    let vocab = mtkit::export::tokens::read_meta(dir)
        .expect("meta.json")
        .vocab_size;
    // The documents' ids, read before the clock starts (the Python side does the same).
    let docs: Vec<Vec<u32>> = (0..split.n_docs())
        .map(|i| {
            let (start, len, _) = split.doc(i);
            (start..start + len as u64 - 1)
                .map(|k| split.token(k))
                .collect()
        })
        .collect();

    let t0 = Instant::now();
    let mut c = Counter::new(vocab, n, NgramMode::Exact);
    for d in &docs {
        c.add(d);
    }
    let c = c.finish();
    let secs = t0.elapsed().as_secs_f64();

    // Digest: per order, distinct n-grams, total and Σ count × (Σ_i (i+1)·id_i) mod 2^61 − 1,
    // a sum the Python side computes from its own tuples.
    let bits = mtkit::profile::id_bits(vocab);
    let mut orders = vec![digest(
        c.unigram
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(id, c)| (vec![id as u32], *c)),
    )];
    for (o, t) in c.ngrams.iter().enumerate() {
        let NgramCounts::Exact(m) = t else {
            unreachable!()
        };
        orders.push(digest(m.iter().map(|(k, c)| (unpack(*k, o + 2, bits), *c))));
    }
    println!(
        "{{\"seconds\": {secs:.6}, \"tokens\": {}, \"docs\": {}, \"orders\": {}}}",
        c.tokens,
        docs.len(),
        serde_json::to_string(&orders).unwrap()
    );
}

const P: u128 = (1 << 61) - 1;

fn digest(items: impl Iterator<Item = (Vec<u32>, u64)>) -> (u64, u64, u64) {
    let (mut distinct, mut total, mut sum) = (0u64, 0u64, 0u128);
    for (ids, c) in items {
        distinct += 1;
        total += c;
        let w: u128 = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (i as u128 + 1) * id as u128)
            .sum();
        sum = (sum + w * c as u128) % P;
    }
    (distinct, total, sum as u64)
}
