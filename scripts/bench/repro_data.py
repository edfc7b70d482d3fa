"""The corpora of analysis/gpu-repro.toml, written where analysis/gpu-repro-catalog.toml reads them
(.gpu/data/), small enough to travel to a lent GPU machine (64 MiB with the binaries).

    python repro_data.py full SHARED_DATA OUT_DIR     # the real corpora (scripts/gpu-prepare.sh)
    python repro_data.py smoke REPO_ROOT OUT_DIR      # toy stand-ins for the CPU smoke run

full: from ../shared/data, the registry's prose whole; every 6th file of the registry's Python
code (all 15 projects, about 24 MB of text, more than the grid's continued pretraining reads);
the registry's docstring functions cut at the end of their docstring into a prompt (signature
and docstring, loss-masked in SFT) and a response (the body), every 4th of those that parse;
MATH, FLAN, P3, GSM8K, SciQ and Dolly/HH-RLHF as the shared samples hold them. Each record keeps
the fields the catalog's templates use. Written as zstd-compressed JSON Lines (the `zstd` tool).

smoke: the same file names, as plain JSON Lines of toy text from this repository (Markdown
paragraphs as prose, its Python functions as code and docstring targets, generated arithmetic
and copy tasks for the rest), a few hundred records each, so that the smoke run needs no
../shared; its numbers mean nothing.
"""

import ast
import gzip
import json
import os
import random
import subprocess
import sys

import glob


def write(out_dir, name, records, compress):
    path = os.path.join(out_dir, f"{name}.jsonl" + (".zst" if compress else ""))
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    tmp = path + ".part"
    if compress:
        with open(tmp, "wb") as f:
            subprocess.run(["zstd", "-q", "-19", "-T2", "-c"], input=data, stdout=f, check=True)
    else:
        with open(tmp, "wb") as f:
            f.write(data)
    os.replace(tmp, path)
    return len(records)


def read_jsonl(path):
    if path.endswith(".zst"):
        raw = subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout.decode()
        lines = raw.split("\n")
    elif path.endswith(".gz"):
        lines = gzip.open(path, "rt").read().split("\n")
    else:
        lines = open(path).read().split("\n")
    return [json.loads(line) for line in lines if line.strip()]


def split_docstring(text):
    """(signature + docstring, body) of one function's source, or None when it does not parse or
    has no docstring followed by a body."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    if not tree.body or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    fn = tree.body[0]
    if len(fn.body) < 2 or not isinstance(fn.body[0], ast.Expr):
        return None
    doc = fn.body[0].value
    if not (isinstance(doc, ast.Constant) and isinstance(doc.value, str)):
        return None
    lines = text.splitlines(keepends=True)
    prompt = "".join(lines[: doc.end_lineno])
    body = "".join(lines[doc.end_lineno:])
    if not body.strip():
        return None
    return prompt, body


def full(shared, out):
    reg = os.path.join(shared, "registry")
    cor = os.path.join(shared, "corpora")
    n = {}
    n["prose"] = write(out, "prose", [{"text": r["text"]} for r in read_jsonl(os.path.join(reg, "prose.jsonl.zst"))], True)
    code = read_jsonl(os.path.join(reg, "pycode.jsonl.zst"))
    n["pycode"] = write(out, "pycode", [{"text": r["text"]} for r in code[::6]], True)
    pairs = [p for p in (split_docstring(r["text"]) for r in read_jsonl(os.path.join(reg, "pydoc.jsonl.zst"))) if p]
    n["pydoc"] = write(out, "pydoc", [{"prompt": p, "response": b} for p, b in pairs[::4]], True)
    keep = {
        "math": ("math-competition-test.jsonl.gz", ["problem", "solution"]),
        "flan": ("flan-v2-cot-train.jsonl.gz", ["text"]),
        "p3": ("p3-t0-prompted-sample.jsonl.gz", ["text"]),
        "gsm8k": ("gsm8k-train.jsonl.gz", ["question", "answer"]),
        "sciq": ("sciq-validation.jsonl.gz", ["question", "correct_answer"]),
        "dolly": ("dolly-hhrlhf-1k.jsonl.gz", ["prompt", "response"]),
    }
    for name, (f, fields) in keep.items():
        rows = read_jsonl(os.path.join(cor, f))
        n[name] = write(out, name, [{k: r[k] for k in fields} for r in rows], True)
    return n


def smoke(repo, out):
    rng = random.Random(7)
    paras = []
    for md in sorted(glob.glob(os.path.join(repo, "*.md"))):
        paras += [p.strip() for p in open(md).read().split("\n\n") if len(p.strip()) > 80]
    funcs = []
    for py in sorted(glob.glob(os.path.join(repo, "scripts", "**", "*.py"), recursive=True)):
        src = open(py).read()
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                seg = ast.get_source_segment(src, node)
                if seg:
                    funcs.append(seg if node.col_offset == 0 else "\n".join(
                        line[node.col_offset:] for line in seg.splitlines()))
    pairs = [p for p in (split_docstring(f) for f in funcs) if p]

    def arith(k):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        return f"What is {a} plus {b}?", f"{a} + {b} = {a + b}. The answer is {a + b}."

    n = {}
    n["prose"] = write(out, "prose", [{"text": p} for p in paras * 3], False)
    n["pycode"] = write(out, "pycode", [{"text": f} for f in funcs * 3], False)
    n["pydoc"] = write(out, "pydoc", [{"prompt": p, "response": b} for p, b in pairs * 8], False)
    qa = [arith(k) for k in range(300)]
    n["math"] = write(out, "math", [{"problem": q, "solution": s} for q, s in qa], False)
    n["gsm8k"] = write(out, "gsm8k", [{"question": q, "answer": s} for q, s in qa[::-1]], False)
    copy = [(f"Repeat the sentence: {p[:120]}", p[:120]) for p in paras]
    n["flan"] = write(out, "flan", [{"text": q + "\n" + a} for q, a in copy * 2], False)
    n["p3"] = write(out, "p3", [{"text": a + "\nWhich text was that?\n" + a} for _, a in copy * 2], False)
    n["sciq"] = write(out, "sciq", [{"question": q, "correct_answer": a} for q, a in copy * 2], False)
    n["dolly"] = write(out, "dolly", [{"prompt": q + "\n", "response": a} for q, a in copy * 2], False)
    return n


def main():
    mode, src, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    n = full(src, out) if mode == "full" else smoke(src, out)
    print(json.dumps(n))


if __name__ == "__main__":
    main()
