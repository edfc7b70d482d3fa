//! `mtkit doctor`: the data side (the LibTorch check is tested in the mtkit-train package).

mod common;
use common::*;

#[test]
fn doctor_names_the_tokenizer() {
    let sb = Sandbox::new();
    let tok = sb.word_tokenizer("t.json", &["a"]);
    let o = sb
        .cmd(&["doctor"])
        .env("MTKIT_TOKENIZER", &tok)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout)
        .contains(&format!("tokenizer: {} (2 ids", tok.display())));
}
