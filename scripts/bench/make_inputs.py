"""Writes the benchmark inputs from the real samples in shared/data (never copied into git).

    python make_inputs.py SHARED_DATA_DIR OUT_DIR

- mixed-{10m,50m,200m,1g}.jsonl: the C4 sample and the code samples (HumanEval, HumanEval-X,
  MBPP, CodeSearchNet Python) in a fixed interleaved order, repeated to 10 MB ... 1 GB. Each
  smaller file is a prefix of the larger ones' record order, so sizes compare the same text.
- mixed-1doc.jsonl: the first record alone (what a profile costs with no data: start-up).
- prox1k-{c4,starcoder,codesearchnet}.jsonl: the first 1,000 records of each corpus.
- prox200m-{c4,starcoder,codesearchnet}.jsonl: each corpus repeated to 100, 50 and 50 MB.
- registry.jsonl: the registry's three larger corpora (prose, Python code, docstring
  functions; about 210 MB of text that does not repeat), interleaved in a fixed order: the
  input of the tokenizer-speed rows, where a repeated sample would flatter a cache.
- select/pool-{c4,flan,p3,math,dolly,codesearchnet,prose}.jsonl: section i's pool (six shared
  samples and the registry's prose, about 68 MB), plain JSON Lines because DSIR reads nothing else;
  select/target-{sciq,gsm8k}.jsonl: the two targets drawn toward (SciQ validation, GSM8K test as
  "{question}\n{answer}", the catalog's template).
Records are {"text": ...}. Existing files of the right size are kept.
"""

import gzip
import hashlib
import json
import os
import subprocess
import sys

CORPORA = {
    "c4": ["corpora/c4-en-sample-1k.jsonl.gz"],
    "starcoder": ["corpora/humaneval-python.jsonl", "corpora/humaneval-x-multilang.jsonl.gz", "corpora/mbpp.jsonl"],
    "codesearchnet": ["corpora/codesearchnet-python-cosqa.jsonl.gz"],
}
MB = 1_000_000


def lines_of(shared, corpus):
    out = []
    for rel in CORPORA[corpus]:
        path = os.path.join(shared, rel)
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    text = json.loads(line)["text"]
                    out.append((json.dumps({"text": text}, ensure_ascii=False) + "\n").encode("utf-8"))
    return out


def write(path, lines, size=None, docs=None):
    """Repeats `lines` until `size` bytes, or writes the first `docs` of them."""
    if os.path.exists(path):
        return
    tmp = path + ".part"
    written = 0
    with open(tmp, "wb") as f:
        if docs is not None:
            for l in lines[:docs]:
                f.write(l)
                written += len(l)
        else:
            while written < size:
                for l in lines:
                    f.write(l)
                    written += len(l)
                    if written >= size:
                        break
    os.replace(tmp, path)
    print(f"[bench] wrote {path} ({written / MB:.1f} MB)", file=sys.stderr)


def registry_lines(shared):
    out = []
    for name in ["prose", "pycode", "pydoc"]:
        raw = subprocess.run(["zstd", "-dc", os.path.join(shared, "registry", name + ".jsonl.zst")],
                             check=True, capture_output=True).stdout
        for line in raw.decode("utf-8").splitlines():
            if line.strip():
                text = json.loads(line)["text"]
                out.append((json.dumps({"text": text}, ensure_ascii=False) + "\n").encode("utf-8"))
    return sorted(out, key=lambda l: hashlib.sha256(l).digest())


SELECT_POOL = {
    "c4": ("corpora/c4-en-sample-1k.jsonl.gz", "{text}"),
    "flan": ("corpora/flan-v2-cot-train.jsonl.gz", "{text}"),
    "p3": ("corpora/p3-t0-prompted-sample.jsonl.gz", "{text}"),
    "math": ("corpora/math-competition-test.jsonl.gz", "{text}"),
    "dolly": ("corpora/dolly-hhrlhf-1k.jsonl.gz", "{text}"),
    "codesearchnet": ("corpora/codesearchnet-python-cosqa.jsonl.gz", "{text}"),
}
SELECT_TARGETS = {
    "sciq": ("corpora/sciq-validation.jsonl.gz", "{text}"),
    "gsm8k": ("corpora/gsm8k-test.jsonl.gz", "{question}\n{answer}"),
}


def rendered(shared, rel, template):
    path = os.path.join(shared, rel)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [(json.dumps({"text": template.format(**json.loads(line))}, ensure_ascii=False) + "\n").encode("utf-8")
                for line in f if line.strip()]


def write_select_inputs(shared, out):
    """Section i: the pool as one plain .jsonl per source, and the targets."""
    folder = os.path.join(out, "select")
    os.makedirs(folder, exist_ok=True)
    for name, (rel, template) in SELECT_POOL.items():
        lines = rendered(shared, rel, template)
        write(os.path.join(folder, f"pool-{name}.jsonl"), lines, docs=len(lines))
    prose = subprocess.run(["zstd", "-dc", os.path.join(shared, "registry", "prose.jsonl.zst")],
                           check=True, capture_output=True).stdout.decode("utf-8")
    lines = [(json.dumps({"text": json.loads(l)["text"]}, ensure_ascii=False) + "\n").encode("utf-8")
             for l in prose.splitlines() if l.strip()]
    write(os.path.join(folder, "pool-prose.jsonl"), lines, docs=len(lines))
    for name, (rel, template) in SELECT_TARGETS.items():
        lines = rendered(shared, rel, template)
        write(os.path.join(folder, f"target-{name}.jsonl"), lines, docs=len(lines))


def main():
    shared, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "registry.jsonl"), registry_lines(shared), docs=10**9)
    per = {c: lines_of(shared, c) for c in CORPORA}
    mixed = sorted((l for ls in per.values() for l in ls), key=lambda l: hashlib.sha256(l).digest())
    for name, size in [("10m", 10 * MB), ("50m", 50 * MB), ("200m", 200 * MB), ("1g", 1000 * MB)]:
        write(os.path.join(out, f"mixed-{name}.jsonl"), mixed, size=size)
    write(os.path.join(out, "mixed-1doc.jsonl"), mixed, docs=1)
    for c in CORPORA:
        write(os.path.join(out, f"prox1k-{c}.jsonl"), per[c], docs=1000)
    for c, size in [("c4", 100 * MB), ("starcoder", 50 * MB), ("codesearchnet", 50 * MB)]:
        write(os.path.join(out, f"prox200m-{c}.jsonl"), per[c], size=size)
    write_select_inputs(shared, out)


if __name__ == "__main__":
    main()
