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
    let tokens: usize = texts
        .par_iter()
        .map(|t| {
            tok.encode_fast(t.as_str(), false)
                .expect("encode")
                .get_ids()
                .len()
        })
        .sum();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"bytes\": {bytes}, \"tokens\": {tokens}, \"docs\": {}, \"seconds\": {secs:.6}, \"threads\": {}}}",
        texts.len(),
        rayon::current_num_threads()
    );
}
