//! A local HTTP server in the Hugging Face Hub's URL layout, for `data pull` and `model pull`:
//! the listing API (`/api/{models,datasets}/REPO/revision/REV`, with the commit `sha`) and
//! `resolve` downloads with what Hugging Face's clients read from them (`ETag`,
//! `X-Repo-Commit`, byte ranges with `Content-Range`).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// One repository at one revision.
pub struct HubRepo {
    /// `models` or `datasets`.
    pub kind: &'static str,
    /// `org/name`.
    pub repo: String,
    /// Branch or tag name.
    pub revision: String,
    /// The commit the revision points at (40 hex digits).
    pub commit: String,
    /// Files: path → bytes.
    pub files: Vec<(String, Vec<u8>)>,
}

/// What the server saw.
#[derive(Default)]
pub struct Seen {
    /// `Authorization` headers.
    pub auth: Vec<String>,
    /// Request paths.
    pub paths: Vec<String>,
}

/// Serves `repos`; returns the base URL and what it saw.
pub fn serve(repos: Vec<HubRepo>) -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(500) {
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
            let mut range: Option<(usize, Option<usize>)> = None;
            for line in head.lines() {
                let lower = line.to_ascii_lowercase();
                if lower.starts_with("authorization: ") {
                    log.lock().unwrap().auth.push(line[15..].to_string());
                }
                if let Some(r) = lower.strip_prefix("range: bytes=") {
                    let (a, b) = r.split_once('-').unwrap_or((r, ""));
                    range = Some((a.trim().parse().unwrap_or(0), b.trim().parse().ok()));
                }
            }
            log.lock().unwrap().paths.push(path.clone());
            let (status, headers, body) = answer(&repos, &path, range);
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
    });
    (base, seen)
}

fn answer(
    repos: &[HubRepo],
    path: &str,
    range: Option<(usize, Option<usize>)>,
) -> (&'static str, String, Vec<u8>) {
    let not_found = ("404 Not Found", String::new(), b"not found".to_vec());
    for r in repos {
        let listing = format!("/api/{}/{}/revision/{}", r.kind, r.repo, r.revision);
        if path == listing {
            let siblings: Vec<serde_json::Value> = r
                .files
                .iter()
                .map(|(f, _)| serde_json::json!({ "rfilename": f }))
                .collect();
            let body = serde_json::json!({ "id": r.repo, "sha": r.commit, "siblings": siblings });
            return ("200 OK", String::new(), serde_json::to_vec(&body).unwrap());
        }
        let prefix = if r.kind == "datasets" {
            "/datasets/"
        } else {
            "/"
        };
        let resolve = format!("{prefix}{}/resolve/{}/", r.repo, r.revision);
        if let Some(f) = path.strip_prefix(&resolve) {
            let Some((_, bytes)) = r.files.iter().find(|(n, _)| n == f) else {
                return not_found;
            };
            let etag = format!("\"{:x}\"", Sha256::digest(bytes));
            let mut headers = format!("ETag: {etag}\r\nX-Repo-Commit: {}\r\n", r.commit);
            return match range {
                None => ("200 OK", headers, bytes.clone()),
                Some((a, b)) => {
                    let last = b
                        .unwrap_or(bytes.len().saturating_sub(1))
                        .min(bytes.len() - 1);
                    headers += &format!("Content-Range: bytes {a}-{last}/{}\r\n", bytes.len());
                    (
                        "206 Partial Content",
                        headers,
                        bytes[a.min(bytes.len())..=last].to_vec(),
                    )
                }
            };
        }
    }
    not_found
}

/// Puts `files` into the Hugging Face cache at `hf_home` exactly as Python's huggingface_hub
/// lays it out (its documented cache layout): `hub/{kind}--ORG--NAME/blobs/ETAG` holding the
/// bytes, `snapshots/COMMIT/PATH` a relative link to the blob, `refs/REVISION` the commit.
pub fn fill_python_cache(
    hf_home: &std::path::Path,
    kind: &str,
    repo: &str,
    revision: &str,
    commit: &str,
    files: &[(&str, &[u8])],
) {
    let root = hf_home
        .join("hub")
        .join(format!("{kind}--{}", repo.replace('/', "--")));
    std::fs::create_dir_all(root.join("blobs")).unwrap();
    std::fs::create_dir_all(root.join("refs")).unwrap();
    std::fs::write(root.join("refs").join(revision), commit).unwrap();
    for (path, bytes) in files {
        let etag = format!("{:x}", Sha256::digest(bytes));
        std::fs::write(root.join("blobs").join(&etag), bytes).unwrap();
        let link = root.join("snapshots").join(commit).join(path);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        let depth = path.matches('/').count() + 2;
        let target = format!("{}blobs/{etag}", "../".repeat(depth));
        std::os::unix::fs::symlink(target, &link).unwrap();
    }
}
