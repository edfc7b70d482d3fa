//! The fast encoder gives exactly HF tokenizers' ids: on random strings drawn from hostile
//! cases, on every Unicode code point, on every demo and shared corpus (document by document),
//! with token cuts anywhere, and in token shards byte for byte.
//!
//! The reference is always HF tokenizers' own `encode` (through `Tokenizer::encode_hf`), never
//! a recorded output of the fast path.

mod common;
use common::*;

use mtkit::tokenize::{Engine, EngineChoice, Tokenizer};

/// A small deterministic generator (splitmix64), so failures reproduce from the seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces of hostile text: the cases the issue lists, and neighbours of each.
const ALPHABET: &[&str] = &[
    // letters, digits, punctuation
    "a",
    "Z",
    "word",
    " the",
    "Hello",
    "x",
    "0",
    "42",
    "123456",
    "3.14",
    "!",
    "?",
    ".",
    ",",
    "...",
    "--",
    "()",
    "{}",
    "=>",
    "#",
    "@",
    "$",
    "\\",
    "\"",
    "_",
    "/",
    "*",
    "%",
    // contractions in every case and quote style
    "'s",
    "'S",
    "'t",
    "'T",
    "'re",
    "'RE",
    "'Re",
    "'ve",
    "'VE",
    "'m",
    "'M",
    "'ll",
    "'LL",
    "'d",
    "'D",
    "’s",
    "’S",
    "‘",
    "’",
    "'",
    "''",
    "'x",
    "`",
    "´s",
    // spaces and whitespace of every kind
    " ",
    " ",
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    "\r",
    "\x0b",
    "\x0c",
    "\u{a0}",
    "\u{2009}",
    "\u{3000}",
    "\u{2028}",
    "\u{2029}",
    "\u{85}",
    "\u{feff}",
    "\u{200b}",
    "\u{1680}",
    "\u{202f}",
    "\u{205f}",
    "\u{180e}",
    // added tokens of GPT-NeoX, whole and broken
    "<|endoftext|>",
    "<|padding|>",
    "<|endoftext",
    "endoftext|>",
    "<|",
    "|>",
    "|||EMAIL_ADDRESS|||",
    "|||PHONE_NUMBER|||",
    "|||IP_ADDRESS|||",
    "|||",
    // NFC: composed, decomposed, singletons, compatibility characters NFC keeps
    "é",
    "e\u{301}",
    "\u{301}",
    "\u{212b}",
    "\u{2126}",
    "\u{fb01}",
    "ﬀ",
    "Å",
    "A\u{30a}",
    ">\u{338}",
    "<\u{338}",
    "\u{1100}\u{1161}",
    "\u{1100}",
    "\u{1161}\u{11a8}",
    "가",
    "\u{0344}",
    "\u{0958}",
    "ǅ",
    "ℌ",
    "²",
    "½",
    "①",
    "Ⅻ",
    "٣",
    "۴",
    "߀",
    // emoji with joiners and modifiers
    "😀",
    "👨\u{200d}👩\u{200d}👧",
    "🏳\u{fe0f}\u{200d}🌈",
    "👍🏽",
    "\u{200d}",
    "\u{fe0f}",
    // CJK, right-to-left, Indic, Thai
    "漢字",
    "日本語",
    "한국어",
    "שלום",
    "مرحبا",
    "مَرْحَبًا",
    "\u{200f}",
    "\u{202e}",
    "नमस्ते",
    "สวัสดี",
    "ꙮ",
    // controls, private use, astral letters, recent Unicode
    "\x00",
    "\x1f",
    "\x7f",
    "\u{e000}",
    "\u{10fffd}",
    "𝔘𝔫𝔦",
    "𐍈",
    "\u{1e4d0}",
    "\u{11f04}",
    "\u{1fae8}",
    "\u{10d40}",
    "\u{31350}",
];

fn random_text(g: &mut Gen) -> String {
    let mut s = String::new();
    for _ in 0..1 + g.below(40) {
        match g.below(20) {
            // long words, long digit runs, long punctuation, long space runs
            0 => s.push_str(&"a".repeat(200 + g.below(200))),
            1 => s.push_str(&"7".repeat(1 + g.below(300))),
            2 => s.push_str(&"=".repeat(1 + g.below(300))),
            3 => s.push_str(&" ".repeat(1 + g.below(60))),
            4 => s.push_str(&"é".repeat(1 + g.below(150))),
            _ => s.push_str(ALPHABET[g.below(ALPHABET.len())]),
        }
    }
    s
}

fn pythia(engine: EngineChoice) -> Option<Tokenizer> {
    let p = pythia_tokenizer()?;
    Some(Tokenizer::load_with(Some(&p), engine).unwrap())
}

fn assert_same(tok: &Tokenizer, text: &str, cut: Option<usize>) {
    let hf = tok.encode_hf(text, cut).unwrap();
    let fast = tok.encode(text, cut).unwrap();
    assert_eq!(fast, hf, "text {text:?}, cut {cut:?}");
}

#[test]
fn the_pythia_tokenizer_takes_the_fast_path() {
    let Some(tok) = pythia(EngineChoice::Auto) else {
        return;
    };
    assert_eq!(tok.engine(), Engine::Fast);
    // Hand-checked against the published GPT-NeoX vocabulary (setup notes).
    assert_eq!(
        tok.encode("def hello(): return 1", None).unwrap(),
        [1545, 23120, 14850, 1091, 337]
    );
    // Two spaces are the added token 50276, split out before the pattern.
    let ids = tok.encode("a  b", None).unwrap();
    assert!(ids.contains(&50276), "{ids:?}");
    assert_eq!(tok.encode("<|endoftext|>", None).unwrap(), [0]);
}

#[test]
fn random_hostile_strings_encode_identically_with_any_cut() {
    let Some(tok) = pythia(EngineChoice::Fast) else {
        return;
    };
    let mut g = Gen(0x6d74_6b69_7400_0011);
    for _ in 0..6000 {
        let text = random_text(&mut g);
        assert_same(&tok, &text, None);
        let n = tok.encode_hf(&text, None).unwrap().len();
        let cut = g.below(n + 2);
        assert_same(&tok, &text, Some(cut));
    }
}

/// Every Unicode scalar value, in a few contexts each, against HF's pipeline.
#[test]
fn every_code_point_encodes_identically() {
    let Some(tok) = pythia(EngineChoice::Fast) else {
        return;
    };
    use rayon::prelude::*;
    let chars: Vec<char> = (0..=0x10FFFFu32).filter_map(char::from_u32).collect();
    chars.par_chunks(512).for_each(|chunk| {
        let mut s = String::new();
        for &c in chunk {
            // alone, after a letter, after a space, before a digit, after an apostrophe
            s.push(c);
            s.push('a');
            s.push(c);
            s.push(' ');
            s.push(c);
            s.push('1');
            s.push('\'');
            s.push(c);
            s.push(c);
            s.push(' ');
        }
        let hf = tok.encode_hf(&s, None).unwrap();
        let fast = tok.encode(&s, None).unwrap();
        if fast != hf {
            // Find the character that differs, for a useful message.
            for &c in chunk {
                let one = format!("{c}a{c} {c}1'{c}{c} ");
                assert_same(&tok, &one, None);
            }
            panic!("chunk starting at U+{:04X} differs", chunk[0] as u32);
        }
    });
}

/// Variants of the tokenizer.json: no normalizer with a prefix space (covered), and
/// structures the fast path does not cover (declined with the reason, HF's pipeline used).
#[test]
fn tokenizer_variants_are_covered_exactly_or_declined() {
    let Some(path) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let base: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();

    let mut v = base.clone();
    v["normalizer"] = serde_json::Value::Null;
    v["pre_tokenizer"]["add_prefix_space"] = true.into();
    let p = sb.write("prefix.json", serde_json::to_vec(&v).unwrap());
    let tok = Tokenizer::load_with(Some(&p), EngineChoice::Fast).unwrap();
    let mut g = Gen(7);
    for _ in 0..1500 {
        let text = random_text(&mut g);
        assert_same(&tok, &text, None);
    }

    let mut v = base.clone();
    v["normalizer"] = serde_json::json!({"type": "Lowercase"});
    let p = sb.write("lower.json", serde_json::to_vec(&v).unwrap());
    let tok = Tokenizer::load(Some(&p)).unwrap();
    assert_eq!(tok.engine(), Engine::Hf);
    let why = tok.fast_path_declined.clone().unwrap();
    assert!(why.contains("Lowercase"), "{why}");
    let e = Tokenizer::load_with(Some(&p), EngineChoice::Fast)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("Lowercase") && e.contains("--encoder"), "{e}");

    let mut v = base;
    v["added_tokens"][0]["lstrip"] = true.into();
    let p = sb.write("lstrip.json", serde_json::to_vec(&v).unwrap());
    let tok = Tokenizer::load(Some(&p)).unwrap();
    assert_eq!(tok.engine(), Engine::Hf);
    assert!(tok
        .fast_path_declined
        .as_deref()
        .unwrap()
        .contains("lstrip"));
}

#[test]
fn check_encoder_passes_on_every_demo_corpus() {
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let t = tok.to_str().unwrap();
    let out = sb.ok(&[
        "check-encoder",
        "demo-web",
        "demo-code",
        "demo-docstring",
        "demo-math",
        "demo-qa",
        "--tokenizer",
        t,
        "--max-docs",
        "all",
        "--max-chars",
        "0",
        "--max-tokens-per-doc",
        "0",
        "-q",
    ]);
    assert!(out.contains("identical"), "{out}");
    // Each corpus line: name, documents, tokens, bytes, 0 differing.
    for name in [
        "demo-web",
        "demo-code",
        "demo-docstring",
        "demo-math",
        "demo-qa",
    ] {
        let line = out.lines().find(|l| l.starts_with(name)).unwrap();
        assert!(line.trim_end().ends_with(" 0"), "{line}");
    }
}

#[test]
fn check_encoder_passes_on_every_shared_corpus() {
    let (Some(tok), Some(cat)) = (pythia_tokenizer(), shared_catalog()) else {
        return;
    };
    let sb = Sandbox::new();
    let names = [
        "c4",
        "starcoder",
        "codesearchnet",
        "gsm8k",
        "gsm8k-test",
        "math",
        "flan",
        "p3",
        "dolly",
        "sciq",
    ];
    let mut args = vec!["check-encoder"];
    args.extend(names);
    args.extend([
        "--catalog",
        cat.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--max-docs",
        "all",
        "--max-chars",
        "0",
        "--max-tokens-per-doc",
        "0",
        "-q",
    ]);
    let out = sb.ok(&args);
    for name in names {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        assert!(line.trim_end().ends_with(" 0"), "{line}");
    }
}

#[test]
fn token_shards_are_byte_identical_with_either_encoder() {
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let t = tok.to_str().unwrap();
    for (engine, dir) in [("hf", "hf"), ("fast", "fast")] {
        sb.ok(&[
            "tokenize",
            "demo-web",
            "demo-docstring",
            "--tokenizer",
            t,
            "--encoder",
            engine,
            "-o",
            dir,
            "-q",
        ]);
    }
    for corpus in ["demo-web", "demo-docstring"] {
        for f in ["train.tokens", "train.docs", "val.tokens", "val.docs"] {
            let a = std::fs::read(sb.path(&format!("hf/{corpus}/{f}"))).unwrap();
            let b = std::fs::read(sb.path(&format!("fast/{corpus}/{f}"))).unwrap();
            assert!(a.len() > 32, "{corpus}/{f} is empty");
            assert!(a == b, "{corpus}/{f} differs between the engines");
        }
    }
}

#[test]
fn profiles_say_which_encoder_ran() {
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let t = tok.to_str().unwrap();
    let o = sb
        .cmd(&[
            "profile",
            "demo-web",
            "--tokenizer",
            t,
            "--ngram",
            "2",
            "-o",
            "f.parquet",
            "-v",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("encoder: fast"), "{err}");
    sb.ok(&[
        "profile",
        "demo-web",
        "--tokenizer",
        t,
        "--ngram",
        "2",
        "--encoder",
        "hf",
        "-o",
        "h.parquet",
        "-q",
    ]);
    let f = mtkit::profile::Profile::load(&sb.path("f.parquet")).unwrap();
    let h = mtkit::profile::Profile::load(&sb.path("h.parquet")).unwrap();
    assert_eq!(f.meta.encoder, Engine::Fast);
    assert_eq!(h.meta.encoder, Engine::Hf);
    assert_eq!(f.unigram, h.unigram);
    assert_eq!(f.ngrams, h.ngrams);
    assert_eq!(f.totals, h.totals);
}

/// Pre-tokens longer than two windows (a long run of letters, digits, base64, minified JSON,
/// a repeated word) are encoded window by window in bounded memory, and give HF's ids, which
/// HF computes on the whole pre-token.
#[test]
fn long_pre_tokens_encode_identically_in_windows() {
    let Some(tok) = pythia(EngineChoice::Fast) else {
        return;
    };
    let window = mtkit::tokenize::fast::LONG_PIECE_WINDOW;
    let mut g = Gen(0x5eed);
    let base64: String = (0..5 * window)
        .map(|_| {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[g.below(64)] as char
        })
        .collect();
    let digits: String = (0..3 * window)
        .map(|_| (b'0' + g.below(10) as u8) as char)
        .collect();
    let json: String = (0..window / 4)
        .map(|i| format!("{{\"k{i}\":[{},{}]}},", i * 7, i % 13))
        .collect::<String>()
        .replace(' ', "");
    let texts = [
        "x".repeat(6 * window),
        base64,
        digits,
        "abracadabra".repeat(window / 2),
        "Ünïcödé".repeat(window / 3),
        json,
    ];
    for t in &texts {
        assert!(t.len() > 2 * window);
        let (hf, fast) = (
            tok.encode_hf(t, None).unwrap(),
            tok.encode(t, None).unwrap(),
        );
        let first = hf.iter().zip(&fast).position(|(a, b)| a != b);
        assert!(
            hf == fast,
            "{}…: {} ids from HF, {} from the fast path, first difference at {first:?}",
            &t[..40],
            hf.len(),
            fast.len()
        );
    }
}
