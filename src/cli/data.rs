//! `mtkit data list | show | pull`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use mtkit::cli_support::args::CatalogArgs;
use mtkit::data::catalog::{Catalog, Resolved};
use mtkit::data::corpus::{cheap_count, read_documents, SampleSpec};

use mtkit::cli_support::output::table;

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Every known corpus: role, where it resolves, whether its files are present, and its
    /// document count when that is cheap to get (uncompressed jsonl, parquet, demo).
    List(CatalogArgs),
    /// A corpus's card, then its first K documents as rendered text.
    Show(ShowArgs),
    /// Download a bounded sample of a corpus from the Hugging Face Hub into the cache
    /// (HF_ENDPOINT and HF_TOKEN are honoured). Later commands read the sample when the
    /// card has no local paths.
    Pull(PullArgs),
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Corpus name.
    name: String,
    /// Documents to print.
    #[arg(short = 'n', default_value_t = 3)]
    n: u64,
    /// Fail on the first bad record (malformed JSON, missing field, invalid UTF-8, truncated
    /// stream) instead of skipping and counting it: the way to check a new corpus.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    catalog: CatalogArgs,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Corpus name (its card needs a [hub] section).
    name: String,
    /// Records to download at most.
    #[arg(long, default_value_t = 10_000)]
    max_docs: u64,
    #[command(flatten)]
    catalog: CatalogArgs,
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::List(a) => list(&a.load()?),
        DataCommand::Show(a) => show(
            &a.catalog.load_for(std::slice::from_ref(&a.name))?,
            &a.name,
            a.n,
            a.strict,
        ),
        DataCommand::Pull(a) => {
            let cat = a.catalog.load()?;
            let card = cat.get(&a.name)?;
            let p = mtkit::hf::hub::pull(card, a.max_docs)?;
            let cached = match p.from_cache {
                0 => String::new(),
                n => format!("; {n} read from Hugging Face's cache"),
            };
            println!(
                "pulled {} records of `{}` into {} ({} files{cached})",
                p.records,
                card.name,
                p.dir.display(),
                p.files.len()
            );
            Ok(())
        }
    }
}

fn list(cat: &Catalog) -> Result<()> {
    let mut rows = Vec::new();
    for card in cat.cards() {
        let (where_, present, docs) = match card.resolve() {
            Ok(Resolved::Demo(d)) => (
                format!("generated ({}, seed {})", d.kind, d.seed),
                "yes".to_string(),
                d.docs.to_string(),
            ),
            Ok(r @ Resolved::Files { .. }) => {
                let Resolved::Files { files, .. } = &r else {
                    unreachable!()
                };
                let shown = if files.len() == 1 {
                    files[0].display().to_string()
                } else {
                    format!("{} files in {}", files.len(), common_dir(files))
                };
                (
                    shown,
                    "yes".into(),
                    cheap_count(&r)
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "-".into()),
                )
            }
            Err(_) => {
                let hub = card
                    .hub
                    .as_ref()
                    .map(|h| format!("hub {} (not pulled)", h.repo))
                    .unwrap_or_else(|| "nowhere".into());
                (hub, "no".into(), "-".into())
            }
        };
        rows.push(vec![
            card.name.clone(),
            card.role.to_string(),
            present,
            docs,
            where_,
            card.origin.clone(),
        ]);
    }
    print!(
        "{}",
        table(
            &[
                "corpus",
                "role",
                "present",
                "docs",
                "resolves to",
                "card from"
            ],
            &rows
        )
    );
    Ok(())
}

fn common_dir(files: &[PathBuf]) -> String {
    let mut dir = files[0]
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    while !files.iter().all(|f| f.starts_with(&dir)) {
        if !dir.pop() {
            break;
        }
    }
    dir.display().to_string()
}

fn show(cat: &Catalog, name: &str, n: u64, strict: bool) -> Result<()> {
    let card = cat.get(name)?;
    println!("# card `{}` (from {})", card.name, card.origin);
    print!("{}", toml::to_string_pretty(card)?);
    let spec = SampleSpec {
        max_docs: None,
        strict,
        ..Default::default()
    };
    let mut shown = 0u64;
    // Stop reading once K documents are printed.
    let r = read_documents(card, &spec, &mut |d| {
        if shown >= n {
            anyhow::bail!(StopReading);
        }
        shown += 1;
        println!(
            "\n--- document {shown} (record {}) ---\n{}",
            d.index, d.text
        );
        Ok(())
    });
    match r {
        Ok(s) if s.skipped_total() > 0 => eprintln!("\n{}: {}", card.name, s.skipped_line()),
        Ok(_) => {}
        Err(e) if e.downcast_ref::<StopReading>().is_some() => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

#[derive(Debug)]
struct StopReading;

impl std::fmt::Display for StopReading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stop")
    }
}

impl std::error::Error for StopReading {}
