"""The bench's Megatron side: Megatron-LM's tools/preprocess_data.py loop as that script runs it
(a multiprocessing Pool of --workers encoding JSON lines with `imap(encode, lines, 32)`, each
document's ids with EOS appended (--append-eod), written by megatron-core's
IndexedDatasetBuilder in DType.optimal_dtype(vocab)), with the HF tokenizers library as the
tokenizer (what Megatron's HuggingFaceTokenizer wraps). The script itself is not on PyPI; its
dataset writer is, in megatron-core.

    python reference_megatron_preprocess.py TOKENIZER INPUT.jsonl OUTPUT_PREFIX WORKERS

Prints {"documents": ..., "tokens": ..., "seconds": ...}.
"""

import json
import multiprocessing
import sys
import time

import numpy as np


class Encoder:
    def initializer(self, tokenizer_path):
        from tokenizers import Tokenizer

        Encoder.tokenizer = Tokenizer.from_file(tokenizer_path)
        Encoder.eod = Encoder.tokenizer.token_to_id("<|endoftext|>")

    def encode(self, line):
        data = json.loads(line)
        ids = Encoder.tokenizer.encode(data["text"], add_special_tokens=False).ids
        ids.append(Encoder.eod)
        return ids, [len(ids)], len(line)


def main():
    from megatron.core.datasets import indexed_dataset
    from tokenizers import Tokenizer

    tokenizer_path, inp, prefix, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    vocab = Tokenizer.from_file(tokenizer_path).get_vocab_size()
    start = time.perf_counter()
    encoder = Encoder()
    pool = multiprocessing.Pool(workers, initializer=encoder.initializer, initargs=(tokenizer_path,))
    builder = indexed_dataset.IndexedDatasetBuilder(
        prefix + ".bin", dtype=indexed_dataset.DType.optimal_dtype(vocab)
    )
    docs = tokens = 0
    with open(inp, encoding="utf-8") as fin:
        for ids, lens, _ in pool.imap(encoder.encode, fin, 32):
            builder.add_document(np.array(ids, dtype=np.int64), lens)
            docs += 1
            tokens += len(ids)
    builder.finalize(prefix + ".idx")
    pool.close()
    print(json.dumps({"documents": docs, "tokens": tokens, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
