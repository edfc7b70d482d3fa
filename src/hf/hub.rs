//! The Hugging Face Hub: `mtkit data pull` (a bounded sample of a card's files into mtkit's
//! cache) and `mtkit model pull` (a checkpoint folder in Hugging Face's own cache).
//!
//! Both go through `hf-hub`, Hugging Face's Rust client, and its cache layout under `HF_HOME`
//! (`~/.cache/huggingface/hub/{models,datasets}--ORG--NAME/snapshots/COMMIT/...`), the one
//! Python's huggingface_hub fills: a file a user already downloaded is read from there and not
//! fetched again. `HF_ENDPOINT` replaces the endpoint; `HF_TOKEN` (else the token file that
//! `huggingface-cli login` writes) is sent as a bearer token.
//!
//! One exception, for data: a line-based file (jsonl, optionally .gz/.zst) that is not in the
//! cache is streamed from `{endpoint}/datasets/{repo}/resolve/{revision}/{path}` and cut after
//! the requested number of records, since hf-hub fetches whole files and a 1,000-record sample
//! of a 20 GB shard must not download 20 GB. Parquet and JSON-array files are whole files,
//! fetched (into Hugging Face's cache) until the count is reached. The sample lands in
//! `<cache>/hub/NAME/` only once complete.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use hf_hub::api::sync::{Api, ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};

use crate::data::catalog::Card;
use crate::data::files::{Compression, Format};

/// The Hub endpoint: `HF_ENDPOINT` or huggingface.co.
pub fn endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".into())
        .trim_end_matches('/')
        .to_string()
}

fn token() -> Option<String> {
    std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty())
}

/// hf-hub's client for this environment (endpoint, HF_HOME, token).
fn api(progress: bool) -> Result<Api> {
    let mut b = ApiBuilder::from_env()
        .with_endpoint(endpoint())
        .with_progress(progress)
        .with_retries(2);
    if let Some(t) = token() {
        b = b.with_token(Some(t));
    }
    b.build()
        .map_err(|e| anyhow!("cannot set up the Hugging Face client: {e}"))
}

/// An hf-hub error as a user reads it: what failed, and what to do.
fn explain(what: &str, e: ApiError) -> anyhow::Error {
    if let ApiError::RequestError(req) = &e {
        match req.as_ref() {
            ureq::Error::Status(code, r) => return status_error(what, *code, r.status_text()),
            ureq::Error::Transport(t) => return unreachable(t),
        }
    }
    anyhow!("{what}: {e}")
}

/// An HTTP error status from the Hub, with what a user does about the common ones.
fn status_error(what: &str, code: u16, text: &str) -> anyhow::Error {
    let hint = match code {
        401 | 403 => " (gated or private: accept its terms on the Hub and set HF_TOKEN)",
        404 => " (no such repository, revision or file)",
        _ => "",
    };
    anyhow!("{what}: HTTP {code} {text}{hint}")
}

fn unreachable(t: impl std::fmt::Display) -> anyhow::Error {
    anyhow!(
        "cannot reach the Hugging Face Hub at {} ({t}); pulling needs network access. Offline, pass --catalog FILE with `paths` to local copies, or point HF_HOME at a cache that holds the files",
        endpoint()
    )
}

/// A streamed GET of one file (for bounded samples of line-based files).
fn get(url: &str) -> Result<ureq::Response> {
    let mut req = ureq::get(url).timeout(std::time::Duration::from_secs(60));
    if let Some(tok) = token() {
        req = req.set("Authorization", &format!("Bearer {tok}"));
    }
    match req.call() {
        Ok(r) => Ok(r),
        Err(ureq::Error::Status(code, r)) => Err(status_error(url, code, r.status_text())),
        Err(ureq::Error::Transport(t)) => Err(unreachable(t)),
    }
}

/// A repository's file names at a revision (the Hub's listing API).
fn list_files(api: &Api, repo: &Repo) -> Result<Vec<String>> {
    let what = format!("{}@{}", repo.url(), repo.revision());
    let info = api
        .repo(repo.clone())
        .info()
        .map_err(|e| explain(&what, e))?;
    Ok(info.siblings.into_iter().map(|s| s.rfilename).collect())
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
    /// Files read from Hugging Face's cache instead of the network.
    pub from_cache: usize,
}

/// Downloads up to `max_docs` records of `card` from the Hub into the cache.
pub fn pull(card: &Card, max_docs: u64) -> Result<Pulled> {
    let hub = card
        .hub
        .as_ref()
        .ok_or_else(|| anyhow!("corpus `{}` has no [hub] source to pull from", card.name))?;
    let ep = endpoint();
    let api = api(false)?;
    let repo = Repo::with_revision(hub.repo.clone(), RepoType::Dataset, hub.revision.clone());
    let cached = Cache::from_env().repo(repo.clone());
    let listed = list_files(&api, &repo)?;
    let patterns: Vec<glob::Pattern> = hub
        .files
        .iter()
        .map(|g| glob::Pattern::new(g).with_context(|| format!("bad file glob {g:?}")))
        .collect::<Result<_>>()?;
    let mut files: Vec<String> = listed
        .iter()
        .map(String::as_str)
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
    // Named by process and host, so that a pull killed outright is swept by the next one.
    let tmp = crate::util::paths::temp_dir_for(&dir)?;
    let mut written = Vec::new();
    let mut records = 0u64;
    let mut from_cache = 0usize;
    for (i, f) in files.iter().enumerate() {
        if records >= max_docs {
            break;
        }
        let url = format!("{ep}/datasets/{}/resolve/{}/{}", hub.repo, hub.revision, f);
        let path = std::path::Path::new(f);
        let (fmt, comp) = Format::detect(path).expect("filtered above");
        let base = path.file_name().unwrap().to_string_lossy().to_string();
        let whole_file = !matches!((fmt, is_json_array(path)), (Format::Jsonl, false));
        // Already in Hugging Face's cache: read there. A whole file not there yet: hf-hub
        // fetches it into that cache. A line-based file not there: streamed, cut at the count.
        let reader: Box<dyn Read> = match cached.get(f) {
            Some(local) => {
                from_cache += 1;
                Box::new(open_file(&local)?)
            }
            None if whole_file => {
                let local = api
                    .repo(repo.clone())
                    .get(f)
                    .map_err(|e| explain(&url, e))?;
                Box::new(open_file(&local)?)
            }
            None => Box::new(get(&url)?.into_reader()),
        };
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
                let n = crate::data::corpus::cheap_count(&crate::data::catalog::Resolved::Files {
                    files: vec![dest.clone()],
                    split: Default::default(),
                })
                .unwrap_or(0);
                records += n;
                written.push(name);
            }
        }
    }
    for f in &written {
        crate::util::paths::make_readable(&tmp.path().join(f));
    }
    // The sample folder is mtkit's own, in the cache: replaced whole, in one step.
    crate::util::paths::install_dir(tmp, &dir)
        .with_context(|| format!("cannot move the sample to {}", dir.display()))?;
    Ok(Pulled {
        dir,
        files: written,
        records,
        from_cache,
    })
}

fn open_file(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))
}

fn is_json_array(path: &std::path::Path) -> bool {
    let n = path.to_string_lossy().to_ascii_lowercase();
    n.ends_with(".json") || n.ends_with(".json.gz") || n.ends_with(".json.zst")
}

/// What `mtkit model pull` found or fetched.
#[derive(Debug)]
pub struct PulledModel {
    /// The checkpoint folder: the revision's snapshot in Hugging Face's cache.
    pub dir: PathBuf,
    /// Files of the folder, in the order taken.
    pub files: Vec<String>,
    /// How many of them were fetched (the rest were already in the cache).
    pub fetched: usize,
}

/// The files of a checkpoint folder that mtkit reads or ships: the configs, the tokenizer,
/// and the weights (one safetensors file, or an index and its shards; a pickle only where
/// there is no safetensors, so that the import can say how to convert it).
const MODEL_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// Fetches (or finds in Hugging Face's cache) the checkpoint folder of `repo` at `revision`.
/// Without network, a revision already in the cache is taken from there.
pub fn pull_model(repo_id: &str, revision: &str, progress: bool) -> Result<PulledModel> {
    let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string());
    let cached = Cache::from_env().repo(repo.clone());
    let api = api(progress)?;
    let listed = match list_files(&api, &repo) {
        Ok(l) => l,
        // Offline with the revision in the cache: its folder is the answer.
        Err(e) => match cached.get("config.json") {
            Some(config) if weights_present(config.parent().expect("in a folder")) => {
                let dir = config.parent().expect("in a folder").to_path_buf();
                let mut files: Vec<String> = std::fs::read_dir(&dir)?
                    .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect();
                files.sort();
                eprintln!("note: {e:#}; using the copy in Hugging Face's cache");
                return Ok(PulledModel {
                    dir,
                    files,
                    fetched: 0,
                });
            }
            _ => return Err(e),
        },
    };
    let has = |f: &str| listed.iter().any(|l| l == f);
    if !has("config.json") {
        bail!("{repo_id}@{revision} has no config.json: not a transformers model folder");
    }
    let mut wanted: Vec<String> = MODEL_FILES
        .iter()
        .filter(|f| has(f))
        .map(|f| f.to_string())
        .collect();
    let index = if has("model.safetensors") {
        wanted.push("model.safetensors".into());
        None
    } else if has("model.safetensors.index.json") {
        Some("model.safetensors.index.json")
    } else if has("pytorch_model.bin") {
        wanted.push("pytorch_model.bin".into());
        None
    } else if has("pytorch_model.bin.index.json") {
        Some("pytorch_model.bin.index.json")
    } else {
        bail!("{repo_id}@{revision} has no weights (model.safetensors, its index, or pytorch_model.bin)");
    };
    let mut fetched = 0;
    let mut dir: Option<PathBuf> = None;
    let mut take = |f: &str, dir: &mut Option<PathBuf>| -> Result<PathBuf> {
        if cached.get(f).is_none() {
            fetched += 1;
        }
        let path = api
            .repo(repo.clone())
            .get(f)
            .map_err(|e| explain(&format!("{repo_id}@{revision}: {f}"), e))?;
        if dir.is_none() {
            *dir = path.parent().map(Path::to_path_buf);
        }
        Ok(path)
    };
    for f in &wanted {
        take(f, &mut dir)?;
    }
    if let Some(index) = index {
        let path = take(index, &mut dir)?;
        wanted.push(index.to_string());
        let text = std::fs::read_to_string(&path)?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        let mut shards: Vec<String> = v["weight_map"]
            .as_object()
            .ok_or_else(|| anyhow!("{}: no weight_map", path.display()))?
            .values()
            .filter_map(|s| s.as_str().map(String::from))
            .collect();
        shards.sort();
        shards.dedup();
        for s in shards {
            take(&s, &mut dir)?;
            wanted.push(s);
        }
    }
    Ok(PulledModel {
        dir: dir.expect("config.json was taken"),
        files: wanted,
        fetched,
    })
}

fn weights_present(dir: &Path) -> bool {
    [
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
    ]
    .iter()
    .any(|f| dir.join(f).exists())
}
