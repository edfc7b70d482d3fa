"""The paper's token similarity written the way the authors' Python code computes it
(shared/docs/paper.md section 2), independently of mtkit, for `make bench`.

    python reference_similarity.py TOKENIZER.json P.jsonl M.jsonl [M2.jsonl ...] T.jsonl

Every record's "text" is used (the bench's inputs hold exactly the documents to compare, so
no sampling is needed), cut to its first 10,000 characters, tokenized without special tokens,
cut to its first 512 tokens, and pooled into unigram counts. Prints one JSON object:
{"sim": {name: sim(name, T)}, "pa": {name: PA(name -> T)}, "seconds": wall time}.
"""

import json
import os
import sys
import time

import numpy as np
from tokenizers import Tokenizer

MAX_CHARS = 10_000
MAX_TOKENS = 512
BATCH = 4096


def unigram_counts(tok, path, vocab):
    counts = np.zeros(vocab, dtype=np.int64)
    texts = []

    def flush():
        ids = []
        for enc in tok.encode_batch(texts, add_special_tokens=False):
            ids.extend(enc.ids[:MAX_TOKENS])
        counts[:] += np.bincount(np.asarray(ids, dtype=np.int64), minlength=vocab)[:vocab]
        texts.clear()

    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                texts.append(json.loads(line)["text"][:MAX_CHARS])
                if len(texts) == BATCH:
                    flush()
    flush()
    return counts


def sim(a, b):
    p = a / a.sum()
    q = b / b.sum()
    cos = float(p @ q / (np.linalg.norm(p) * np.linalg.norm(q)))
    va, vb = a > 0, b > 0
    jac = float((va & vb).sum() / (va | vb).sum())
    m = (p + q) / 2

    def kl(x):
        nz = x > 0
        return float(np.sum(x[nz] * np.log(x[nz] / m[nz])))

    jsd = 0.5 * kl(p) + 0.5 * kl(q)
    return 0.4 * cos + 0.3 * jac + 0.3 / (1.0 + jsd)


def main():
    start = time.perf_counter()
    tok = Tokenizer.from_file(sys.argv[1])
    vocab = tok.get_vocab_size(with_added_tokens=True)
    paths = sys.argv[2:]
    names = [os.path.basename(p).rsplit(".", 1)[0] for p in paths]
    counts = [unigram_counts(tok, p, vocab) for p in paths]
    target = counts[-1]
    sims = {n: sim(c, target) for n, c in zip(names[:-1], counts[:-1])}
    base = sims[names[0]]
    pa = {n: s - base for n, s in sims.items()}
    print(json.dumps({"sim": sims, "pa": pa, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
