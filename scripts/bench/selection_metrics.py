"""DSIR's own quality metric for a selection, for section i of make bench.

    python selection_metrics.py --target T.jsonl --random-docs K --pool POOL.jsonl... --selection NAME=SEL.jsonl...

KL reduction (DSIR paper §6, the maintainer's recipe in p-lambda/dsir issues #9 and #11):
KL(target ‖ random) − KL(target ‖ selection) on DSIR's hashed feature distribution, each text
featurized by data_selection's own get_ngram_counts (lowercased WordPunct words, unigrams and
bigrams, SHA-256 mod 10,000 buckets), counts summed over a set's documents and normalised, and
KL(p ‖ q) = Σ p · (ln(p + ε) − ln(q + ε)) with ε = 1e-10. The random draw is K documents of the
whole pool, uniform without replacement, numpy seed 0 (the same reference for every selection).
Prints one JSON object: {"kl_random": ..., "selections": {NAME: {"docs", "kl", "kl_reduction"}}}.
"""

import argparse
import json

import numpy as np
from data_selection.hashed_ngram_dsir import get_ngram_counts

EPS = 1e-10


def texts(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l)["text"] for l in f if l.strip()]


def distribution(docs):
    counts = np.zeros(10000, dtype=np.int64)
    for t in docs:
        get_ngram_counts(t, n=2, num_buckets=10000, counts=counts)
    return counts / counts.sum()


def kl(p, q):
    return float(np.sum(p * (np.log(p + EPS) - np.log(q + EPS))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--random-docs", type=int, required=True)
    ap.add_argument("--pool", nargs="+", required=True)
    ap.add_argument("--selection", nargs="+", required=True)
    a = ap.parse_args()
    target = distribution(texts(a.target))
    pool = [t for p in a.pool for t in texts(p)]
    pick = np.random.default_rng(0).choice(len(pool), size=a.random_docs, replace=False)
    kl_random = kl(target, distribution(pool[i] for i in sorted(pick)))
    out = {"kl_random": kl_random, "selections": {}}
    for spec in a.selection:
        name, path = spec.split("=", 1)
        docs = texts(path)
        k = kl(target, distribution(docs))
        out["selections"][name] = {"docs": len(docs), "kl": k, "kl_reduction": kl_random - k}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
