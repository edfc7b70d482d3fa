//! Memory on a document that is one pre-token (issue 23, item 9): a record holding a 16 MB
//! string without a space or a punctuation mark, profiled whole (--max-chars 0
//! --max-tokens-per-doc 0). HF's BPE holds about 50 bytes per byte of a pre-token (a 200 MB
//! one took 10.3 GB before mtkit encoded long pre-tokens in windows); the README's bound is 6×
//! the document plus 150 MB. The ids are HF's (tests/encoder_identity.rs checks the windows).
//!
//! Its own test binary, so that the peak RSS of this process's children is this run's.

mod common;
use common::*;

#[test]
fn a_16_mb_pre_token_is_profiled_in_bounded_memory() {
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    // base64-like letters and digits: one pre-token of letters would split at the digits, so
    // letters only, in a pseudo-random order that gives BPE real merges to do.
    let mut x = 12345u64;
    let text: String = (0..16 << 20)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            (b'a' + ((x >> 33) % 26) as u8) as char
        })
        .collect();
    let size = text.len() as u64;
    sb.jsonl("big.jsonl", &[text.as_str()]);
    let cat = sb.write(
        "cat.toml",
        "[datasets.big]\nrole = \"pretrain\"\npaths = [\"big.jsonl\"]\n",
    );
    let out = sb.ok(&[
        "profile",
        "big",
        "--catalog",
        cat.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--max-chars",
        "0",
        "--max-tokens-per-doc",
        "0",
        "--ngram",
        "1",
    ]);
    let row = out.lines().find(|l| l.starts_with("big ")).unwrap();
    assert_eq!(row.split_whitespace().nth(1), Some("1"), "{row}");
    // SAFETY: getrusage only fills the struct.
    let peak = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, &mut u), 0);
        u.ru_maxrss as u64 * 1024
    };
    assert!(
        peak < 6 * size + (150 << 20),
        "peak RSS {} MB for a {} MB pre-token",
        peak >> 20,
        size >> 20
    );
    eprintln!(
        "peak RSS {} MB for a {} MB pre-token",
        peak >> 20,
        size >> 20
    );
}
