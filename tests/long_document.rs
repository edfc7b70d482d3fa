//! Memory on a pathological document (issue 13, bug 11): one record of 20 MB, profiled whole
//! (--max-chars 0 --max-tokens-per-doc 0), peaks at a small multiple of its size with the fast
//! path. HF's pipeline needed about 96× the document (5.2 GB for a 54 MB record).
//!
//! Its own test binary, so that the peak RSS of this process's children is this run's.

mod common;
use common::*;

#[test]
fn a_20_mb_document_is_profiled_in_bounded_memory() {
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    // Prose with every kind of pre-token, repeated to 20 MB in one record.
    let unit = "The quick brown fox's 42 jumps  over\tthe lazy dog; naïve café — 漢字 😀.\n";
    let text: String = unit.repeat(20_000_000 / unit.len());
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
    let peak_kib = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, &mut u), 0);
        u.ru_maxrss as u64
    };
    let peak = peak_kib * 1024;
    // The record is held as read, as parsed and as the document (3×), plus 4 bytes per token
    // (1-2×), plus the process and the tokenizer (under 150 MB): the bound the README states,
    // 6× the document plus 150 MB; HF's pipeline would take ~96×.
    assert!(
        peak < 6 * size + (150 << 20),
        "peak RSS {} MB for a {} MB document",
        peak >> 20,
        size >> 20
    );
    eprintln!(
        "peak RSS {} MB for a {} MB document",
        peak >> 20,
        size >> 20
    );
}
