//! `profile --memory` holds exact 4-gram counting to its budget: on the registry's Python code
//! (distinct n-grams of about ten times the budget), the process's peak resident memory, as the
//! kernel reports it for a waited-for child (getrusage), stays under the budget plus 300 MB.
//! Alone in its test binary, so that no other child's peak is in the same figure. Measured
//! precisely, against the in-memory path, in `make bench`.

mod common;
use common::{pythia_tokenizer, shared_catalog, Sandbox};

#[test]
fn exact_four_grams_stay_within_the_memory_budget() {
    let (Some(cat), Some(tok)) = (shared_catalog(), pythia_tokenizer()) else {
        return;
    };
    let registry = cat.parent().unwrap().join("registry/catalog.toml");
    let sb = Sandbox::new();
    let out = sb.path("pydoc.parquet");
    let budget: u64 = 8 << 20;
    let o = sb
        .cmd(&[
            "profile",
            "pydoc",
            "--catalog",
            registry.to_str().unwrap(),
            "--tokenizer",
            tok.to_str().unwrap(),
            "--max-docs",
            "all",
            "--ngram",
            "4",
            "--memory",
            &budget.to_string(),
            "--quiet",
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // SAFETY: getrusage writes into the struct it is given.
    let peak = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, &mut u), 0);
        u.ru_maxrss as u64 * 1024
    };
    // The input is what the test says: counted in memory, its n-grams (32 bytes each in the
    // counters: the sorted list and its merge buffer) would take ten times the budget.
    let rows = mtkit::profile::ProfileRows::open(&out).unwrap();
    let parquet_rows = {
        let f = std::fs::File::open(&out).unwrap();
        let mut r = polars::prelude::ParquetReader::new(f);
        use polars::prelude::SerReader;
        r.num_rows().unwrap() as u64
    };
    let distinct_ids = rows.unigram.iter().filter(|&&c| c > 0).count() as u64;
    let ngrams = parquet_rows - distinct_ids;
    assert!(
        ngrams * 32 >= 10 * budget,
        "{ngrams} distinct n-grams need {} MB in memory, under ten times the budget",
        (ngrams * 32) >> 20
    );
    assert!(
        peak <= budget + (300 << 20),
        "peak RSS {} MB over the budget of {} MB + 300 MB",
        peak >> 20,
        budget >> 20
    );
    eprintln!(
        "peak RSS {} MB with --memory {} MB; {ngrams} distinct n-grams ({} MB in memory)",
        peak >> 20,
        budget >> 20,
        (ngrams * 32) >> 20
    );
}
