"""Peer tokenizers for `make bench`: encodes every `text` of a JSONL file (texts already in
memory) with one peer and prints, as JSON, the seconds of the encode alone, bytes, tokens and a
digest of the ids (SHA-256 over each document's id count as u64 and ids as u32, little-endian,
in order), which must equal HF tokenizers' (scripts/bench/baselines/raw_encode.rs prints the same digest).

    python peers.py PEER TOKENIZER.json INPUT.jsonl

PEER: hf (the `tokenizers` package, encode_batch), gigatoken (encode_batch_list), tokie
(encode_batch_flat). All use their own thread pools (RAYON_NUM_THREADS as the bench sets it).
"""

import hashlib
import json
import sys
import time

import numpy as np


def digest(docs):
    h = hashlib.sha256()
    for ids in docs:
        a = np.asarray(ids, dtype="<u4")
        h.update(np.uint64(len(a)).astype("<u8").tobytes())
        h.update(a.tobytes())
    return h.hexdigest()


def main():
    peer, tok_path, path = sys.argv[1:4]
    with open(path, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    if peer == "hf":
        import tokenizers
        tok = tokenizers.Tokenizer.from_file(tok_path)
        version = tokenizers.__version__
        start = time.perf_counter()
        docs = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
        seconds = time.perf_counter() - start
    elif peer == "gigatoken":
        import gigatoken
        from importlib.metadata import version as v
        tok = gigatoken.Tokenizer(tok_path)
        version = v("gigatoken")
        start = time.perf_counter()
        docs = tok.encode_batch_list(texts)
        seconds = time.perf_counter() - start
    elif peer == "tokie":
        import tokie
        from importlib.metadata import version as v
        tok = tokie.Tokenizer.from_json(tok_path)
        version = v("tokie")
        start = time.perf_counter()
        ids, lengths = tok.encode_batch_flat(texts, add_special_tokens=False)
        seconds = time.perf_counter() - start
        ends = np.cumsum(lengths)
        docs = [ids[e - n:e] for e, n in zip(ends, lengths)]
    else:
        sys.exit(f"unknown peer {peer}")
    print(json.dumps({"peer": peer, "version": version, "seconds": seconds, "bytes": nbytes,
                      "docs": len(docs), "tokens": int(sum(len(d) for d in docs)), "digest": digest(docs)}))


if __name__ == "__main__":
    main()
