//! The library's folders form layers: each uses only folders listed before it in `LAYERS`, so
//! the imports have no cycles and point down the pipeline (data → tokenize → profile →
//! analysis → export), as ARCHITECTURE.md and lib.rs draw it. This test reads the sources
//! (every `crate::MODULE` path outside `#[cfg(test)] mod` blocks, wherever they stand in the
//! file) and names any import that points the other way. Moving a module in the list is a
//! design decision: change ARCHITECTURE.md with it.

mod common;
use common::repo_root;

/// Bottom first: the folders of `src/` (a file directly in `src/` counts as a folder of one).
const LAYERS: &[&str] = &[
    // leaves: import nothing of mtkit's outside util/ (checked below)
    "util",
    // the pipeline's stages, in the order data flows
    "data",
    "tokenize",
    "profile",
    "analysis",
    "export",
    // beside the stages
    "hf",
    "cluster",
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
        if rank(&module).is_none() {
            wrong.push(format!(
                "{}: module `{module}` is not in LAYERS",
                rel.display()
            ));
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for (line, msg) in violations(&module, &text) {
            wrong.push(format!("{}:{line}: {msg}", rel.display()));
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

/// The source without its `#[cfg(test)] mod NAME { ... }` blocks, each replaced by as many
/// empty lines, so line numbers stay right. Only test modules are skipped: code after one
/// (a test module in the middle of a file) is still checked.
fn without_test_modules(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_mod = trimmed.starts_with("mod ") || trimmed.starts_with("pub mod ");
        let open = trimmed.find('{');
        if !is_mod || open.is_none() || trimmed.find(';').is_some_and(|s| s < open.unwrap()) {
            // Another item under cfg(test) (or `mod x;`): kept, and checked.
            out.push_str(&rest[..at + "#[cfg(test)]".len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..at]);
        let body_start = at + "#[cfg(test)]".len() + (after.len() - trimmed.len()) + open.unwrap();
        let mut depth = 0usize;
        let mut end = rest.len();
        for (i, c) in rest[body_start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = body_start + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.extend(std::iter::repeat_n(
            '\n',
            rest[at..end].matches('\n').count(),
        ));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The imports of library module `module` that do not point down the layers, as (line,
/// message).
fn violations(module: &str, text: &str) -> Vec<(usize, String)> {
    let rank = |m: &str| LAYERS.iter().position(|x| *x == m);
    let me = rank(module).expect("a module in LAYERS");
    let code = without_test_modules(text);
    let mut wrong = Vec::new();
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
                Some(_) => wrong.push((
                    n + 1,
                    format!("`{module}` uses `{u}`, which is not below it"),
                )),
                None => {} // an item of lib.rs itself, such as VERSION
            }
        }
    }
    wrong
}

/// The checker's blind spot is closed: an import after a test module in the middle of a file
/// is still caught, while the test module's own imports are not checked.
#[test]
fn an_import_after_a_mid_file_test_module_is_caught() {
    let src = "use crate::util::paths;\n\
               #[cfg(test)]\n\
               mod tests {\n    use crate::cli_support::args;\n    fn f() { let _ = format!(\"{}\", 1); }\n}\n\
               fn later() {\n    crate::cli_support::output::table(&[], &[]);\n}\n";
    let v = violations("profile", src);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].0, 8, "{v:?}");
    assert!(v[0].1.contains("`cli_support`"), "{v:?}");
    // A cfg(test) item that is not a module is checked too.
    let v = violations(
        "profile",
        "#[cfg(test)]\nfn helper() { crate::fuzz::x(); }\n",
    );
    assert_eq!(v.len(), 1, "{v:?}");
}

/// `lib.rs` declares every folder of the layers, and ARCHITECTURE.md's tree names every file
/// of `src/` (a folder's `mod.rs` by the folder), so the drawing cannot fall behind the code.
#[test]
fn lib_and_architecture_name_every_folder_and_file() {
    let root = repo_root();
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    for m in LAYERS {
        assert!(
            lib.contains(&format!("pub mod {m};")) && lib.contains(&format!("[`{m}`]")),
            "src/lib.rs must declare and name `{m}`"
        );
    }
    let arch = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    let mut stack = vec![root.join("src")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let shown = if name == "mod.rs" {
                format!(
                    "{}/",
                    p.parent().unwrap().file_name().unwrap().to_string_lossy()
                )
            } else {
                name
            };
            if !arch.contains(&shown) {
                missing.push(p.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name: {}",
        missing.join(", ")
    );
}
