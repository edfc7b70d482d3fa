//! The documentation cannot rot silently: every relative link in README.md, ARCHITECTURE.md
//! and docs/*.md resolves (a file that exists; an anchor that is a heading of it), and every
//! `mtkit` command they show, in a shell block or an inline code span, names real
//! subcommands and flags, checked against the real binary's `--help`.

mod common;
use common::{docs_pages, mtkit_binary, repo_root};

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

fn pages() -> Vec<PathBuf> {
    let root = repo_root();
    let mut v = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    v.extend(docs_pages());
    v
}

/// GitHub's anchor of a heading: lower case, spaces to `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The page's lines outside fenced code blocks, and its code blocks as (info string, lines).
struct Parsed {
    prose: Vec<(usize, String)>,
    blocks: Vec<(String, Vec<(usize, String)>)>,
}

fn parse(text: &str) -> Parsed {
    let mut prose = Vec::new();
    let mut blocks = Vec::new();
    let mut current: Option<(String, Vec<(usize, String)>)> = None;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if let Some(info) = t.strip_prefix("```") {
            match current.take() {
                Some(b) => blocks.push(b),
                None => current = Some((info.trim().to_string(), Vec::new())),
            }
            continue;
        }
        match &mut current {
            Some((_, lines)) => lines.push((n + 1, line.to_string())),
            None => prose.push((n + 1, line.to_string())),
        }
    }
    Parsed { prose, blocks }
}

#[test]
fn every_relative_link_resolves() {
    let mut wrong = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let parsed = parse(&text);
        for (n, line) in &parsed.prose {
            let mut rest = line.as_str();
            while let Some(i) = rest.find("](") {
                rest = &rest[i + 2..];
                let Some(end) = rest.find(')') else { break };
                let target = &rest[..end];
                rest = &rest[end..];
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, frag) = match target.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (target, None),
                };
                let path = if file.is_empty() {
                    page.clone()
                } else {
                    page.parent().unwrap().join(file)
                };
                let at = format!("{}:{n}", page.strip_prefix(repo_root()).unwrap().display());
                if !path.exists() {
                    wrong.push(format!("{at}: link to {target}: no such file"));
                    continue;
                }
                if let Some(frag) = frag {
                    let heads: BTreeSet<String> = std::fs::read_to_string(&path)
                        .map(|t| {
                            parse(&t)
                                .prose
                                .iter()
                                .filter(|(_, l)| l.starts_with('#'))
                                .map(|(_, l)| anchor(l.trim_start_matches('#')))
                                .collect()
                        })
                        .unwrap_or_default();
                    if !heads.contains(frag) {
                        wrong.push(format!("{at}: link to {target}: no heading #{frag}"));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "broken links:\n{}", wrong.join("\n"));
}

/// The `--help` of `mtkit` and its subcommands, asked once each.
struct Helps {
    bin: PathBuf,
    cache: BTreeMap<Vec<String>, Option<String>>,
}

impl Helps {
    /// The help text of `mtkit PATH... --help`; None when the program cannot give it (the
    /// trainer's commands without `mtkit-train` beside `mtkit`).
    fn of(&mut self, path: &[String]) -> Option<String> {
        if let Some(h) = self.cache.get(path) {
            return h.clone();
        }
        let out = Command::new(&self.bin)
            .args(path)
            .arg("--help")
            .output()
            .unwrap();
        let h = out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned());
        self.cache.insert(path.to_vec(), h.clone());
        h
    }

    /// The subcommand names a help text lists under `Commands:`.
    fn subcommands(help: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let mut inside = false;
        for line in help.lines() {
            if line.starts_with("Commands:") {
                inside = true;
                continue;
            }
            if inside {
                if !line.starts_with("  ") {
                    break;
                }
                if let Some(w) = line.split_whitespace().next() {
                    names.insert(w.trim_end_matches(',').to_string());
                }
            }
        }
        names
    }
}

/// The words of one command line as a shell would split it (quotes removed), up to the end
/// of the command: a pipe, a redirection, `&&`, `;` or a comment.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut has = false;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                has = true;
            }
            None if c.is_whitespace() => {
                if has || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            None => cur.push(c),
        }
    }
    if has || !cur.is_empty() {
        out.push(cur);
    }
    let end = out
        .iter()
        .position(|w| {
            w == "|"
                || w == "&&"
                || w == ";"
                || w == "#"
                || w.starts_with('>')
                || w.starts_with("2>")
        })
        .unwrap_or(out.len());
    out.truncate(end);
    out
}

/// Checks one shown command (its words after `mtkit`); returns what is wrong with it.
fn check_command(helps: &mut Helps, args: &[String]) -> Vec<String> {
    let mut path: Vec<String> = Vec::new();
    let Some(mut help) = helps.of(&path) else {
        return vec!["`mtkit --help` failed".into()];
    };
    let mut wrong = Vec::new();
    for w in args {
        let w = w.trim_matches(|c| c == '[' || c == ']' || c == ',');
        if w.starts_with('-') && w.len() > 1 && !w.starts_with("-0") && w.parse::<f64>().is_err() {
            let flag = w.split('=').next().unwrap();
            let known = if flag.starts_with("--") {
                help.contains(&format!("{flag} "))
                    || help.contains(&format!("{flag}\n"))
                    || help.contains(&format!("{flag}="))
                    || help.contains(&format!("{flag},"))
            } else {
                help.contains(&format!("{flag},")) || help.contains(&format!("{flag} "))
            };
            if !known {
                wrong.push(format!("`mtkit {}` has no flag {flag}", path.join(" ")));
            }
            continue;
        }
        // `train|verify|model`: alternatives, each a subcommand; the first one's flags are
        // checked.
        let subs = Helps::subcommands(&help);
        let alternatives: Vec<&str> = w.split('|').collect();
        if !w.is_empty() && alternatives.iter().all(|a| subs.contains(*a)) {
            path.push(alternatives[0].to_string());
            match helps.of(&path) {
                Some(h) => help = h,
                None => {
                    // The trainer's commands need mtkit-train beside mtkit.
                    eprintln!(
                        "skipped checking the flags of `mtkit {}`: its --help failed (mtkit-train not beside mtkit?)",
                        path.join(" ")
                    );
                    return wrong;
                }
            }
        } else if path.is_empty() && !w.is_empty() {
            wrong.push(format!("`mtkit {w}` is not a subcommand"));
            return wrong;
        }
    }
    wrong
}

/// The `mtkit` commands a page shows: in shell blocks (```sh, ```bash, ```console and plain
/// ``` blocks, after a `$ ` prompt or, in sh/bash, at a line's start, with `\` continuations)
/// and in inline code spans that start with `mtkit `.
fn shown_commands(text: &str) -> Vec<(usize, Vec<String>)> {
    let parsed = parse(text);
    let mut cmds = Vec::new();
    for (info, lines) in &parsed.blocks {
        let shell = matches!(info.as_str(), "sh" | "bash" | "console" | "shell");
        if !(shell || info.is_empty()) {
            continue;
        }
        let mut i = 0;
        while i < lines.len() {
            let (n, line) = &lines[i];
            let t = line.trim_start();
            let cmd = t
                .strip_prefix("$ ")
                .filter(|c| c.starts_with("mtkit "))
                .or_else(|| (shell && t.starts_with("mtkit ")).then_some(t));
            i += 1;
            let Some(cmd) = cmd else { continue };
            let mut full = cmd.to_string();
            while full.trim_end().ends_with('\\') && i < lines.len() {
                full = full.trim_end().trim_end_matches('\\').to_string() + " " + lines[i].1.trim();
                i += 1;
            }
            cmds.push((*n, words(&full)));
        }
    }
    for (n, line) in &parsed.prose {
        let mut rest = line.as_str();
        while let Some(i) = rest.find('`') {
            rest = &rest[i + 1..];
            let Some(end) = rest.find('`') else { break };
            let span = &rest[..end];
            rest = &rest[end + 1..];
            if span.starts_with("mtkit ") {
                cmds.push((*n, words(span)));
            }
        }
    }
    cmds
}

#[test]
fn every_command_shown_is_a_real_subcommand_with_real_flags() {
    let mut helps = Helps {
        bin: mtkit_binary(),
        cache: BTreeMap::new(),
    };
    let mut wrong = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let rel = page
            .strip_prefix(repo_root())
            .unwrap()
            .display()
            .to_string();
        for (n, w) in shown_commands(&text) {
            assert_eq!(w[0], "mtkit");
            checked += 1;
            for msg in check_command(&mut helps, &w[1..]) {
                wrong.push(format!("{rel}:{n}: {msg}: {}", w.join(" ")));
            }
        }
    }
    assert!(checked > 50, "only {checked} commands found in the docs");
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The checker itself: a made-up flag and subcommand are caught, real ones pass.
#[test]
fn the_command_checker_catches_a_made_up_flag_or_subcommand() {
    let mut helps = Helps {
        bin: mtkit_binary(),
        cache: BTreeMap::new(),
    };
    let w = |s: &str| words(s)[1..].to_vec();
    assert!(check_command(&mut helps, &w("mtkit profile demo-web --ngram 2 -o x")).is_empty());
    assert!(check_command(&mut helps, &w("mtkit profile merge a b -o c")).is_empty());
    assert_eq!(
        check_command(&mut helps, &w("mtkit profile demo-web --ngrams 2")).len(),
        1
    );
    assert_eq!(
        check_command(&mut helps, &w("mtkit profiles demo-web")).len(),
        1
    );
    assert_eq!(
        words("mtkit tokenize \"a b\" -o out | head -1 # note"),
        ["mtkit", "tokenize", "a b", "-o", "out"]
    );
}

/// The blocks marked `<!-- runnable -->` in README.md and docs/: each `$ mtkit ...` line run as
/// pasted (through `sh`, in a fresh folder that has the clone's `analysis/` and `reports/`,
/// with the demo corpora and the Pythia tokenizer only, a fresh cache), and every line the
/// block shows after a command found in what it printed, in order. A block may leave lines
/// out; it may not show a line the command does not print.
#[test]
fn runnable_blocks_run_as_pasted_and_print_what_they_show() {
    let Some(tok) = common::pythia_tokenizer() else {
        return;
    };
    let bin_dir = mtkit_binary().parent().unwrap().to_path_buf();
    let mut blocks = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let rel = page
            .strip_prefix(repo_root())
            .unwrap()
            .display()
            .to_string();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            if lines[i].trim() != "<!-- runnable -->" {
                i += 1;
                continue;
            }
            assert!(
                lines.get(i + 1).is_some_and(|l| l.starts_with("```")),
                "{rel}:{}: `<!-- runnable -->` must stand right above a code block",
                i + 1
            );
            let end = (i + 2..lines.len())
                .find(|&k| lines[k].starts_with("```"))
                .unwrap_or_else(|| panic!("{rel}:{}: unclosed block", i + 2));
            run_block(&rel, i + 3, &lines[i + 2..end], &bin_dir, &tok);
            blocks += 1;
            i = end + 1;
        }
    }
    assert!(blocks >= 4, "only {blocks} runnable blocks found");
}

/// Runs one block's commands in order in one fresh folder; `first` is its first line's number.
fn run_block(
    rel: &str,
    first: usize,
    block: &[&str],
    bin_dir: &std::path::Path,
    tok: &std::path::Path,
) {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["analysis", "reports"] {
        std::os::unix::fs::symlink(repo_root().join(sub), dir.path().join(sub)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut k = 0;
    while k < block.len() {
        let Some(cmd) = block[k].strip_prefix("$ ") else {
            k += 1;
            continue;
        };
        let at = first + k;
        k += 1;
        let shown: Vec<&str> = block[k..]
            .iter()
            .take_while(|l| !l.starts_with("$ "))
            .copied()
            .filter(|l| !l.trim().is_empty())
            .collect();
        k += block[k..]
            .iter()
            .take_while(|l| !l.starts_with("$ "))
            .count();
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("MTKIT_CACHE", dir.path().join(".cache"))
            .env("MTKIT_TOKENIZER", tok)
            .env("HF_HOME", dir.path().join(".hf"))
            .env_remove("MTKIT_CATALOG")
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{rel}:{at}: `{cmd}` failed as pasted:\n{printed}"
        );
        let got: Vec<&str> = printed.lines().map(str::trim_end).collect();
        let mut from = 0;
        for want in shown {
            let want = want.trim_end();
            match got[from..].iter().position(|g| *g == want) {
                Some(p) => from += p + 1,
                None => panic!(
                    "{rel}:{at}: `{cmd}` does not print, at this place, the line the docs show:\n{want}\nit printed:\n{printed}"
                ),
            }
        }
    }
}
