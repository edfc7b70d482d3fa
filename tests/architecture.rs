//! The library's modules form layers: each uses only modules listed before it in `LAYERS`, so
//! the imports have no cycles and point down the pipeline (catalog → corpus → tokenize →
//! profile → proximity → mix → …), as ARCHITECTURE.md draws it. This test reads the sources
//! (every `crate::MODULE` path outside `#[cfg(test)]` code) and names any import that points
//! the other way. Moving a module in the list is a design decision: change ARCHITECTURE.md
//! with it.

mod common;
use common::repo_root;

/// Bottom first. Leaves (no mtkit imports) come before everything.
const LAYERS: &[&str] = &[
    // leaves
    "rng",
    "paths",
    "digest",
    "numfmt",
    "memory",
    "formats",
    "template",
    "stats",
    "progress",
    "plot",
    "hf_config",
    // the pipeline
    "catalog",
    "demo",
    "corpus",
    "tokenize",
    "profile",
    "token_formats",
    "token_files",
    "proximity",
    "mix",
    "report",
    "export",
    "train",
    "hub",
    "slurm",
    // what the command lines and fuzzers share
    "cli_support",
    "fuzz",
];

fn module_of(rel: &std::path::Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .to_string();
    first.trim_end_matches(".rs").to_string()
}

#[test]
fn library_imports_point_down_the_layers() {
    let src = repo_root().join("src");
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let rank = |m: &str| LAYERS.iter().position(|x| *x == m);
    let mut wrong = Vec::new();
    let mut modules_seen = std::collections::BTreeSet::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_path_buf();
        let module = module_of(&rel);
        // The binary is above every layer.
        if module == "main" || module == "cli" || module == "lib" {
            continue;
        }
        modules_seen.insert(module.clone());
        let Some(me) = rank(&module) else {
            wrong.push(format!(
                "{}: module `{module}` is not in LAYERS",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (n, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap();
            let mut uses: Vec<String> = Vec::new();
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    // use crate::{a::X, b};
                    let inner = group.split('}').next().unwrap();
                    for item in inner.split(',') {
                        let name: String = item
                            .trim()
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        uses.push(name);
                    }
                } else {
                    uses.push(
                        rest.chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect(),
                    );
                }
            }
            for u in uses {
                if u.is_empty() || u == module || u.chars().next().unwrap().is_uppercase() {
                    continue;
                }
                match rank(&u) {
                    Some(r) if r < me => {}
                    Some(_) => wrong.push(format!(
                        "{}:{}: `{module}` uses `{u}`, which is not below it",
                        rel.display(),
                        n + 1
                    )),
                    None => {} // an item of lib.rs itself, such as VERSION
                }
            }
        }
    }
    for m in LAYERS {
        assert!(
            modules_seen.contains(*m),
            "LAYERS names `{m}`, which is not a module"
        );
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}
