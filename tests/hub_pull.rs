//! `mtkit data pull` against a local HTTP server that serves files in the Hub's URL layout
//! (tests/common/hub_server.rs), and from a Hugging Face cache filled as Python's
//! huggingface_hub fills it.

mod common;
use common::*;
use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Serves `files` as the dataset `repo` at revision main (the common Hub-layout server).
fn serve(
    repo: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
) -> (String, Arc<Mutex<hub_server::Seen>>) {
    hub_server::serve(vec![hub_server::HubRepo {
        kind: "datasets",
        repo: repo.into(),
        revision: "main".into(),
        commit: COMMIT.into(),
        files: files.into_iter().map(|(n, b)| (n.to_string(), b)).collect(),
    }])
}

fn gz(s: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(s.as_bytes()).unwrap();
    e.finish().unwrap()
}

#[test]
fn pull_downloads_a_bounded_sample_that_later_commands_read() {
    let part0: String = (0..4)
        .map(|i| format!("{{\"content\":\"doc {i}\"}}\n"))
        .collect();
    let part1: String = (4..10)
        .map(|i| format!("{{\"content\":\"doc {i}\"}}\n"))
        .collect();
    let (base, auth) = serve(
        "org/code",
        vec![
            ("data/train-0.jsonl.gz", gz(&part0)),
            ("data/train-1.jsonl.gz", gz(&part1)),
            ("README.md", b"# readme".to_vec()),
        ],
    );
    let sb = Sandbox::new();
    let cat = sb.write("cat.toml", "[datasets.remote]\nrole = \"midtrain\"\ntext = \"{content}\"\n[datasets.remote.hub]\nrepo = \"org/code\"\nfiles = [\"data/*.jsonl.gz\"]\n");
    let cat = cat.to_str().unwrap();
    let err = sb.fails(&["data", "show", "remote", "--catalog", cat]);
    assert!(err.contains("mtkit data pull remote"), "{err}");
    let o = sb
        .cmd(&[
            "data",
            "pull",
            "remote",
            "--max-docs",
            "6",
            "--catalog",
            cat,
        ])
        .env("HF_ENDPOINT", &base)
        .env("HF_TOKEN", "hf_secret")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("pulled 6 records of `remote`"));
    let seen = auth.lock().unwrap();
    assert!(seen.auth.iter().all(|a| a == "Bearer hf_secret") && !seen.auth.is_empty());
    drop(seen);
    let out = sb.ok(&["data", "show", "remote", "--catalog", cat, "-n", "10"]);
    let shown: Vec<&str> = out.lines().filter(|l| l.starts_with("doc ")).collect();
    assert_eq!(
        shown,
        ["doc 0", "doc 1", "doc 2", "doc 3", "doc 4", "doc 5"]
    );
}

#[test]
fn pull_offline_and_missing_repo_fail_clearly() {
    let sb = Sandbox::new();
    let cat = sb.write(
        "cat.toml",
        "[datasets.remote]\nrole = \"midtrain\"\n[datasets.remote.hub]\nrepo = \"org/none\"\n",
    );
    let cat = cat.to_str().unwrap();
    // A closed port stands for no network.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = sb
        .cmd(&["data", "pull", "remote", "--catalog", cat])
        .env("HF_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot reach the Hugging Face Hub") && err.contains("--catalog"),
        "{err}"
    );
    let (base, _) = serve("org/other", vec![]);
    let o = sb
        .cmd(&["data", "pull", "remote", "--catalog", cat])
        .env("HF_ENDPOINT", &base)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("HTTP 404"), "{err}");
}

/// Files a user already downloaded with Python's huggingface_hub (in HF_HOME's cache layout)
/// are read from there: the server is asked for the listing only, never for those files.
#[test]
fn pull_reads_files_already_in_the_hugging_face_cache() {
    let shard: String = (0..5)
        .map(|i| format!("{{\"content\":\"cached {i}\"}}\n"))
        .collect();
    let shard = gz(&shard);
    let (base, seen) = serve("org/cached", vec![("data/train-0.jsonl.gz", shard.clone())]);
    let sb = Sandbox::new();
    hub_server::fill_python_cache(
        &sb.path("hf-home"),
        "datasets",
        "org/cached",
        "main",
        COMMIT,
        &[("data/train-0.jsonl.gz", &shard)],
    );
    let cat = sb.write("cat.toml", "[datasets.remote]\nrole = \"midtrain\"\ntext = \"{content}\"\n[datasets.remote.hub]\nrepo = \"org/cached\"\n");
    let cat = cat.to_str().unwrap();
    let o = sb
        .cmd(&["data", "pull", "remote", "--catalog", cat])
        .env("HF_ENDPOINT", &base)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("pulled 5 records") && said.contains("1 read from Hugging Face's cache"),
        "{said}"
    );
    let paths = seen.lock().unwrap().paths.clone();
    assert!(paths.iter().all(|p| !p.contains("/resolve/")), "{paths:?}");
    let out = sb.ok(&["data", "show", "remote", "--catalog", cat, "-n", "10"]);
    assert_eq!(out.lines().filter(|l| l.starts_with("cached ")).count(), 5);
}

/// A parquet file is a whole file: hf-hub fetches it into Hugging Face's cache (its blob and
/// snapshot link), and the sample is read from there.
#[test]
fn pull_fetches_whole_files_into_the_hugging_face_cache() {
    let sb = Sandbox::new();
    let parquet = {
        use polars::prelude::*;
        let mut df = df!("text" => ["one parquet row", "another", "a third"]).unwrap();
        let mut buf = Vec::new();
        ParquetWriter::new(&mut buf).finish(&mut df).unwrap();
        buf
    };
    let (base, _) = serve("org/pq", vec![("data/train.parquet", parquet.clone())]);
    let cat = sb.write(
        "cat.toml",
        "[datasets.remote]\nrole = \"midtrain\"\n[datasets.remote.hub]\nrepo = \"org/pq\"\n",
    );
    let o = sb
        .cmd(&["data", "pull", "remote", "--catalog", cat.to_str().unwrap()])
        .env("HF_ENDPOINT", &base)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("pulled 3 records"));
    let snap = sb
        .path("hf-home/hub/datasets--org--pq/snapshots")
        .join(COMMIT)
        .join("data/train.parquet");
    assert_eq!(std::fs::read(&snap).unwrap(), parquet);
    assert_eq!(
        std::fs::read_to_string(sb.path("hf-home/hub/datasets--org--pq/refs/main")).unwrap(),
        COMMIT
    );
}
