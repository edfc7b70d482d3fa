"""`make bench`: measures mtkit against the tokenizer's limit, the authors' Python way and
PyTorch eager, side by side in one run, prints every figure and rewrites BENCHMARKS.md.

    python run.py --mtkit BIN --examples DIR --tokenizer FILE --shared DIR --work DIR --out FILE

Every figure is a ratio of two measurements taken minutes apart on the same machine. Each
subprocess is timed from start to exit (wall) and its peak RSS read from wait4. See
BENCHMARKS.md for what each figure means and what bounds it.
"""

import argparse
import datetime
import filecmp
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

THREADS = 2
MB = 1_000_000
PROX = ["c4", "starcoder", "codesearchnet"]
SELECT_POOL = ["c4", "flan", "p3", "math", "dolly", "codesearchnet", "prose"]  # make_inputs.py's select/
SELECT_DOCS = 3000
GSM8K_TEST = "gsm8k-test.jsonl.gz"
SECTIONS = "abcdefghij"


class Bench:
    def __init__(self, a):
        self.a = a
        self.catalog = os.path.join(a.work, "catalog.toml")
        self.rows = []  # (section, figure, value, target, verdict)
        self.commands = []
        self.details = {}

    # ---- running things --------------------------------------------------------------
    def run(self, cmd, env=None, label=None):
        """Runs cmd, returns (stdout, wall seconds, peak RSS in MB)."""
        full_env = dict(os.environ)
        full_env.update({"RAYON_NUM_THREADS": str(THREADS), "MTKIT_CACHE": os.path.join(self.a.work, "cache"),
                         "MTKIT_TOKENIZER": self.a.tokenizer})
        full_env.update(env or {})
        shown = " ".join(cmd)
        if env:
            shown = " ".join(f"{k}={v}" for k, v in env.items()) + " " + shown
        print(f"[bench] $ {shown}", file=sys.stderr, flush=True)
        # No machine-specific paths in BENCHMARKS.md: the venv's python and the scripts shown
        # as a reader would run them from the repository root.
        here = os.path.dirname(os.path.abspath(__file__))
        self.commands.append(shown.replace(self.a.work, "$WORK").replace(self.a.mtkit, "mtkit")
                             .replace(self.a.examples + "/", "examples/").replace(self.a.tokenizer, "$TOKENIZER")
                             .replace(sys.executable, "python").replace(here + "/", "scripts/bench/")
                             .replace(os.path.dirname(os.path.dirname(here)) + "/", "")
                             .replace(os.path.abspath(self.a.shared), "shared/data").replace("\n", "\\n"))
        out, err_file = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        # Through measure.py, so that the peak RSS is the command's own (see there).
        with tempfile.NamedTemporaryFile(suffix=".json") as result:
            p = subprocess.run([sys.executable, os.path.join(here, "measure.py"), result.name, *cmd],
                               stdout=out, stderr=err_file, env=full_env)
            measured = json.load(open(result.name)) if os.path.getsize(result.name) else None
        err_file.seek(0)
        err = err_file.read().decode("utf-8", "replace")
        self.last_stderr = err
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        if p.returncode != 0 or measured is None:
            sys.exit(f"bench: `{shown}` failed ({p.returncode}):\n{err[-3000:]}")
        wall = measured["wall"]
        rss = measured["maxrss_kib"] / 1024  # KiB -> MiB
        print(f"[bench]   {wall:.2f} s, peak RSS {rss:.0f} MiB", file=sys.stderr, flush=True)
        return text, wall, rss

    def mtkit(self, *args, env=None, threads=THREADS):
        return self.run([self.a.mtkit, "--threads", str(threads), *args], env=env)

    def example(self, name, *args):
        return self.run([os.path.join(self.a.examples, name), *args])

    def python(self, script, *args, env=None):
        here = os.path.dirname(os.path.abspath(__file__))
        return self.run([sys.executable, os.path.join(here, script), *args], env=env)

    def record(self, section, figure, value, target=None, ok=None, unit="×", digits=2):
        shown = f"{value:.{digits}f}{unit}" if isinstance(value, float) else str(value)
        verdict = "" if ok is None else ("met" if ok else "NOT met")
        self.rows.append((section, figure, shown, target or "", verdict))
        print(f"[bench] {section} {figure}: {shown} {('(target ' + target + ', ' + verdict + ')') if target else ''}",
              file=sys.stderr, flush=True)

    # ---- inputs ----------------------------------------------------------------------
    def write_catalog(self):
        cards = []
        for size in ["1doc", "10m", "50m", "200m", "1g"]:
            cards.append((f"mixed-{size}", "pretrain", f"mixed-{size}.jsonl"))
        cards.append(("registry", "pretrain", "registry.jsonl"))
        cards.append(("big", "pretrain", "big.jsonl"))
        for set_ in ["prox1k", "prox200m"]:
            for c, role in zip(PROX, ["pretrain", "midtrain", "target"]):
                cards.append((f"{set_}-{c}", role, f"{set_}-{c}.jsonl"))
        with open(self.catalog, "w") as f:
            for name, role, path in cards:
                f.write(f'[datasets.{name}]\nrole = "{role}"\npaths = ["{path}"]\ntext = "{{text}}"\n\n')
            # Section j's evaluation set, read where it lies, with the shared catalog's template.
            gsm = os.path.join(os.path.abspath(self.a.shared), "corpora", GSM8K_TEST)
            f.write(f'[datasets.gsm8k-test]\nrole = "target"\npaths = ["{gsm}"]\ntext = "{{question}}\\n{{answer}}"\n')

    def path(self, name):
        return os.path.join(self.a.work, name + ".jsonl")

    def profile(self, corpus, *extra, env=None, threads=THREADS):
        """`mtkit profile` of a whole corpus, uncut, uncached: (stats, wall, rss)."""
        out = os.path.join(self.a.work, "profile.parquet")
        text, wall, rss = self.mtkit("profile", corpus, "--catalog", self.catalog, "--max-docs", "all",
                                     "--max-chars", "0", "--max-tokens-per-doc", "0", "--no-cache",
                                     "-o", out, *extra, env=env, threads=threads)
        row = [l.split() for l in text.splitlines() if l.startswith(corpus + " ")][0]
        return {"docs": int(row[1]), "tokens": int(row[2]), "bytes": int(row[3])}, wall, rss

    # ---- a. the tokenizer's limit and beyond ----------------------------------------
    def peer(self, name):
        here = os.path.dirname(os.path.abspath(__file__))
        return json.loads(self.run([sys.executable, os.path.join(here, "peers.py"), name, self.a.tokenizer,
                                    self.path("registry")])[0])

    def tokenizer_limit(self):
        # On text that does not repeat (the registry's 210 MB), so no cache is flattered.
        # raw, mtkit, peers, raw: the baseline is the faster raw run (conservative for mtkit);
        # the run after catches a drift of the machine's speed during the section.
        # Each mtkit command twice, the faster kept, as for the baseline: one run read 6.7-7.0 s
        # for the 4-gram profile here when the same command took 5.6 s in section h of the same
        # bench (the first runs after the raw encode are slower on this machine).
        raws = [json.loads(self.example("raw_encode", self.a.tokenizer, self.path("registry"))[0])]
        s1, w1, _ = min((self.profile("registry", "--ngram", "1") for _ in range(2)), key=lambda r: r[1])
        s4, w4, _ = min((self.profile("registry", "--ngram", "4") for _ in range(2)), key=lambda r: r[1])
        tokens_dir = os.path.join(self.a.work, "tokens-registry")
        wt = None
        for _ in range(2):
            shutil.rmtree(tokens_dir, ignore_errors=True)
            _, w, _ = self.mtkit("tokenize", "registry", "--catalog", self.catalog, "--val-docs", "0", "-q",
                                 "-o", tokens_dir)
            wt = w if wt is None else min(wt, w)
        with open(os.path.join(tokens_dir, "registry", "meta.json")) as f:
            tmeta = json.load(f)
        peers = {p: self.peer(p) for p in ["hf", "gigatoken", "tokie"]}
        raws.append(json.loads(self.example("raw_encode", self.a.tokenizer, self.path("registry"))[0]))
        raw = min(raws, key=lambda r: r["seconds"])
        raw_tput = raw["bytes"] / raw["seconds"]
        for s in (s1, s4):
            if (s["tokens"], s["bytes"]) != (raw["tokens"], raw["bytes"]):
                sys.exit(f"bench: mtkit profile saw {s} but the raw encode {raw}: not the same work")
        # Shards hold one EOS per document on top of the ids.
        if tmeta["train_tokens"] != raw["tokens"] + raw["docs"]:
            sys.exit(f"bench: mtkit tokenize wrote {tmeta['train_tokens']} tokens, expected {raw['tokens']} + "
                     f"{raw['docs']} EOS")
        t1, t4, tt = s1["bytes"] / w1, s4["bytes"] / w4, raw["bytes"] / wt
        for p in peers.values():
            p["identical"] = p["digest"] == raw["digest"]
            p["mb_s"] = p["bytes"] / p["seconds"] / MB
        identical = [p for p in peers.values() if p["identical"]]
        fastest = max(identical, key=lambda p: p["mb_s"]) if identical else None
        self.details["a"] = {"raw": raw, "raw_mb_s": raw_tput / MB, "n1_wall": w1, "n4_wall": w4, "tok_wall": wt,
                             "n1_mb_s": t1 / MB, "n4_mb_s": t4 / MB, "tok_mb_s": tt / MB, "peers": peers}
        self.record("a", "profile --ngram 1 / HF raw encode (registry, 210 MB)", t1 / raw_tput, "≥ 15×",
                    t1 / raw_tput >= 15)
        if fastest:
            self.record("a", f"profile --ngram 1 (whole process) / fastest identical peer's encode "
                        f"({fastest['peer']} {fastest['version']})", t1 / (fastest["mb_s"] * MB), "> 1×",
                        t1 / (fastest["mb_s"] * MB) > 1)
        self.record("a", "profile --ngram 4 / HF raw encode (registry)", t4 / raw_tput, "≥ 5×", t4 / raw_tput >= 5)
        self.record("a", "tokenize (token files) / HF raw encode (registry)", tt / raw_tput, "≥ 5×", tt / raw_tput >= 5)
        for p in peers.values():
            self.record("a", f"peer {p['peer']} {p['version']} encode / HF raw encode (context; ids "
                        f"{'identical' if p['identical'] else 'DIFFERENT'})", p["mb_s"] * MB / raw_tput)
        glibc = json.loads(self.example("raw_encode_glibc", self.a.tokenizer, self.path("mixed-10m"))[0])
        mim = json.loads(self.example("raw_encode", self.a.tokenizer, self.path("mixed-10m"))[0])
        self.details["a"]["alloc"] = {"glibc_s": glibc["seconds"], "mimalloc_s": mim["seconds"]}
        self.record("a", "raw encode, mimalloc / glibc malloc (10 MB, context)", glibc["seconds"] / mim["seconds"])

    # ---- b. the authors' way ---------------------------------------------------------
    def proximity_pair(self, set_, extra):
        names = [f"{set_}-{c}" for c in PROX]
        out, wall_m, _ = self.mtkit("proximity", *names, "--catalog", self.catalog, "--no-cache", "--json", *extra)
        rows = [json.loads(l) for l in out.splitlines() if l.strip()]
        mt = {r["corpus"]: r for r in rows}
        ref_out, wall_p, _ = self.python("reference_similarity.py", self.a.tokenizer, *(self.path(n) for n in names))
        ref = json.loads(ref_out)
        diff = 0.0
        for n in names[:-1]:
            diff = max(diff, abs(mt[n]["sim"] - ref["sim"][n]))
            if mt[n]["pa"] is not None:  # P's own PA is not reported
                diff = max(diff, abs(mt[n]["pa"] - ref["pa"][n]))
        return wall_m, wall_p, diff, {n: (mt[n]["sim"], mt[n]["pa"] or 0.0) for n in names[:-1]}

    def authors_way(self):
        walls_m, walls_p, diffs = [], [], []
        for _ in range(3):
            wm, wp, d, vals = self.proximity_pair("prox1k", ["--max-docs", "1000"])
            walls_m.append(wm)
            walls_p.append(wp)
            diffs.append(d)
        m, p = statistics.median(walls_m), statistics.median(walls_p)
        startup = statistics.median(self.mtkit("data", "list")[1] for _ in range(3))
        self.details["b1k"] = {"mtkit_s": m, "python_s": p, "max_diff": max(diffs), "values": vals,
                               "startup_s": startup}
        self.record("b", "largest mtkit − Python difference, sim and PA (1,000 docs)", f"{max(diffs):.1e}", "≤ 1e-9",
                    max(diffs) <= 1e-9)
        self.record("b", "Python wall / mtkit wall, proximity at 1,000 docs (median of 3)", p / m, "≥ 5×", p / m >= 5)
        self.record("b", "mtkit data list wall, i.e. start-up (median of 3)", f"{startup * 1000:.0f} ms", "≤ 50 ms",
                    startup <= 0.05)
        wm, wp, d, vals = self.proximity_pair("prox200m", ["--max-docs", "all"])
        self.details["b200"] = {"mtkit_s": wm, "python_s": wp, "max_diff": d, "values": vals}
        self.record("b", "largest mtkit − Python difference, sim and PA (200 MB)", f"{d:.1e}", "≤ 1e-9", d <= 1e-9)
        self.record("b", "Python wall / mtkit wall, proximity at 200 MB", wp / wm, "≥ 10×", wp / wm >= 10)

        tokens = os.path.join(self.a.work, "tokens")
        if not os.path.exists(os.path.join(tokens, "mixed-10m", "meta.json")):
            self.mtkit("tokenize", "mixed-10m", "--catalog", self.catalog, "-o", tokens, "-q")
        shard = os.path.join(tokens, "mixed-10m")
        rust = [json.loads(self.example("count_ngrams", shard, "4")[0]) for _ in range(5)]
        py = json.loads(self.python("reference_ngrams.py", shard, "4")[0])
        if any(r["orders"] != py["orders"] for r in rust):
            sys.exit(f"bench: n-gram digests differ: mtkit {rust[0]['orders']} vs Python {py['orders']}")
        rs = statistics.median(r["seconds"] for r in rust)
        # The same runs with mimalloc's transparent huge pages off: shows what the spread is.
        env = {"MIMALLOC_ALLOW_THP": "0"}
        nothp = [json.loads(self.run([os.path.join(self.a.examples, "count_ngrams"), shard, "4"], env=env)[0])
                 for _ in range(5)]
        self.details["counter_nothp"] = [r["seconds"] for r in nothp]
        self.details["counter"] = {"rust_s": rs, "rust_all": [r["seconds"] for r in rust], "python_s": py["seconds"],
                                   "tokens": py["tokens"], "orders": py["orders"]}
        self.record("b", "Counter / mtkit counter, orders 1-4 on 2.6M tokens, 1 thread (median of 5)",
                    py["seconds"] / rs, "≥ 20×", py["seconds"] / rs >= 20)
        self.record("b", "the same, mimalloc's huge pages off (MIMALLOC_ALLOW_THP=0, context)",
                    py["seconds"] / statistics.median(self.details["counter_nothp"]))

    # ---- c. scaling ------------------------------------------------------------------
    def scaling(self):
        def one(threads):
            return self.profile("registry", "--ngram", "1", threads=threads)[1]

        def raw(threads):
            return json.loads(self.run([os.path.join(self.a.examples, "raw_encode"), self.a.tokenizer,
                                        self.path("mixed-50m")], env={"RAYON_NUM_THREADS": str(threads)})[0])["seconds"]

        # Interleaved 1, 2, 1, 2 against drift; medians.
        ones, twos = [], []
        for _ in range(2):
            ones.append(one(1))
            twos.append(one(2))
        w1, w2 = statistics.median(ones), statistics.median(twos)
        r1, r2 = raw(1), raw(2)
        self.details["threads"] = {"one_s": w1, "two_s": w2, "raw_one_s": r1, "raw_two_s": r2}
        self.record("c", "2 threads / 1 thread, profile --ngram 1 (registry, 210 MB)", w1 / w2, "≥ 1.8×",
                    w1 / w2 >= 1.8)
        self.record("c", "2 threads / 1 thread, HF raw encode (50 MB, context)", r1 / r2)
        # 10 MB three times before and three times after the 1 GB run (drift), and the fixed
        # cost of a profile (start-up, tokenizer, writing: a one-document corpus) to show the
        # per-byte rate apart from it.
        runs10 = [self.profile("mixed-10m", "--ngram", "1") for _ in range(3)]
        s1g, wg, _ = self.profile("mixed-1g", "--ngram", "1")
        runs10 += [self.profile("mixed-10m", "--ngram", "1") for _ in range(3)]
        fixed = statistics.median(self.profile("mixed-1doc", "--ngram", "1")[1] for _ in range(3))
        s10, w10 = runs10[0][0], statistics.median(r[1] for r in runs10)
        t10, tg = s10["bytes"] / w10, s1g["bytes"] / wg
        m10, mg = s10["bytes"] / (w10 - fixed), s1g["bytes"] / (wg - fixed)
        self.details["size"] = {"mb10_s": w10, "gb1_s": wg, "mb10_mb_s": t10 / MB, "gb1_mb_s": tg / MB,
                                "fixed_s": fixed, "mb10_marginal": m10 / MB, "gb1_marginal": mg / MB}
        self.record("c", "throughput 1 GB / 10 MB, profile --ngram 1 (whole process)", tg / t10, "within ±15%",
                    abs(tg / t10 - 1) <= 0.15)
        self.record("c", "the same per byte, a one-document profile's fixed cost taken out (context)", mg / m10)

    # ---- d. memory -------------------------------------------------------------------
    def memory(self):
        se, we, re = self.profile("mixed-1g", "--ngram", "4")
        sb, wb, rb = self.profile("mixed-1g", "--ngram", "4", "--ngram-buckets", str(self.a.buckets))
        self.details["memory"] = {"exact_mib": re, "bounded_mib": rb, "exact_s": we, "bounded_s": wb,
                                  "bytes": se["bytes"], "tokens": se["tokens"]}
        self.record("d", "peak RSS, exact 4-gram profile of 1 GB", f"{re:.0f} MiB", "≤ 1 GB", re * 1024 * 1024 <= 1e9)
        self.record("d", f"peak RSS, bounded (--ngram-buckets {self.a.buckets}) 4-gram profile of 1 GB",
                    f"{rb:.0f} MiB", "≤ 2 GB", rb * 1024 * 1024 <= 2e9)

    # ---- h. exact n-grams in bounded memory --------------------------------------------
    def bounded_ngrams(self):
        """Exact 4-gram profiles of the registry (210 MB that does not repeat) in memory and with
        `--memory 256M` (spilled runs merged), interleaved; the files compared byte for byte;
        then 64 shard profiles merged by the streaming `profile merge`."""
        import hashlib

        def sha(path):
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            return h.hexdigest()

        budget = 256
        tmp = os.path.join(self.a.work, "runs")
        os.makedirs(tmp, exist_ok=True)
        out = os.path.join(self.a.work, "profile.parquet")
        mem, spill, disk = [], [], []
        for _ in range(2):
            _, w, r = self.profile("registry", "--ngram", "4", "--memory", "64G")
            mem.append((w, r, sha(out)))
            size = os.path.getsize(out)
            _, w, r = self.profile("registry", "--ngram", "4", "--memory", f"{budget}M", "--tmp", tmp, "-v")
            spill.append((w, r, sha(out)))
            line = [l for l in self.last_stderr.splitlines() if "temporary disk" in l]
            disk.append(line[0].replace(self.a.work, "$WORK") if line else "(did not spill)")
        same = all(x[2] == mem[0][2] for x in mem + spill)
        wm, ws = min(x[0] for x in mem), min(x[0] for x in spill)
        rm, rs = max(x[1] for x in mem), max(x[1] for x in spill)
        left = os.listdir(tmp)
        import re
        used = [int(m.group(1)) for m in (re.search(r"\((\d+) bytes\) of temporary disk", l) for l in disk) if m]
        if used:
            self.record("h", "temporary disk at most / the final profile's size", max(used) / size, "≤ 1.5×",
                        max(used) / size <= 1.5)
        self.record("h", f"peak RSS, exact 4-gram profile of the registry with --memory {budget}M",
                    f"{rs:.0f} MiB", f"≤ {budget} MiB + 300 MB", rs * 1024 * 1024 <= budget * 1024 * 1024 + 300e6)
        self.record("h", f"throughput with --memory {budget}M (spilled) / in memory (registry, faster of 2 each)",
                    wm / ws, "≥ 0.75× (within 25%)", wm / ws >= 0.75)
        self.record("h", "spilled and in-memory profiles byte-identical (4 runs)", "yes" if same else "NO", "yes",
                    same)
        self.record("h", "runs left in --tmp after the runs", str(len(left)), "0", not left)
        # 64 shard profiles, merged by streaming; the merge must be the whole's file.
        parts = []
        for k in range(1, 65):
            p = os.path.join(self.a.work, f"part-{k:02d}.parquet")
            self.mtkit("profile", "registry", "--catalog", self.catalog, "--max-docs", "all", "--max-chars", "0",
                       "--max-tokens-per-doc", "0", "--no-cache", "-q", "--ngram", "4", "--shard", f"{k}/64",
                       "-o", p)
            parts.append(p)
        merged = os.path.join(self.a.work, "merged.parquet")
        _, wmerge, rmerge = self.mtkit("profile", "merge", *parts, "-o", merged)
        parts_bytes = sum(os.path.getsize(p) for p in parts)
        merged_same = sha(merged) == mem[0][2]
        self.record("h", f"peak RSS, profile merge of 64 shard profiles ({parts_bytes / MB:.0f} MB of parts)",
                    f"{rmerge:.0f} MiB", "≤ 300 MB", rmerge * 1024 * 1024 <= 300e6)
        self.record("h", "the merge of the 64 shards byte-identical to the whole's profile",
                    "yes" if merged_same else "NO", "yes", merged_same)
        self.details["h"] = {"budget_mib": budget, "mem": mem, "spill": spill, "disk": disk, "size": size,
                             "parts_bytes": parts_bytes, "merge_s": wmerge, "merge_mib": rmerge}
        for p in parts + [merged]:
            os.remove(p)
        # 2 GB of text that does not repeat (scripts/bench/big_corpus.py), exact 4-grams under a
        # 1 GiB budget, against the same corpus profiled in memory as 8 shards and merged.
        if not os.path.exists(self.path("big")):
            return
        reg_stats, _, _ = self.profile("registry", "--ngram", "1")
        big_budget = 1024
        st, wbig, rbig = self.profile("big", "--ngram", "4", "--memory", f"{big_budget}M", "--tmp", tmp, "-v")
        line = [l for l in self.last_stderr.splitlines() if "temporary disk" in l]
        big_sha, big_size = sha(out), os.path.getsize(out)
        parts = []
        for k in range(1, 9):
            p = os.path.join(self.a.work, f"big-part-{k}.parquet")
            self.mtkit("profile", "big", "--catalog", self.catalog, "--max-docs", "all", "--max-chars", "0",
                       "--max-tokens-per-doc", "0", "--no-cache", "-q", "--ngram", "4", "--memory", "64G",
                       "--shard", f"{k}/8", "-o", p)
            parts.append(p)
        self.mtkit("profile", "merge", *parts, "-o", merged)
        big_same = sha(merged) == big_sha
        tput_big = st["bytes"] / wbig
        tput_reg = reg_stats["bytes"] / wm
        self.record("h", f"peak RSS, exact 4-gram profile of {st['bytes'] / 1e9:.2f} GB that does not repeat "
                    f"with --memory {big_budget}M", f"{rbig:.0f} MiB", f"≤ {big_budget} MiB + 300 MB",
                    rbig * 1024 * 1024 <= big_budget * 1024 * 1024 + 300e6)
        self.record("h", "the same, byte-identical to 8 shards profiled in memory and merged",
                    "yes" if big_same else "NO", "yes", big_same)
        self.record("h", f"throughput, the {st['bytes'] / 1e9:.2f} GB spilled / the registry in memory (MB/s)",
                    tput_big / tput_reg, "≥ 0.75× (within 25%)", tput_big / tput_reg >= 0.75)
        self.details["h_big"] = {"bytes": st["bytes"], "tokens": st["tokens"], "docs": st["docs"], "wall": wbig,
                                 "rss_mib": rbig, "profile_bytes": big_size, "tput_mb_s": tput_big / MB,
                                 "registry_tput_mb_s": tput_reg / MB,
                                 "disk": line[0].replace(self.a.work, "$WORK") if line else "(did not spill)"}
        for p in parts + [merged]:
            os.remove(p)

    # ---- f. token files for the trainers --------------------------------------------
    def formats(self):
        """`tokenize --format` of the registry against `--format mtkit` (interleaved, 3 rounds,
        the fastest of each),
        against Megatron's own preprocessing loop on the same text and threads, and the peak RSS
        of each format on 1 GB."""
        walls = {f: [] for f in ["mtkit", "megatron", "olmo-core", "litdata"]}
        for _ in range(3):
            for f in walls:
                out = os.path.join(self.a.work, f"fmt-{f}")
                _, w, _ = self.mtkit("tokenize", "registry", "--catalog", self.catalog, "--val-docs", "0", "-q",
                                     "-o", out, "--format", f)
                walls[f].append(w)
        med = {f: min(v) for f, v in walls.items()}
        for f in ["megatron", "olmo-core", "litdata"]:
            r = med["mtkit"] / med[f]
            self.record("f", f"tokenize --format {f} / --format mtkit, speed (registry, 210 MB)", r,
                        "≥ 0.85× (within 15%)", r >= 0.85)
        prefix = os.path.join(self.a.work, "megatron-ref")
        ref, _, _ = self.python("reference_megatron_preprocess.py", self.a.tokenizer, self.path("registry"), prefix,
                                str(THREADS))
        ref = json.loads(ref.strip().splitlines()[-1])
        # Compared in blocks (filecmp), not read whole into this process.
        same = all(filecmp.cmp(prefix + ext, os.path.join(self.a.work, "fmt-megatron", "registry",
                                                          "registry_text_document" + ext), shallow=False)
                   for ext in (".bin", ".idx"))
        r = ref["seconds"] / med["megatron"]
        self.record("f", "Megatron preprocess_data.py loop / mtkit tokenize --format megatron (registry, 2 workers)",
                    r, "≥ 10×", r >= 10)
        self.record("f", "the two .bin/.idx pairs byte-identical", "yes" if same else "NO", "yes", same)
        rss = {}
        for f in ["megatron", "olmo-core", "litdata"]:
            _, w, m = self.mtkit("tokenize", "mixed-1g", "--catalog", self.catalog, "--val-docs", "0", "-q",
                                 "-o", os.path.join(self.a.work, f"fmt1g-{f}"), "--format", f)
            rss[f] = m
            self.record("f", f"peak RSS, tokenize --format {f} of 1 GB", f"{m:.0f} MiB", "≤ 500 MB",
                        m * 1024 * 1024 <= 500e6)
        self.details["formats"] = {"walls": walls, "megatron_reference": ref, "identical": same, "rss_1g": rss}
        for f in ["fmt-mtkit", "fmt-megatron", "fmt-olmo-core", "fmt-litdata", "megatron-ref.bin", "megatron-ref.idx",
                  "fmt1g-megatron", "fmt1g-olmo-core", "fmt1g-litdata"]:
            p = os.path.join(self.a.work, f)
            subprocess.run(["rm", "-rf", p])

    # ---- e. trainer ------------------------------------------------------------------
    def trainer(self):
        tokens = os.path.join(self.a.work, "tokens")
        # Both sides time steps the same way: the median step time after warm-up, each window
        # of steps timed between device synchronisations (mtkit's summary.json throughput,
        # whose warm-up is its WARMUP_STEPS = 5; the reference's step_tokens_per_s). The
        # difference of two runs' walls, used before, went negative when the shorter run paid
        # a cold start (libtorch read from disk) the longer did not.
        b, t, warm, measured = 8, 128, 5, 10
        steps = warm + measured
        cfg = os.path.join(self.a.work, "train-bench.toml")
        with open(cfg, "w") as f:
            f.write(f"""[run]
name = "bench"
preset = "tiny"
seed = 1234
data = "{tokens}"
validation = ["mixed-10m"]
eval_every = 100000
eval_tokens = 1024
checkpoint_every = 100000

[[phases]]
name = "pretrain"
kind = "pretrain"
steps = {steps}
batch_size = {b}
seq_len = {t}
mixture = {{ mixed-10m = 1.0 }}
schedule = {{ lr = 3e-3, min_lr = 3e-4, warmup = 6, total_steps = {steps} }}
optimizer = {{ weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, grad_clip = 1.0 }}
""")
        out = os.path.join(self.a.work, "train-bench")
        shutil.rmtree(out, ignore_errors=True)
        self.mtkit("train", cfg, "--out", out, "--device", "cpu", "-q")
        with open(os.path.join(out, "summary.json")) as f:
            phase = json.load(f)["throughput"][0]
        mt = phase["tokens_per_s"]
        shard = os.path.join(tokens, "mixed-10m")
        args = [shard, "tiny", str(b), str(t), str(warm), str(measured)]
        plain = json.loads(self.python("reference_train.py", *args, env={"OMP_NUM_THREADS": str(THREADS)})[0])
        self.details["train"] = {"mtkit_tok_s": mt, "python_tok_s": plain["step_tokens_per_s"],
                                 "mtkit_steps_timed": phase["steps_timed"], "warm": warm,
                                 "torch": plain["torch"],
                                 "python_threads": plain["threads"], "batch": b, "seq": t, "measured": measured,
                                 "losses": (plain["first_loss"], plain["last_loss"])}
        ratio = mt / plain["step_tokens_per_s"]
        self.record("e", "mtkit train / PyTorch eager, tokens/s by median step time (tiny, CPU)", ratio,
                    "≥ 1.0×", ratio >= 1.0)

    # ---- i. document selection against DSIR -------------------------------------------
    def selection(self):
        """`mtkit select` beside DSIR (data-selection 1.0.3, its defaults, num_proc = THREADS) on
        one pool of ~71 MB (six shared samples and the registry's prose) toward two targets:
        whole-process walls for weights + draw, and each selection's KL reduction on DSIR's own
        hashed features (selection_metrics.py, DSIR's featurizer) and PA (mtkit proximity, P = the
        C4 sample, --max-docs all), SELECT_DOCS documents each. Besides mtkit's defaults (the
        timed run and the target rows), --weight sum (DSIR's form of the weight) and
        --min-tokens 100 (a length filter like DSIR's 100 words) are measured, not timed."""
        folder = os.path.join(self.a.work, "select")
        pool = [os.path.join(folder, f"pool-{n}.jsonl") for n in SELECT_POOL]
        pool_bytes = sum(os.path.getsize(p) for p in pool)
        k = str(SELECT_DOCS)
        res = {"pool_bytes": pool_bytes, "docs": SELECT_DOCS, "targets": {}}
        for target in ["sciq", "gsm8k"]:
            t = os.path.join(folder, f"target-{target}.jsonl")
            names = ["mtkit", "mtkit-sum", "mtkit-min100", "dsir"]
            sel = {name: os.path.join(folder, f"{name}-{target}.jsonl") for name in names}
            walls, rss = [], 0
            for _ in range(2):
                _, w, r = self.mtkit("select", *pool, "--target", t, "-n", k, "-o", sel["mtkit"])
                walls.append(w)
                rss = max(rss, r)
            # Not timed: DSIR's form of the weight, and a length filter like DSIR's 100 words.
            self.mtkit("select", *pool, "--target", t, "-n", k, "--weight", "sum", "-o", sel["mtkit-sum"])
            self.mtkit("select", *pool, "--target", t, "-n", k, "--min-tokens", "100", "-o", sel["mtkit-min100"])
            _, w_dsir, rss_dsir = self.python("dsir_select.py", "--target", t, "--docs", k, "--num-proc",
                                              str(THREADS), "--work", os.path.join(folder, "dsir-work"),
                                              "--out", sel["dsir"], *pool)
            m = json.loads(self.python("selection_metrics.py", "--target", t, "--random-docs", k, "--pool", *pool,
                                       "--selection", *(f"{n}={p}" for n, p in sel.items()))[0])
            out, _, _ = self.mtkit("proximity", pool[0], *sel.values(), t, "--max-docs", "all", "--json")
            prox = {r["corpus"]: r for r in (json.loads(l) for l in out.splitlines() if l.strip())}
            for n in sel:
                row = prox[f"{n}-{target}"]
                m["selections"][n].update(sim=row["sim"], pa=row["pa"])
            res["targets"][target] = dict(m, mtkit_s=min(walls), mtkit_all_s=walls, mtkit_rss=rss, dsir_s=w_dsir,
                                          dsir_rss=rss_dsir)
            s = m["selections"]
            speed = w_dsir / min(walls)
            self.record("i", f"DSIR wall / `mtkit select` wall, weights + draw of {SELECT_DOCS:,} documents "
                        f"({pool_bytes / MB:.0f} MB pool, target {target})", speed, "≥ 20×", speed >= 20)
            self.record("i", f"KL reduction on DSIR's hashed features, mtkit − DSIR (target {target}; mtkit "
                        f"{s['mtkit']['kl_reduction']:.3f}, DSIR {s['dsir']['kl_reduction']:.3f})",
                        s["mtkit"]["kl_reduction"] - s["dsir"]["kl_reduction"], "≥ 0",
                        s["mtkit"]["kl_reduction"] >= s["dsir"]["kl_reduction"], unit="", digits=3)
            self.record("i", f"the selection's PA, mtkit − DSIR (target {target}, P = C4; mtkit "
                        f"{s['mtkit']['pa']:+.4f}, DSIR {s['dsir']['pa']:+.4f})",
                        s["mtkit"]["pa"] - s["dsir"]["pa"], "≥ 0", s["mtkit"]["pa"] >= s["dsir"]["pa"], unit="", digits=4)
            self.record("i", f"KL reduction / PA of each selection (target {target}): mtkit's defaults, "
                        "`--weight sum`, `--min-tokens 100`, DSIR",
                        "; ".join(f"{s[n]['kl_reduction']:.3f}, {s[n]['pa']:+.4f}" for n in names))
        # The 2 GB big corpus as the pool, mtkit alone (DSIR would take hours): select keeps 32
        # bytes per pool document and the target's n-grams, so its memory is that, not the pool.
        big = self.path("big")
        if os.path.exists(big):
            t = os.path.join(folder, "target-sciq.jsonl")
            out = os.path.join(folder, "mtkit-big-sciq.jsonl")
            _, w, r = self.mtkit("select", big, "--target", t, "-n", k, "-o", out)
            res["big"] = dict(bytes=os.path.getsize(big), wall_s=w, rss_mib=r)
            self.record("i", f"peak RSS of `mtkit select` with the {os.path.getsize(big) / 1e9:.2f} GB big corpus "
                        f"as the pool (toward SciQ, {SELECT_DOCS:,} documents, {w:.0f} s; no --memory flag: "
                        "32 bytes per pool document)", f"{r:.0f} MiB", "≤ 1 GiB + 300 MB",
                        r * 1024 * 1024 <= 1024 * 1024 * 1024 + 300e6)
        self.details["i"] = res

    # ---- j. contamination scan -----------------------------------------------------------
    def overlap(self):
        """`mtkit overlap` of the registry's 210 MB against GSM8K's test split (13-grams) beside
        `profile --ngram 1` of the same text (interleaved, the faster of two each), and against
        the brute-force Python reference of the tests (HF tokenizers + a dict of n-gram tuples),
        whose counts must be the same."""
        csv_out = os.path.join(self.a.work, "overlap.csv")
        prof, over, rss = [], [], 0
        for _ in range(2):
            _, w, _ = self.profile("registry", "--ngram", "1")
            prof.append(w)
            _, w, r = self.mtkit("overlap", "registry", "--against", "gsm8k-test", "--catalog", self.catalog,
                                 "--csv", csv_out, "-q")
            over.append(w)
            rss = max(rss, r)
        with open(csv_out) as f:
            head, row = [l.rstrip("\n").split(",") for l in f][:2]
        mt = dict(zip(head, row))
        here = os.path.dirname(os.path.abspath(__file__))
        ref_script = os.path.normpath(os.path.join(here, "..", "..", "tests", "readers", "overlap_reference.py"))
        gsm = os.path.join(os.path.abspath(self.a.shared), "corpora", GSM8K_TEST)
        out, w_ref, rss_ref = self.run([sys.executable, ref_script, self.a.tokenizer, "-n", "13", "--against",
                                        gsm + "::{question}\n{answer}", f"registry={self.path('registry')}::{{text}}"])
        ref = json.loads(out)["rows"][0]
        ours = [int(mt[c]) for c in ["documents", "contaminated_documents", "eval_items_hit", "matched_ngrams"]]
        if ours != ref[1:]:
            sys.exit(f"bench: mtkit overlap counted {ours}, the Python reference {ref[1:]}")
        self.details["j"] = {"profile_s": prof, "overlap_s": over, "rss": rss, "ref_s": w_ref, "ref_rss": rss_ref,
                             "counts": ours}
        speed = min(prof) / min(over)
        self.record("j", "`overlap` speed / `profile --ngram 1` speed, registry 210 MB against GSM8K test "
                    "(1,319 items, 13-grams)", speed, "≥ 0.67×", speed >= 0.67)
        self.record("j", "`overlap` peak RSS, the same run", rss, "≤ 300 MiB", rss <= 300, unit=" MiB", digits=0)
        self.record("j", "Python reference wall / `mtkit overlap` wall (HF tokenizers + n-gram tuples; counts "
                    "equal)", w_ref / min(over), "≥ 20×", w_ref / min(over) >= 20)

    # ---- report ----------------------------------------------------------------------
    def machine(self):
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
        import numpy, tokenizers, torch
        return (f"{cpu}, {os.cpu_count()} cores, {mem / 1024 / 1024:.0f} GiB RAM, Linux {platform.release()}; "
                f"{rustc}; mtkit {commit}; Python {platform.python_version()} with tokenizers {tokenizers.__version__}, "
                f"NumPy {numpy.__version__}, torch {torch.__version__}; {THREADS} threads everywhere")

    # ---- g. the Python package ----------------------------------------------------------
    def python_api(self):
        """mtkit.proximity against the CLI on the same three catalog corpora (interleaved,
        medians of 3 at 1,000 documents, one run at 200 MB), and mtkit.profile of an in-memory
        list of the registry's texts against HF tokenizers' encode_batch from Python."""
        g = {}
        for set_, docs, runs in [("prox1k", "1000", 3), ("prox200m", "all", 1)]:
            names = [f"{set_}-{c}" for c in PROX]
            cli, inproc, whole = [], [], []
            for _ in range(runs):
                out, wall, _ = self.mtkit("proximity", *names, "--catalog", self.catalog, "--no-cache", "--json",
                                          "--max-docs", docs)
                cli.append(wall)
                mt = {r["corpus"]: r for r in (json.loads(l) for l in out.splitlines() if l.strip())}
                py_out, py_wall, _ = self.python("python_api.py", "proximity", self.catalog, docs, *names)
                py = json.loads(py_out)
                inproc.append(py["seconds"])
                whole.append(py_wall)
                for n in names[:-1]:
                    if (mt[n]["sim"], mt[n]["pa"]) != (py["rows"][n]["sim"], py["rows"][n]["pa"]):
                        sys.exit(f"bench: mtkit.proximity gave {py['rows'][n]} for {n}, the CLI {mt[n]}")
            c, i, w = statistics.median(cli), statistics.median(inproc), statistics.median(whole)
            g[set_] = {"cli_s": c, "call_s": i, "process_s": w}
            label = "1,000 docs, medians of 3" if runs > 1 else "200 MB"
            self.record("g", f"mtkit.proximity call / CLI wall, three catalog corpora ({label}; values equal)",
                        i / c, "≤ 1.10×", i / c <= 1.10)
            self.record("g", f"the same, the whole Python process (interpreter and imports, context; {label})",
                        w / c)
        out, _, rss = self.python("python_api.py", "profile", self.a.tokenizer, self.path("registry"))
        r = json.loads(out)
        if r["mtkit_tokens"] != r["hf_tokens"]:
            sys.exit(f"bench: mtkit.profile counted {r['mtkit_tokens']} tokens, HF's encode_batch {r['hf_tokens']}")
        slow = max(r["mtkit_s"])
        g["profile"] = dict(r, rss_mib=rss)
        self.details["g"] = g
        self.record("g", f"mtkit.profile(list) / HF encode_batch from Python (registry's 210 MB in memory, "
                    f"tokenizers {r['hf_version']}, same threads)", r["hf_s"] / slow, "≥ 10×", r["hf_s"] / slow >= 10)

    def write(self, seconds):
        d = self.details
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        lines = [
            "# Benchmarks",
            "",
            "Written by `make bench` (scripts/bench.sh → scripts/bench/run.py); do not edit by hand: the "
            "next run rewrites it. The explanations after the commands come from scripts/bench/NOTES.md.",
            "",
            f"- Date: {date}; the whole bench took {seconds / 60:.1f} minutes.",
            f"- Machine: {self.machine()}.",
            "- Inputs: for the tokenizer rows (a, and the thread row of c), the registry's 210 MB of text that does "
            "not repeat (Linux and Python documentation, Python code of large PyPI projects, docstring functions); "
            "elsewhere the real C4 and code samples from shared/data (C4 en, HumanEval, HumanEval-X, MBPP, "
            "CodeSearchNet Python), repeated to fixed sizes; both written by scripts/bench/make_inputs.py; for "
            "section h's last rows, 2 GB of source files from Debian's source packages (the Linux kernel, GCC, "
            "OpenJDK, Rust's standard library, binutils; every document distinct; scripts/bench/big_corpus.py); the "
            "GPT-NeoX-20B (Pythia) tokenizer.",
            "- Every figure is a ratio of two runs on this machine within minutes of each other. Walls are "
            "whole processes (start-up, reading, writing included) unless a row says otherwise.",
            "",
            "| | figure | value | target | |",
            "|---|---|---|---|---|",
        ]
        for sec, fig, val, tgt, ok in self.rows:
            lines.append(f"| {sec} | {fig} | {val} | {tgt} | {ok} |")
        lines += ["", "## Raw measurements", ""]
        a = d["a"]
        lines += [
            f"- a. The registry's 210 MB ({a['raw']['docs']:,} documents, {a['raw']['tokens']:,} tokens; text that does "
            f"not repeat): HF tokenizers' raw encode (Rust, 0.23.2) {a['raw']['seconds']:.1f} s (the faster of a run before "
            f"and one after mtkit's; {a['raw_mb_s']:.2f} MB/s, texts already in memory); mtkit, whole processes (reading, "
            f"decompressing, writing included; the faster of two runs each): `profile --ngram 1` {a['n1_wall']:.1f} s ({a['n1_mb_s']:.1f} MB/s), "
            f"`--ngram 4` {a['n4_wall']:.1f} s ({a['n4_mb_s']:.1f} MB/s), `tokenize` {a['tok_wall']:.1f} s "
            f"({a['tok_mb_s']:.1f} MB/s). Peers (encode alone, texts in memory, ids compared by digest with HF's "
            f"{a['raw']['digest'][:16]}…): "
            + "; ".join(f"{p['peer']} {p['version']} {p['seconds']:.1f} s ({p['mb_s']:.1f} MB/s, ids "
                        f"{'identical' if p['identical'] else 'DIFFERENT: digest ' + p['digest'][:16] + ', ' + str(p['tokens']) + ' tokens'})"
                        for p in a["peers"].values())
            + f". Raw encode of 10 MB: glibc malloc {a['alloc']['glibc_s']:.1f} s, mimalloc "
            f"{a['alloc']['mimalloc_s']:.1f} s.",
            f"- b. 1,000 documents per corpus: mtkit {d['b1k']['mtkit_s']:.2f} s, Python {d['b1k']['python_s']:.2f} s "
            f"(medians of 3; `mtkit data list`, i.e. start-up alone, {d['b1k']['startup_s']:.2f} s); values: "
            + "; ".join(f"{n}: sim {s:.15f}, PA {p:+.15f}" for n, (s, p) in d["b1k"]["values"].items())
            + f". 200 MB: mtkit {d['b200']['mtkit_s']:.1f} s, Python {d['b200']['python_s']:.1f} s; values: "
            + "; ".join(f"{n}: sim {s:.15f}, PA {p:+.15f}" for n, (s, p) in d["b200"]["values"].items()) + ".",
            f"- b. N-gram counting of {d['counter']['tokens']:,} tokens (orders 1-4, distinct per order "
            f"{', '.join(str(o[0]) for o in d['counter']['orders'])}; digests equal): mtkit's counter "
            f"{d['counter']['rust_s']:.3f} s (runs: {', '.join(f'{x:.3f}' for x in d['counter']['rust_all'])}; with "
            f"MIMALLOC_ALLOW_THP=0: {', '.join(f'{x:.3f}' for x in d['counter_nothp'])}), "
            f"Python Counter {d['counter']['python_s']:.2f} s.",
            f"- c. The registry's 210 MB with 1 thread {d['threads']['one_s']:.1f} s, with 2 threads {d['threads']['two_s']:.1f} s "
            f"(medians of 2, interleaved); HF raw encode of 50 MB with 1 thread {d['threads']['raw_one_s']:.1f} s, with 2 "
            f"{d['threads']['raw_two_s']:.1f} s. "
            f"10 MB: {d['size']['mb10_s']:.2f} s (median of 6) ({d['size']['mb10_mb_s']:.2f} MB/s); 1 GB: "
            f"{d['size']['gb1_s']:.1f} s ({d['size']['gb1_mb_s']:.2f} MB/s); a one-document profile "
            f"{d['size']['fixed_s']:.2f} s, leaving {d['size']['mb10_marginal']:.2f} and {d['size']['gb1_marginal']:.2f} MB/s.",
            f"- d. 1 GB ({d['memory']['tokens']:,} tokens): exact {d['memory']['exact_mib']:.0f} MiB in "
            f"{d['memory']['exact_s']:.0f} s; bounded {d['memory']['bounded_mib']:.0f} MiB in "
            f"{d['memory']['bounded_s']:.0f} s.",
            f"- e. `tiny` preset (GPT-NeoX, 3 layers, d_model 192, vocabulary 50,304), batch {d['train']['batch']} × "
            f"{d['train']['seq']} tokens, AdamW, clipping 1.0, {d['train']['measured']} measured steps after {d['train']['warm']} "
            f"(medians of the step time): mtkit {d['train']['mtkit_tok_s']:.0f} tokens/s; PyTorch {d['train']['torch']} eager "
            f"{d['train']['python_tok_s']:.0f} tokens/s; torch threads {d['train']['python_threads']}; PyTorch's loss {d['train']['losses'][0]:.3f} → "
            f"{d['train']['losses'][1]:.3f} over the {d['train']['warm'] + d['train']['measured']} steps.",
            f"- f. `tokenize` of the registry by format, walls of three interleaved rounds: "
            + "; ".join(f"{k} {', '.join(f'{w:.1f}' for w in v)} s" for k, v in d["formats"]["walls"].items())
            + f"; Megatron's preprocessing loop {d['formats']['megatron_reference']['seconds']:.1f} s for "
            f"{d['formats']['megatron_reference']['tokens']:,} tokens (its .bin and .idx "
            f"{'byte-identical to' if d['formats']['identical'] else 'DIFFERENT from'} mtkit's); peak RSS on 1 GB: "
            + ", ".join(f"{k} {v:.0f} MiB" for k, v in d["formats"]["rss_1g"].items()) + ".",
            f"- g. The Python package (wheel {d['g']['profile']['mtkit_version']}, RAYON_NUM_THREADS={THREADS}): "
            + "; ".join(f"{k}: CLI {v['cli_s']:.2f} s, mtkit.proximity call {v['call_s']:.2f} s, whole Python "
                        f"process {v['process_s']:.2f} s" for k, v in d["g"].items() if k != "profile")
            + f". mtkit.profile of a list of the registry's {d['g']['profile']['docs']:,} texts "
            f"({d['g']['profile']['bytes'] / MB:.0f} MB, {d['g']['profile']['mtkit_tokens']:,} tokens, equal to HF's): "
            f"{', '.join(f'{x:.1f}' for x in d['g']['profile']['mtkit_s'])} s (before and after HF); HF "
            f"encode_batch {d['g']['profile']['hf_s']:.1f} s; peak RSS of that process "
            f"{d['g']['profile']['rss_mib']:.0f} MiB (HF's Encoding objects included).",
            f"- h. The registry's exact 4-gram profile ({d['h']['size'] / MB:.0f} MB file): in memory "
            + ", ".join(f"{w:.1f} s / {r:.0f} MiB" for w, r, _ in d["h"]["mem"])
            + f"; with --memory {d['h']['budget_mib']}M "
            + ", ".join(f"{w:.1f} s / {r:.0f} MiB" for w, r, _ in d["h"]["spill"])
            + "; what -v said: " + " | ".join(d["h"]["disk"])
            + f". profile merge of 64 shard profiles ({d['h']['parts_bytes'] / MB:.0f} MB): {d['h']['merge_s']:.1f} s, "
            f"{d['h']['merge_mib']:.0f} MiB."
            + (f" The {d['h_big']['bytes'] / 1e9:.2f} GB corpus ({d['h_big']['docs']:,} documents, "
               f"{d['h_big']['tokens']:,} tokens; scripts/bench/big_corpus.py): {d['h_big']['wall']:.1f} s "
               f"({d['h_big']['tput_mb_s']:.1f} MB/s against the registry's {d['h_big']['registry_tput_mb_s']:.1f} "
               f"MB/s in memory), {d['h_big']['rss_mib']:.0f} MiB, a {d['h_big']['profile_bytes'] / MB:.0f} MB "
               f"profile; what -v said: {d['h_big']['disk']}." if "h_big" in d else ""),
        ]
        if "i" in d:
            i = d["i"]
            lines.append(
                f"- i. Pool: {i['pool_bytes'] / MB:.0f} MB, one plain .jsonl per source ({', '.join(SELECT_POOL)}), "
                f"{i['docs']:,} documents drawn. "
                + "; ".join(
                    f"Target {t}: `mtkit select` {', '.join(f'{w:.1f}' for w in v['mtkit_all_s'])} s "
                    f"({v['mtkit_rss']:.0f} MiB), DSIR {v['dsir_s']:.1f} s ({v['dsir_rss']:.0f} MiB of its main "
                    f"process); KL(target ‖ random {i['docs']:,}) {v['kl_random']:.4f}; "
                    + ", ".join(f"{n}: KL {x['kl']:.4f}, reduction {x['kl_reduction']:+.4f}, sim {x['sim']:.4f}, "
                                f"PA {x['pa']:+.4f} ({x['docs']:,} docs)" for n, x in v["selections"].items())
                    for t, v in i["targets"].items()) + ".")
        if "j" in d:
            j = d["j"]
            lines.append(
                f"- j. The registry's 210 MB against GSM8K test, 13-grams: `overlap` "
                f"{', '.join(f'{w:.1f}' for w in j['overlap_s'])} s ({j['rss']:.0f} MiB), `profile --ngram 1` "
                f"{', '.join(f'{w:.1f}' for w in j['profile_s'])} s, interleaved; the Python reference "
                f"{j['ref_s']:.1f} s ({j['ref_rss']:.0f} MiB); both counted documents, contaminated documents, "
                f"items hit, matched n-grams = {', '.join(f'{c:,}' for c in j['counts'])}.")
        lines += [
            "",
            "## Commands",
            "",
            "`$WORK` is the bench's work folder (default out/bench), `$TOKENIZER` the cached Pythia tokenizer, `python` the bench's virtual environment (`~/.cache/mtkit/bench-venv`); "
            f"every command ran with RAYON_NUM_THREADS={THREADS}.",
            "",
            "```",
            *dict.fromkeys(self.commands),
            "```",
            "",
        ]
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "NOTES.md")) as f:
            lines.append(f.read())
        tmp = self.a.out + ".part"
        with open(tmp, "w") as f:
            f.write("\n".join(lines))
        os.replace(tmp, self.a.out)
        print(f"[bench] wrote {self.a.out}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    for k in ["mtkit", "examples", "tokenizer", "shared", "work", "out"]:
        ap.add_argument("--" + k, required=True)
    ap.add_argument("--buckets", type=int, default=1 << 22)
    ap.add_argument("--only", default=SECTIONS, help="sections to run (for development)")
    a = ap.parse_args()
    a.work, a.out = os.path.abspath(a.work), os.path.abspath(a.out)
    b = Bench(a)
    start = time.perf_counter()
    b.write_catalog()
    for sec, fn in [("a", b.tokenizer_limit), ("b", b.authors_way), ("c", b.scaling), ("d", b.memory),
                    ("e", b.trainer), ("f", b.formats), ("g", b.python_api), ("h", b.bounded_ngrams),
                    ("i", b.selection), ("j", b.overlap)]:
        if sec in a.only:
            fn()
    if a.only == SECTIONS:
        b.write(time.perf_counter() - start)
    for row in b.rows:
        print(" | ".join(row))


if __name__ == "__main__":
    main()
