//! The built-in demo corpora, generated deterministically from a seed.
//!
//! They exist so that `make demo` and the tests run with no data at all, and they are built so
//! that their token distributions differ the way real corpora do: Python-like code shares most
//! of its tokens with functions-with-docstrings, while English web prose shares fewer. Each
//! document is a function of (kind, seed, index) only.

use anyhow::{bail, Result};
use serde_json::{Map, Value};

use crate::data::catalog::DemoSource;
use crate::util::rng::{mix64, Rng};

const NOUNS: &[&str] = &[
    "city", "river", "market", "garden", "school", "family", "company", "museum", "kitchen",
    "festival", "island", "village", "library", "team", "season", "journey", "bridge", "harbor",
    "forest", "council", "report", "recipe", "artist", "teacher", "farmer", "student", "visitor",
    "neighbor", "weekend", "morning", "history", "window",
];
const ADJS: &[&str] = &[
    "quiet",
    "busy",
    "old",
    "new",
    "local",
    "famous",
    "small",
    "large",
    "bright",
    "popular",
    "careful",
    "simple",
    "friendly",
    "historic",
    "modern",
    "warm",
    "early",
    "late",
    "beautiful",
    "useful",
];
const VERBS: &[&str] = &[
    "visited",
    "opened",
    "described",
    "announced",
    "finished",
    "prepared",
    "discovered",
    "shared",
    "celebrated",
    "recommended",
    "built",
    "painted",
    "explored",
    "planned",
    "welcomed",
    "remembered",
];
const CONNECT: &[&str] = &[
    "However,",
    "Meanwhile,",
    "In addition,",
    "Last year,",
    "According to residents,",
    "For many people,",
    "On Saturday,",
    "As a result,",
    "Since then,",
    "In the end,",
];
const NAMES: &[&str] = &[
    "Maria", "James", "Aisha", "Tom", "Lena", "Carlos", "Yuki", "Omar", "Grace", "Peter", "Nina",
    "Samuel",
];
const ITEMS: &[&str] = &[
    "apples", "books", "pencils", "cookies", "stickers", "marbles", "shirts", "tickets", "flowers",
    "cards",
];
const IDENTS: &[&str] = &[
    "data", "items", "result", "value", "count", "total", "index", "node", "path", "config",
    "buffer", "records", "key", "name", "size", "offset", "cache", "queue", "line", "token",
    "score", "limit", "matrix", "row",
];
const FUNCS: &[&str] = &[
    "load",
    "parse",
    "compute",
    "merge",
    "filter",
    "update",
    "build",
    "normalize",
    "encode",
    "decode",
    "validate",
    "flatten",
    "group",
    "sort",
    "split",
    "fetch",
    "render",
    "resolve",
    "count",
    "format",
];
const OBJS: &[&str] = &[
    "records", "tokens", "config", "matrix", "graph", "users", "events", "lines", "scores",
    "items", "paths", "weights", "batch", "table", "entries", "values",
];
const MODULES: &[&str] = &[
    "os",
    "sys",
    "json",
    "re",
    "math",
    "collections",
    "itertools",
    "functools",
    "typing",
    "pathlib",
];
const TOPICS: &[(&str, &str)] = &[
    (
        "What is the capital of France?",
        "Paris is the capital of France.",
    ),
    (
        "How many legs does a spider have?",
        "A spider has eight legs.",
    ),
    (
        "Why is the sky blue?",
        "Sunlight is scattered by the air, and blue light is scattered the most.",
    ),
    ("What do bees make?", "Bees make honey and wax."),
    (
        "Which planet is closest to the sun?",
        "Mercury is the planet closest to the sun.",
    ),
    (
        "What is water made of?",
        "Water is made of hydrogen and oxygen.",
    ),
    (
        "How long is a day on Earth?",
        "A day on Earth lasts about twenty-four hours.",
    ),
    (
        "What is the largest ocean?",
        "The Pacific Ocean is the largest ocean.",
    ),
];

/// Generates `d.docs` records of the demo corpus `d.kind`, calling `emit(index, record)`.
/// Each record has `text`, and for instruction-like kinds `prompt` and `response`.
pub fn generate(d: &DemoSource, emit: &mut dyn FnMut(u64, Map<String, Value>)) -> Result<()> {
    let make: fn(&mut Rng) -> (String, String) = match d.kind.as_str() {
        "web" => |r| (String::new(), web(r)),
        "code" => |r| (String::new(), code_file(r)),
        "docstring" => docstring_fn,
        "math" => math_problem,
        "qa" => qa_pair,
        other => bail!("unknown demo generator `{other}` (web, code, docstring, math, qa)"),
    };
    let kind_salt = mix64(
        d.kind
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(131).wrapping_add(b as u64)),
    );
    for i in 0..d.docs {
        let mut rng = Rng::new(mix64(d.seed ^ kind_salt) ^ mix64(i));
        let (prompt, response) = make(&mut rng);
        let mut m = Map::new();
        m.insert("text".into(), Value::String(format!("{prompt}{response}")));
        if !prompt.is_empty() {
            m.insert("prompt".into(), Value::String(prompt));
            m.insert("response".into(), Value::String(response));
        }
        emit(i, m);
    }
    Ok(())
}

fn sentence(r: &mut Rng) -> String {
    let mut s = String::new();
    if r.chance(0.3) {
        let c = *r.choose(CONNECT);
        s.push_str(c);
        s.push(' ');
        s.push_str("the");
    } else {
        s.push_str("The");
    }
    s.push_str(&format!(
        " {} {} {} the {} {}",
        r.choose(ADJS),
        r.choose(NOUNS),
        r.choose(VERBS),
        r.choose(ADJS),
        r.choose(NOUNS)
    ));
    if r.chance(0.5) {
        s.push_str(&format!(" near the {}", r.choose(NOUNS)));
    }
    if r.chance(0.3) {
        s.push_str(&format!(
            ", and {} said it was {}",
            r.choose(NAMES),
            r.choose(ADJS)
        ));
    }
    s.push('.');
    s
}

fn web(r: &mut Rng) -> String {
    let paras = 1 + r.below(4);
    let mut out = String::new();
    for p in 0..paras {
        if p > 0 {
            out.push_str("\n\n");
        }
        let n = 2 + r.below(5);
        let sents: Vec<String> = (0..n).map(|_| sentence(r)).collect();
        out.push_str(&sents.join(" "));
    }
    out
}

fn ident(r: &mut Rng) -> String {
    if r.chance(0.4) {
        format!("{}_{}", r.choose(IDENTS), r.choose(IDENTS))
    } else {
        r.choose(IDENTS).to_string()
    }
}

fn body(r: &mut Rng, indent: &str) -> String {
    let mut out = String::new();
    let a = ident(r);
    let b = ident(r);
    out.push_str(&format!("{indent}{a} = []\n"));
    match r.below(4) {
        0 => out.push_str(&format!("{indent}for {b} in {}:\n{indent}    if {b} is not None:\n{indent}        {a}.append({b})\n", r.choose(OBJS))),
        1 => out.push_str(&format!("{indent}for i, {b} in enumerate({}):\n{indent}    {a}.append({b} * i + {})\n", r.choose(OBJS), r.below(10))),
        2 => out.push_str(&format!("{indent}while len({a}) < {}:\n{indent}    {a}.append(len({a}))\n", 2 + r.below(50))),
        _ => out.push_str(&format!("{indent}{a} = [{b} for {b} in {} if {b}]\n", r.choose(OBJS))),
    }
    if r.chance(0.4) {
        out.push_str(&format!(
            "{indent}if not {a}:\n{indent}    raise ValueError(\"empty {}\")\n",
            r.choose(OBJS)
        ));
    }
    out.push_str(&format!("{indent}return {a}\n"));
    out
}

fn signature(r: &mut Rng) -> (String, Vec<String>) {
    let name = format!("{}_{}", r.choose(FUNCS), r.choose(OBJS));
    let n = 1 + r.below(3);
    let args: Vec<String> = (0..n).map(|_| ident(r)).collect();
    (name, args)
}

fn code_file(r: &mut Rng) -> String {
    let mut out = String::new();
    for _ in 0..1 + r.below(3) {
        out.push_str(&format!("import {}\n", r.choose(MODULES)));
    }
    out.push('\n');
    for _ in 0..1 + r.below(4) {
        let (name, args) = signature(r);
        if r.chance(0.3) {
            out.push_str(&format!("# {} the {}\n", r.choose(FUNCS), r.choose(OBJS)));
        }
        out.push_str(&format!("def {name}({}):\n", args.join(", ")));
        out.push_str(&body(r, "    "));
        out.push('\n');
    }
    if r.chance(0.5) {
        out.push_str(&format!(
            "\nif __name__ == \"__main__\":\n    print({}_{}(sys.argv[1:]))\n",
            r.choose(FUNCS),
            r.choose(OBJS)
        ));
    }
    out
}

fn docstring_fn(r: &mut Rng) -> (String, String) {
    let (name, args) = signature(r);
    let verb = r.choose(FUNCS);
    let obj = r.choose(OBJS);
    let mut prompt = format!(
        "def {name}({}):\n    \"\"\"{}{} the {} {obj}.\n\n",
        args.join(", "),
        &verb[..1].to_uppercase(),
        &verb[1..],
        r.choose(ADJS)
    );
    prompt.push_str("    Args:\n");
    for a in &args {
        prompt.push_str(&format!(
            "        {a}: the {} {} to use.\n",
            r.choose(ADJS),
            r.choose(OBJS)
        ));
    }
    prompt.push_str(&format!(
        "\n    Returns:\n        A list of {obj}.\n    \"\"\"\n"
    ));
    (prompt, body(r, "    "))
}

fn math_problem(r: &mut Rng) -> (String, String) {
    let who = r.choose(NAMES);
    let item = r.choose(ITEMS);
    let a = 2 + r.below(60);
    let b = 2 + r.below(9);
    let c = 1 + r.below(a.max(2) - 1);
    let q = format!(
        "{who} has {a} {item}. {who} buys {b} times as many {item} as that, then gives away {c}. How many {item} does {who} have now?\n"
    );
    let bought = a * b;
    let total = a + bought - c;
    let ans = format!(
        "{who} buys {a} * {b} = <<{a}*{b}={bought}>>{bought} {item}.\nAfter giving away {c}, {who} has {a} + {bought} - {c} = <<{a}+{bought}-{c}={total}>>{total} {item}.\n#### {total}"
    );
    (q, ans)
}

fn qa_pair(r: &mut Rng) -> (String, String) {
    let (q, a) = r.choose(TOPICS);
    if r.chance(0.5) {
        (format!("Question: {q}\nAnswer: "), a.to_string())
    } else {
        let n = r.choose(NOUNS);
        let adj = r.choose(ADJS);
        (
            format!("Question: Why is the {n} {adj}?\nAnswer: "),
            format!(
                "The {n} is {adj} because {}.",
                sentence(r).to_lowercase().trim_end_matches('.')
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(kind: &str, n: u64, seed: u64) -> Vec<String> {
        let mut out = Vec::new();
        generate(
            &DemoSource {
                kind: kind.into(),
                docs: n,
                seed,
            },
            &mut |_, m| out.push(m["text"].as_str().unwrap().to_string()),
        )
        .unwrap();
        out
    }

    #[test]
    fn deterministic_and_seeded() {
        for k in ["web", "code", "docstring", "math", "qa"] {
            assert_eq!(docs(k, 20, 1), docs(k, 20, 1));
            assert_ne!(docs(k, 20, 1), docs(k, 20, 2));
            assert!(docs(k, 20, 1).iter().all(|d| !d.trim().is_empty()));
        }
        assert!(generate(
            &DemoSource {
                kind: "nope".into(),
                docs: 1,
                seed: 0
            },
            &mut |_, _| {}
        )
        .is_err());
    }

    #[test]
    fn math_answers_are_right() {
        for d in docs("math", 50, 9) {
            let total: i64 = d.rsplit("#### ").next().unwrap().trim().parse().unwrap();
            let nums: Vec<i64> = d
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            let (a, b, c) = (nums[0], nums[1], nums[2]);
            assert_eq!(total, a + a * b - c, "{d}");
        }
    }
}
