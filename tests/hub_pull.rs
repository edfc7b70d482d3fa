//! `mtkit data pull` against a local HTTP server that serves files in the Hub's URL layout.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// Serves `files` (path → bytes) like the Hub: the listing API and `resolve` downloads.
/// Returns the base URL and the Authorization headers seen.
fn serve(
    repo: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let auth = Arc::new(Mutex::new(Vec::new()));
    let seen = auth.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(50) {
            let Ok(mut s) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf).to_string();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            for line in head.lines() {
                if let Some(v) = line
                    .strip_prefix("authorization: ")
                    .or_else(|| line.strip_prefix("Authorization: "))
                {
                    seen.lock().unwrap().push(v.to_string());
                }
            }
            let listing = format!("/api/datasets/{repo}/revision/main");
            let prefix = format!("/datasets/{repo}/resolve/main/");
            let (status, body) = if path == listing {
                let siblings: Vec<serde_json::Value> = files
                    .iter()
                    .map(|(f, _)| serde_json::json!({ "rfilename": f }))
                    .collect();
                (
                    "200 OK",
                    serde_json::to_vec(&serde_json::json!({ "id": repo, "siblings": siblings }))
                        .unwrap(),
                )
            } else if let Some(f) = path.strip_prefix(&prefix) {
                match files.iter().find(|(n, _)| *n == f) {
                    Some((_, b)) => ("200 OK", b.clone()),
                    None => ("404 Not Found", b"not found".to_vec()),
                }
            } else {
                ("404 Not Found", b"not found".to_vec())
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
    });
    (base, auth)
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
    assert!(
        auth.lock().unwrap().iter().all(|a| a == "Bearer hf_secret")
            && !auth.lock().unwrap().is_empty()
    );
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
