//! Caches that cannot lie (issue 13, bug 8): a cache entry damaged anywhere is rebuilt, never
//! served or parsed; a saved profile whose counts or totals changed is refused on load.

mod common;
use common::*;

use mtkit::profile::Profile;

fn setup(sb: &Sandbox) -> (String, String) {
    let words: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    let refs: Vec<&str> = words.iter().map(|s| s.as_str()).collect();
    let tok = sb.word_tokenizer("tok.json", &refs).display().to_string();
    let docs: Vec<String> = (0..60)
        .map(|d| {
            (0..30)
                .map(|k| format!("w{}", (d * 7 + k * k) % 40))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    sb.jsonl(
        "c.jsonl",
        &docs.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    );
    let cat = sb
        .write(
            "cat.toml",
            "[datasets.c]\nrole = \"pretrain\"\npaths = [\"c.jsonl\"]\n",
        )
        .display()
        .to_string();
    (tok, cat)
}

#[test]
fn a_damaged_cache_entry_is_rebuilt_wherever_the_damage() {
    let sb = Sandbox::new();
    let (tok, cat) = setup(&sb);
    let args = [
        "profile",
        "c",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--ngram",
        "2",
    ];
    let first = sb.ok(&args);
    assert!(first.contains("computed"));
    assert!(sb.ok(&args).contains(" cache "));
    let dir = sb.path("cache/profiles");
    let entry = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let good = std::fs::read(&entry).unwrap();
    let original = Profile::load(&entry).unwrap();
    let row = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("c "))
            .unwrap()
            .to_string()
    };
    // One flipped bit at 40 places spread over the file, each time in a good entry.
    for pos in (0..good.len()).step_by(good.len() / 40 + 1) {
        let mut bad = good.clone();
        bad[pos] ^= 1 << (pos % 8);
        std::fs::write(&entry, &bad).unwrap();
        let out = sb.ok(&args);
        assert!(
            out.contains("computed"),
            "damaged at byte {pos}, yet: {out}"
        );
        assert_eq!(row(&out), row(&first));
        let p = Profile::load(&entry).unwrap();
        assert_eq!(
            (&p.unigram, &p.ngrams, &p.totals),
            (&original.unigram, &original.ngrams, &original.totals)
        );
    }
    // An entry whose checksum file is gone is rebuilt too.
    std::fs::remove_file(entry.with_extension("parquet.sha256")).unwrap();
    assert!(sb.ok(&args).contains("computed"));
}

#[test]
fn a_saved_profile_with_changed_totals_is_refused() {
    let sb = Sandbox::new();
    let (tok, cat) = setup(&sb);
    sb.ok(&[
        "profile",
        "c",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--ngram",
        "2",
        "-o",
        "p.parquet",
        "-q",
    ]);
    let p = Profile::load(&sb.path("p.parquet")).unwrap();
    // The totals live in the metadata JSON: change the token total's last digit, keeping valid
    // JSON and the file's length.
    let good = std::fs::read(sb.path("p.parquet")).unwrap();
    let needle = format!("\"tokens\":{}", p.totals.tokens);
    let at = good
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("totals in the metadata")
        + needle.len()
        - 1;
    let mut bad = good.clone();
    bad[at] = if bad[at] == b'9' { b'8' } else { bad[at] + 1 };
    let path = sb.write("changed.parquet", &bad);
    let e = Profile::load(&path).expect_err("refused").to_string();
    assert!(e.contains("do not match its checksum"), "{e}");
}
