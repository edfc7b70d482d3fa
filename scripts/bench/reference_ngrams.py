"""N-gram counting the usual Python way, for `make bench`: collections.Counter over tuples.

    python reference_ngrams.py TOKENS_DIR/NAME [N]

Counts orders 1..N of every document of a token file written by `mtkit tokenize` (the
closing EOS left out) and prints the time and a digest of the counts (distinct, total, and
sum of count * sum_i (i+1)*id_i mod 2^61-1 per order), which scripts/bench/baselines/count_ngrams.rs must
match.
"""

import json
import os
import struct
import sys
import time
from collections import Counter

import numpy as np

P = (1 << 61) - 1


def main():
    d = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    path = os.path.join(d, "train.tokens")
    with open(path, "rb") as f:
        magic, _v, width, _vocab, _eos, count = struct.unpack("<8sIIIIQ", f.read(32))
    assert magic == b"MTKTOKS\0"
    ids = np.memmap(path, dtype=np.uint16 if width == 2 else np.uint32, mode="r", offset=32, shape=(count,))
    index = np.fromfile(os.path.join(d, "train.docs"), dtype=np.dtype([("start", "<u8"), ("len", "<u4"), ("prompt", "<u4")]))
    docs = [ids[s : s + l - 1].tolist() for s, l in zip(index["start"].tolist(), index["len"].tolist())]

    start = time.perf_counter()
    counters = [Counter() for _ in range(n)]
    for doc in docs:
        for k in range(1, n + 1):
            counters[k - 1].update(zip(*(doc[i:] for i in range(k))))
    secs = time.perf_counter() - start

    orders = []
    for c in counters:
        s = 0
        for gram, v in c.items():
            s = (s + v * sum((i + 1) * x for i, x in enumerate(gram))) % P
        orders.append([len(c), sum(c.values()), s])
    print(json.dumps({"seconds": secs, "tokens": sum(len(x) for x in docs), "docs": len(docs), "orders": orders}))


if __name__ == "__main__":
    main()
