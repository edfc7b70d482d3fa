//! The body shared by `raw_encode` and `raw_encode_glibc`.

use std::io::BufRead;
use std::time::Instant;

use rayon::prelude::*;

/// Runs the benchmark on the command line's arguments.
pub fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (tok_path, input) = match args.as_slice() {
        [_, t, i] => (t, i),
        _ => {
            eprintln!("usage: raw_encode TOKENIZER.json INPUT.jsonl");
            std::process::exit(2);
        }
    };
    let tok = tokenizers::Tokenizer::from_file(tok_path).expect("load tokenizer");
    let file = std::fs::File::open(input).expect("open input");
    let texts: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l.expect("read")).expect("json");
            v["text"].as_str().expect("text field").to_string()
        })
        .collect();
    let bytes: usize = texts.iter().map(|t| t.len()).sum();

    let start = Instant::now();
    // What a user of the crate writes: encode each text in parallel, keep the ids.
    let ids: Vec<Vec<u32>> = texts
        .par_iter()
        .map(|t| {
            tok.encode_fast(t.as_str(), false)
                .expect("encode")
                .get_ids()
                .to_vec()
        })
        .collect();
    let secs = start.elapsed().as_secs_f64();
    let tokens: usize = ids.iter().map(|d| d.len()).sum();
    // The digest the bench's peers print too (scripts/bench/peers.py): each document's id
    // count as u64 and its ids as u32, little-endian, in order.
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for d in &ids {
        h.update((d.len() as u64).to_le_bytes());
        for id in d {
            h.update(id.to_le_bytes());
        }
    }
    let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    println!(
        "{{\"bytes\": {bytes}, \"tokens\": {tokens}, \"docs\": {}, \"seconds\": {secs:.6}, \"threads\": {}, \"digest\": \"{digest}\"}}",
        texts.len(),
        rayon::current_num_threads()
    );
}
