"""DSIR (the pip package data-selection 1.0.3) as its README runs it, for section i of make bench.

    python dsir_select.py --target T.jsonl --docs K --num-proc P --work DIR --out SEL.jsonl POOL.jsonl...

HashedNgramDSIR with every default (hashed word uni+bigrams, 10,000 buckets, WordPunct, the
100-word length filter, Gumbel top-k), fit, weights, resample; its per-shard outputs are then
joined into SEL.jsonl (input order within each shard, as DSIR writes them). The whole process is
what the bench times; numpy's global generator is seeded here only so that a rerun of the bench
draws the same set (DSIR itself never seeds it).
"""

import argparse
import glob
import os
import shutil

import numpy as np
from data_selection import HashedNgramDSIR


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--docs", type=int, required=True)
    ap.add_argument("--num-proc", type=int, required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("pool", nargs="+")
    a = ap.parse_args()
    np.random.seed(0)
    shutil.rmtree(a.work, ignore_errors=True)
    dsir = HashedNgramDSIR(a.pool, [a.target], cache_dir=os.path.join(a.work, "cache"), num_proc=a.num_proc)
    dsir.fit_importance_estimator(num_tokens_to_fit="auto")
    dsir.compute_importance_weights()
    out_dir = os.path.join(a.work, "selected")
    dsir.resample(out_dir=out_dir, num_to_sample=a.docs, cache_dir=os.path.join(a.work, "resample-cache"))
    tmp = a.out + ".part"
    with open(tmp, "w") as out:
        for part in sorted(glob.glob(os.path.join(out_dir, "*.jsonl")), key=lambda p: int(os.path.basename(p)[:-6])):
            with open(part) as f:
                shutil.copyfileobj(f, out)
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
