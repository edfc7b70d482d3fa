"""The trainers' own readers on `mtkit tokenize --format` output (tests/token_formats.rs runs
this with the pinned environment of scripts/hf-venv.sh, which installs megatron-core, OLMo-core
and litdata from PyPI). Every command prints one JSON object on its last stdout line, or fails.

  megatron PREFIX JSONL TOKENIZER
      megatron-core's IndexedDataset reads every document of PREFIX.{bin,idx}: its ids must be
      HF tokenizers' encode of the JSONL record's `text` (no special tokens) followed by EOS.
  stream MTKIT_DIR
      The token stream of mtkit's own token files (train split) as JSON, for the other checks.
  olmo NPY_DIR MTKIT_DIR VOCAB EOS SEQ
      OLMo-core's NumpyFSLDataset over the .npy files yields mtkit's stream cut per file to
      whole sequences; olmo_core.data.utils.iter_document_indices on the .csv.gz metadata gives
      mtkit's document boundaries.
  olmo-mixture YAML SEQ
      SourceMixtureDatasetConfig.from_dict on `suggest-mix --emit olmo-core` output builds, and
      each source's share of the tokens is its target_ratio within the rounding the build does.
  litdata LIT_DIR MTKIT_DIR CHUNK_TOKENS BLOCK
      litdata.StreamingDataset with TokensLoader yields the blocks of each chunk of mtkit's
      stream, and litdata.optimize on mtkit's documents writes the same chunk files and
      index.json (but for the time stamp).
"""

import gzip
import json
import os
import struct
import sys
import tempfile

import numpy as np


def mtkit_docs(d):
    """The documents of mtkit's train split, each an int array (EOS included)."""
    with open(os.path.join(d, "train.tokens"), "rb") as f:
        magic, _ver, width, _vocab, _eos, n = struct.unpack("<8sIIIIQ", f.read(32))
    assert magic == b"MTKTOKS\0"
    ids = np.memmap(os.path.join(d, "train.tokens"), dtype=np.uint16 if width == 2 else np.uint32,
                    mode="r", offset=32, shape=(n,))
    docs = np.fromfile(os.path.join(d, "train.docs"), dtype=np.dtype([("start", "<u8"), ("len", "<u4"), ("p", "<u4")]))
    return [np.asarray(ids[s:s + l], dtype=np.int64) for s, l, _ in docs]


def megatron(prefix, jsonl, tokenizer):
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer)
    eos = tok.token_to_id("<|endoftext|>")
    texts = [json.loads(line)["text"] for line in open(jsonl) if line.strip()]
    ds = IndexedDataset(prefix)
    assert len(ds) == len(texts), (len(ds), len(texts))
    assert list(ds.document_indices) == list(range(len(texts) + 1))
    tokens = 0
    for i, text in enumerate(texts):
        want = tok.encode(text, add_special_tokens=False).ids + [eos]
        got = ds[i].tolist()
        assert got == want, f"document {i}: {got[:10]} vs {want[:10]}"
        tokens += len(got)
    print(json.dumps({"documents": len(ds), "tokens": tokens, "dtype": str(ds.index.dtype.__name__)}))


def olmo(npy_dir, mtkit_dir, vocab, eos, seq):
    from olmo_core.data import NumpyDatasetConfig, TokenizerConfig
    from olmo_core.data.numpy_dataset import NumpyFSLDatasetConfig
    from olmo_core.data.utils import iter_document_indices

    vocab, eos, seq = int(vocab), int(eos), int(seq)
    stream = np.concatenate(mtkit_docs(mtkit_dir))
    npys = sorted(os.path.join(npy_dir, f) for f in os.listdir(npy_dir) if f.endswith(".npy"))
    tok = TokenizerConfig(vocab_size=vocab, eos_token_id=eos, pad_token_id=eos)
    with tempfile.TemporaryDirectory() as work:
        cfg = NumpyFSLDatasetConfig(tokenizer=tok, paths=npys, sequence_length=seq, work_dir=work)
        dtype = cfg.get_dtype()
        ds = cfg.build()
        ds.prepare()
        got = np.concatenate([np.asarray(ds[i]["input_ids"]) for i in range(len(ds))])
    want, at, bounds = [], 0, []
    for p in npys:
        n = os.path.getsize(p) // np.dtype(dtype).itemsize
        want.append(stream[at:at + n - n % seq])
        for s, e in iter_document_indices(p, use_array_if_local=False):
            bounds.append((at + s, at + e))
        at += n
    assert at == len(stream), (at, len(stream))
    want = np.concatenate(want)
    assert np.array_equal(got, want), "OLMo-core's instances differ from mtkit's stream"
    docs = mtkit_docs(mtkit_dir)
    starts = np.cumsum([0] + [len(d) for d in docs])
    assert bounds == list(zip(starts[:-1].tolist(), starts[1:].tolist())), "document boundaries differ"
    print(json.dumps({"instances": len(got) // seq, "tokens": int(at), "files": len(npys), "dtype": np.dtype(dtype).name}))


def olmo_mixture(yaml_path, seq):
    import yaml
    from olmo_core.data.source_mixture import SourceMixtureDatasetConfig

    seq = int(seq)
    d = yaml.safe_load(open(yaml_path))["source_mixture_config"]
    cfg = SourceMixtureDatasetConfig.from_dict(d)
    cfg.render_tables = False
    cfg.quiet = True
    built = cfg.build(npdtype=np.uint16, sequence_length=seq)
    per = {s.name: sum(p.tokens for p in s.path_tokens) for s in built.sources}
    total = sum(per.values())
    out = {"requested": cfg.requested_tokens, "total": total, "sources": {}}
    for s in cfg.source_list.sources:
        share = per[s.source_name] / total
        # The build takes int(requested × ratio) tokens per source, rounded down to whole
        # sequences in each of its files: each source is short by less than one sequence per
        # file, so its share moves by at most (files + 1) × seq / total.
        bound = (len(s.resolved_paths) + 1) * seq / total + 1e-12
        assert abs(share - s.target_ratio) <= bound, (s.source_name, share, s.target_ratio, bound)
        out["sources"][s.source_name] = {"share": share, "target": s.target_ratio, "bound": bound}
    print(json.dumps(out))


class _Docs:
    """optimize's fn (picklable for its worker): document i as an int32 tensor."""

    def __init__(self, docs):
        self.docs = docs

    def __call__(self, i):
        import torch

        yield torch.tensor(self.docs[i], dtype=torch.int)


def litdata_check(lit_dir, mtkit_dir, chunk_tokens, block):
    import torch
    from litdata import StreamingDataset, TokensLoader, optimize

    chunk_tokens, block = int(chunk_tokens), int(block)
    docs = mtkit_docs(mtkit_dir)
    index = json.load(open(os.path.join(lit_dir, "index.json")))
    # The stream as blocks: each chunk's tokens cut into whole blocks (TokensLoader's rule).
    want, at = [], 0
    stream = np.concatenate(docs)
    for c in index["chunks"]:
        dim = c["dim"]
        chunk = stream[at:at + dim]
        want.extend(chunk[k * block:(k + 1) * block].tolist() for k in range(dim // block))
        at += dim
    assert at == len(stream)
    ds = StreamingDataset(lit_dir, item_loader=TokensLoader(block_size=block), shuffle=False)
    got = [ds[i].tolist() for i in range(len(ds))]
    assert got == want, f"litdata yields {len(got)} blocks, mtkit's stream {len(want)}"
    # litdata's own optimize on the same documents: the same bytes.
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "opt")

        optimize(fn=_Docs(docs), inputs=list(range(len(docs))), output_dir=out, chunk_size=chunk_tokens,
                 item_loader=TokensLoader(), num_workers=1)
        theirs = json.load(open(os.path.join(out, "index.json")))
        ours = json.load(open(os.path.join(lit_dir, "index.json")))
        theirs.pop("updated_at"), ours.pop("updated_at")
        assert theirs == ours, f"index.json differs:\n{theirs}\n{ours}"
        for c in index["chunks"]:
            a = open(os.path.join(out, c["filename"]), "rb").read()
            b = open(os.path.join(lit_dir, c["filename"]), "rb").read()
            assert a == b, f"{c['filename']} differs from optimize's"
        raw = open(os.path.join(out, "index.json")).read()
        ours_raw = open(os.path.join(lit_dir, "index.json")).read()
        strip = lambda s: s[: s.index('"updated_at"')]  # noqa: E731
        assert strip(raw) == strip(ours_raw), "index.json text differs before updated_at"
    print(json.dumps({"blocks": len(got), "chunks": len(index["chunks"])}))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "megatron":
        megatron(*args)
    elif cmd == "olmo":
        olmo(*args)
    elif cmd == "olmo-mixture":
        olmo_mixture(*args)
    elif cmd == "litdata":
        litdata_check(*args)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
