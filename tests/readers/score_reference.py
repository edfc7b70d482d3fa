"""The formula of `mtkit score`, computed independently: HF tokenizers' ids (encode without
special tokens), n-gram counts in Python dicts, the sum in float64 per document.

    python score_reference.py TOKENIZER.json POOL.jsonl... --target T.jsonl --ngram N --lambda L

Files are JSON Lines (or .jsonl.gz) with a "text" field.

Prints one JSON line: {"log_weight": [one float per pool document, in file order]}.
"""

import argparse
import gzip
import json
import math
from collections import Counter

from tokenizers import Tokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tokenizer")
    ap.add_argument("pool", nargs="+")
    ap.add_argument("--target", required=True)
    ap.add_argument("--ngram", type=int, required=True)
    ap.add_argument("--lambda", dest="lam", type=float, required=True)
    a = ap.parse_args()
    tok = Tokenizer.from_file(a.tokenizer)

    def docs(path):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for line in f if line.strip()]
        return [tok.encode(t, add_special_tokens=False).ids for t in texts]

    pool = [d for p in a.pool for d in docs(p)]
    target = docs(a.target)

    def grams(ids, n):
        return [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]

    def counts(ds, n):
        c = Counter()
        for d in ds:
            c.update(grams(d, n))
        return c, sum(c.values())

    tables = [(counts(target, n), counts(pool, n)) for n in range(1, a.ngram + 1)]
    out = []
    for d in pool:
        lw = 0.0
        for n in range(1, a.ngram + 1):
            (t, ct), (r, cr) = tables[n - 1]
            for g in grams(d, n):
                pt = t.get(g, 0) / ct if ct else 0.0
                pr = r[g] / cr
                lw += math.log(a.lam * pt / pr + (1 - a.lam))
        out.append(lw)
    print(json.dumps({"log_weight": out}))


main()
