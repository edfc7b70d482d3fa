"""The Python package's overhead for `make bench` (section g). Prints one JSON object.

    python python_api.py proximity CATALOG MAX_DOCS P M T   # mtkit.proximity, in-process seconds
    python python_api.py profile TOKENIZER INPUT.jsonl       # mtkit.profile of an in-memory list
                                                             # vs HF tokenizers' encode_batch

`proximity` times the call alone (after `import mtkit`), profiles uncached as the CLI's
--no-cache, and prints the rows so that the bench can check them against the CLI's.
`profile` reads every `text` of the file into a list first (not timed), then times
mtkit.profile(list) with no sampling or cuts, HF's encode_batch on the same list, and
mtkit.profile again (the slower of the two mtkit runs is reported: conservative against drift);
both use RAYON_NUM_THREADS threads. Token totals must agree.
"""

import json
import sys
import time


def proximity(catalog, max_docs, names):
    import mtkit
    import polars  # noqa: F401  imported before timing, as in a notebook; the whole process is timed apart

    max_docs = None if max_docs == "all" else int(max_docs)
    start = time.perf_counter()
    df = mtkit.proximity(names[0], names[1:-1], names[-1], catalog=catalog, cache=False, max_docs=max_docs,
                         progress=False)
    seconds = time.perf_counter() - start
    rows = {r["corpus"]: {"sim": r["sim"], "pa": r["pa"]} for r in df.iter_rows(named=True)}
    print(json.dumps({"seconds": seconds, "rows": rows}))


def profile(tokenizer, path):
    import mtkit
    import tokenizers

    with open(path, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    nbytes = sum(len(t.encode("utf-8")) for t in texts)

    def ours():
        start = time.perf_counter()
        p = mtkit.profile(texts, tokenizer=tokenizer, ngram=1, max_docs=None, max_chars=0, max_tokens_per_doc=0,
                          progress=False)
        return time.perf_counter() - start, p.totals

    first, totals = ours()
    tok = tokenizers.Tokenizer.from_file(tokenizer)
    start = time.perf_counter()
    encodings = tok.encode_batch(texts, add_special_tokens=False)
    hf_seconds = time.perf_counter() - start
    hf_tokens = sum(len(e.ids) for e in encodings)
    del encodings
    second, _ = ours()
    print(json.dumps({"docs": len(texts), "bytes": nbytes, "mtkit_s": [first, second], "hf_s": hf_seconds,
                      "mtkit_tokens": totals["tokens"], "hf_tokens": hf_tokens,
                      "hf_version": tokenizers.__version__, "mtkit_version": mtkit.__version__}))


if __name__ == "__main__":
    if sys.argv[1] == "proximity":
        proximity(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif sys.argv[1] == "profile":
        profile(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
