//! `mtkit check-encoder NAME...`: the fast path's ids against HF tokenizers', per document.

use anyhow::{bail, Result};
use clap::Args;

use mtkit::tokenize::check::compare_engines;
use mtkit::tokenize::EngineChoice;

use super::CorpusArgs;
use mtkit::cli_support::bar::Bar;
use mtkit::cli_support::output::table;

/// Check that the fast encoder gives HF tokenizers' ids on your corpora.
///
/// Encodes every sampled document twice, with mtkit's fast path and with HF tokenizers' full
/// pipeline, and compares the ids of each document in full (cut to --max-tokens-per-doc as
/// profiles cut them; 0 compares whole documents). Exits non-zero, naming the first record
/// and token position that differ, if any document differs. The sampling defaults are
/// profiles' (1000 documents, 10,000 characters, 512 tokens): pass `--max-docs all
/// --max-chars 0 --max-tokens-per-doc 0` to check a whole corpus.
#[derive(Args, Debug)]
pub struct CheckEncoderArgs {
    /// Corpora to check.
    #[arg(required = true)]
    names: Vec<String>,
    #[command(flatten)]
    corpus: CorpusArgs,
}

pub fn run(mut a: CheckEncoderArgs) -> Result<()> {
    let cat = a.corpus.catalog_for(&a.names)?;
    let cards = cat.get_all(&a.names)?;
    if a.corpus.tokenizer.encoder == EngineChoice::Hf {
        bail!("check-encoder compares the fast path with HF's pipeline: drop --encoder hf");
    }
    a.corpus.tokenizer.encoder = EngineChoice::Fast;
    let tok = a.corpus.tokenizer.load()?;
    let bar = Bar::new(a.corpus.quiet);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for card in cards {
        let c = compare_engines(card, &tok, &a.corpus.sample(), a.corpus.max_tokens(), &bar)?;
        rows.push(vec![
            card.name.clone(),
            c.documents.to_string(),
            c.tokens.to_string(),
            c.bytes.to_string(),
            c.mismatched_documents.to_string(),
        ]);
        if let Some(m) = c.first {
            failures.push(format!(
                "{}: {} of {} documents differ; first: record {}, token {}: fast {:?} vs hf {:?}",
                card.name, c.mismatched_documents, c.documents, m.record, m.position, m.fast, m.hf
            ));
        }
    }
    print!(
        "{}",
        table(
            &[
                "corpus",
                "documents",
                "tokens",
                "bytes",
                "differing documents"
            ],
            &rows
        )
    );
    if !failures.is_empty() {
        bail!(
            "the fast path differs from HF tokenizers:\n{}",
            failures.join("\n")
        );
    }
    println!(
        "identical: every document's ids equal HF tokenizers' ({})",
        tok.path.display()
    );
    Ok(())
}
