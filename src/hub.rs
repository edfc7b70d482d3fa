//! `mtkit data pull`: a bounded sample of a card's Hub files into the cache.
//!
//! Uses the Hugging Face Hub's HTTP layout: the file list from
//! `{endpoint}/api/datasets/{repo}/revision/{revision}` and each file from
//! `{endpoint}/datasets/{repo}/resolve/{revision}/{path}`. `HF_ENDPOINT` replaces the endpoint,
//! `HF_TOKEN` is sent as a bearer token. Line-based files (jsonl, optionally .gz/.zst) are
//! streamed and cut after the requested number of records; parquet and JSON-array files are
//! whole files, fetched until the count is reached. The sample lands in
//! `<cache>/hub/NAME/` only once complete.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};

use crate::catalog::Card;
use crate::formats::{Compression, Format};

/// The Hub endpoint: `HF_ENDPOINT` or huggingface.co.
pub fn endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".into())
        .trim_end_matches('/')
        .to_string()
}

fn get(url: &str) -> Result<ureq::Response> {
    let mut req = ureq::get(url).timeout(std::time::Duration::from_secs(60));
    if let Ok(tok) = std::env::var("HF_TOKEN") {
        if !tok.is_empty() {
            req = req.set("Authorization", &format!("Bearer {tok}"));
        }
    }
    match req.call() {
        Ok(r) => Ok(r),
        Err(ureq::Error::Status(code, r)) => {
            let hint = match code {
                401 | 403 => " (a gated or private dataset: accept its terms on the Hub and set HF_TOKEN)",
                404 => " (no such repository, revision or file)",
                _ => "",
            };
            bail!("{url}: HTTP {code} {}{hint}", r.status_text())
        }
        Err(ureq::Error::Transport(t)) => bail!(
            "cannot reach the Hugging Face Hub at {} ({t}); `mtkit data pull` needs network access. Offline, pass --catalog FILE with `paths` to local copies",
            endpoint()
        ),
    }
}

/// What a pull wrote.
#[derive(Debug)]
pub struct Pulled {
    /// The folder holding the sample.
    pub dir: PathBuf,
    /// Files written.
    pub files: Vec<String>,
    /// Records written (rows for parquet).
    pub records: u64,
}

/// Downloads up to `max_docs` records of `card` from the Hub into the cache.
pub fn pull(card: &Card, max_docs: u64) -> Result<Pulled> {
    let hub = card
        .hub
        .as_ref()
        .ok_or_else(|| anyhow!("corpus `{}` has no [hub] source to pull from", card.name))?;
    let ep = endpoint();
    let list_url = format!("{ep}/api/datasets/{}/revision/{}", hub.repo, hub.revision);
    let info: serde_json::Value = serde_json::from_reader(get(&list_url)?.into_reader())
        .with_context(|| format!("{list_url}: not a JSON answer"))?;
    let siblings = info["siblings"]
        .as_array()
        .ok_or_else(|| anyhow!("{list_url}: answer has no `siblings` list"))?;
    let patterns: Vec<glob::Pattern> = hub
        .files
        .iter()
        .map(|g| glob::Pattern::new(g).with_context(|| format!("bad file glob {g:?}")))
        .collect::<Result<_>>()?;
    let mut files: Vec<String> = siblings
        .iter()
        .filter_map(|s| s["rfilename"].as_str())
        .filter(|f| patterns.is_empty() || patterns.iter().any(|p| p.matches(f)))
        .filter(|f| Format::detect(std::path::Path::new(f)).is_some())
        .map(String::from)
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "{}@{}: no readable files match {:?}",
            hub.repo,
            hub.revision,
            hub.files
        );
    }
    let dir = card.pulled_dir();
    let parent = dir.parent().expect("cache path has a parent");
    std::fs::create_dir_all(parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", card.name))
        .tempdir_in(parent)?;
    let mut written = Vec::new();
    let mut records = 0u64;
    for (i, f) in files.iter().enumerate() {
        if records >= max_docs {
            break;
        }
        let url = format!("{ep}/datasets/{}/resolve/{}/{}", hub.repo, hub.revision, f);
        let path = std::path::Path::new(f);
        let (fmt, comp) = Format::detect(path).expect("filtered above");
        let base = path.file_name().unwrap().to_string_lossy().to_string();
        let reader = get(&url)?.into_reader();
        match (fmt, is_json_array(path)) {
            (Format::Jsonl, false) => {
                let name = format!(
                    "{i:05}-{}.jsonl.gz",
                    base.split('.').next().unwrap_or("part")
                );
                let out = std::fs::File::create(tmp.path().join(&name))?;
                let mut gz = flate2::write::GzEncoder::new(
                    std::io::BufWriter::new(out),
                    flate2::Compression::default(),
                );
                let dec: Box<dyn Read> = match comp {
                    Compression::None => Box::new(reader),
                    Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
                    Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
                };
                let mut lines = BufReader::new(dec);
                let mut line = Vec::new();
                while records < max_docs {
                    line.clear();
                    if lines
                        .read_until(b'\n', &mut line)
                        .with_context(|| format!("{url}: download broke off"))?
                        == 0
                    {
                        break;
                    }
                    if line.iter().all(|b| b.is_ascii_whitespace()) {
                        continue;
                    }
                    if !line.ends_with(b"\n") {
                        line.push(b'\n');
                    }
                    gz.write_all(&line)?;
                    records += 1;
                }
                gz.finish()?.flush()?;
                written.push(name);
            }
            _ => {
                let name = format!("{i:05}-{base}");
                let dest = tmp.path().join(&name);
                let mut out = std::fs::File::create(&dest)?;
                std::io::copy(&mut { reader }, &mut out)
                    .with_context(|| format!("{url}: download broke off"))?;
                let n = crate::corpus::cheap_count(&crate::catalog::Resolved::Files {
                    files: vec![dest.clone()],
                    split: Default::default(),
                })
                .unwrap_or(0);
                records += n;
                written.push(name);
            }
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot replace {}", dir.display()))?;
    }
    let kept = tmp.keep();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o755));
        for f in &written {
            crate::paths::make_readable(&kept.join(f));
        }
    }
    std::fs::rename(&kept, &dir)
        .with_context(|| format!("cannot move the sample to {}", dir.display()))?;
    Ok(Pulled {
        dir,
        files: written,
        records,
    })
}

fn is_json_array(path: &std::path::Path) -> bool {
    let n = path.to_string_lossy().to_ascii_lowercase();
    n.ends_with(".json") || n.ends_with(".json.gz") || n.ends_with(".json.zst")
}
