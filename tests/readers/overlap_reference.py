"""`mtkit overlap`'s counts, computed independently by brute force: HF tokenizers' ids
(encode without special tokens), n-grams as Python tuples in a dict of sets.

    python overlap_reference.py TOKENIZER.json -n N --against FILE::TEMPLATE NAME=FILE::TEMPLATE...

FILE is jsonl or jsonl.gz, TEMPLATE a str.format template over each record's fields
("{question}\\n{answer}"). Prints one JSON object:
  rows:  [name, documents, contaminated_documents, eval_items_hit, matched_ngrams] per corpus
  pairs: [name, record, eval_record, shared_ngrams, longest_span] per (document, EVAL item)
         pair sharing an n-gram, by corpus, record, eval_record
where a pair's shared_ngrams counts the document's windows whose n-gram the item has, and
longest_span is the longest run of consecutive such windows plus n - 1.
"""

import argparse
import gzip
import json

from tokenizers import Tokenizer


def texts(spec):
    path, template = spec.split("::", 1)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [template.format(**json.loads(line)) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tokenizer")
    ap.add_argument("-n", type=int, required=True)
    ap.add_argument("--against", required=True)
    ap.add_argument("corpora", nargs="+")
    a = ap.parse_args()
    tok = Tokenizer.from_file(a.tokenizer)
    n = a.n

    def ids_of(ts):
        return [e.ids for e in tok.encode_batch(ts, add_special_tokens=False)]

    items = ids_of(texts(a.against))
    where = {}  # n-gram -> set of items
    for i, ids in enumerate(items):
        for p in range(len(ids) - n + 1):
            where.setdefault(tuple(ids[p:p + n]), set()).add(i)

    rows, pairs = [], []
    for c in a.corpora:
        name, spec = c.split("=", 1)
        docs = ids_of(texts(spec))
        contaminated, matched, hit = 0, 0, set()
        for r, ids in enumerate(docs):
            # per item: [shared, last position, current run, longest run]
            per = {}
            any_match = False
            for p in range(len(ids) - n + 1):
                its = where.get(tuple(ids[p:p + n]))
                if not its:
                    continue
                any_match = True
                matched += 1
                for i in its:
                    hit.add(i)
                    s = per.setdefault(i, [0, -2, 0, 0])
                    s[2] = s[2] + 1 if s[1] == p - 1 else 1
                    s[0] += 1
                    s[1] = p
                    s[3] = max(s[3], s[2])
            if any_match:
                contaminated += 1
            for i in sorted(per):
                pairs.append([name, r, i, per[i][0], per[i][3] + n - 1])
        rows.append([name, len(docs), contaminated, len(hit), matched])
    print(json.dumps({"rows": rows, "pairs": pairs}))


if __name__ == "__main__":
    main()
