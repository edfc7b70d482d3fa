"""The trainer on a GPU, side by side with PyTorch on the same card in one run (scripts/gpu-check.sh
sets up the environment and calls this; read its header for the device call).

    python gpu_check.py DIR --out OUT [--smoke] [--device cuda] [--peak 790] [--datasheet 989]

DIR holds mtkit-train and the Pythia tokenizer (gpt-neox-20b.json); --tokens names a folder of
mtkit token files with the registry's prose in prose/ (--source names another corpus there). What it runs, in order (each a subprocess; a failure is
recorded and the next part goes on):

1. Speed, per model and micro-batch: `mtkit train` (bf16, fused AdamW; median step time after
   warm-up from summary.json) and the same model in PyTorch eager (scripts/bench/reference_train.py,
   bf16 autocast, AdamW(fused=True)); pythia-70m and pythia-160m at batch 16 × 2,048 and the
   largest micro-batch of a list that mtkit fits. mtkit again with flash attention instead of
   cuDNN where cuDNN is the default (Hopper). MFU = tokens/s × (6N + 12·L·d·T) over --peak (the
   card's measured dense bf16 rate) and over --datasheet.
2. A loss curve: pythia-70m for 200 steps on the prose from the same initial weights (made by
   transformers' GPTNeoXForCausalLM and saved, then `mtkit train --init`), mtkit against
   transformers' model trained by PyTorch with the same batches and schedule; the mean training
   loss of every 10 steps from both, |Δ| at the last ten.
3. Greedy ids: the 70m and 160m runs exported (`mtkit model export --to hf`), loaded by
   transformers on the device; 20 greedy ids from mtkit (device and CPU) against transformers'.
4. torch.compile at every shape of part 1, last, while --budget lasts (compiling takes longest).

--smoke runs the same parts at toy sizes on the CPU (make test runs it, so that the commands and
the parsing cannot rot); its figures mean nothing. Results: OUT/gpu-check.json (everything),
OUT/gpu-check.md (the tables), OUT/gpu-check.log (every command and its output).
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


class Check:
    def __init__(self, a):
        self.a = a
        self.dir = os.path.abspath(a.dir)
        self.out = os.path.abspath(a.out)
        os.makedirs(self.out, exist_ok=True)
        # Run folders and checkpoints (gigabytes) stay out of OUT, whose files come back.
        self.work = os.path.abspath(a.work or os.path.join(self.out, "work"))
        os.makedirs(self.work, exist_ok=True)
        self.log = open(os.path.join(self.out, "gpu-check.log"), "a")
        self.start = time.time()
        self.results = {"device": a.device, "smoke": a.smoke, "peak_tflops": a.peak,
                        "datasheet_tflops": a.datasheet, "speed": [], "loss_curve": None, "greedy": [],
                        "skipped": []}
        self.mtkit = os.path.join(self.dir, "mtkit-train")
        self.tokens = os.path.abspath(a.tokens or os.path.join(self.dir, "tokens"))

    def say(self, msg):
        line = f"[{time.time() - self.start:6.1f}s] {msg}"
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def elapsed(self):
        return time.time() - self.start

    def run(self, args, env=None, check=True):
        """Runs a command, logs it and its output; returns (rc, stdout, stderr)."""
        self.say("$ " + " ".join(args))
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.run(args, capture_output=True, text=True, env=e)
        self.log.write(p.stdout + p.stderr)
        self.log.flush()
        if check and p.returncode != 0:
            self.say(f"  exit {p.returncode}: {(p.stderr or p.stdout).strip().splitlines()[-1:] }")
        return p.returncode, p.stdout, p.stderr

    # ---- mtkit ----------------------------------------------------------------------
    def mtkit_config(self, name, preset, batch, seq, steps, lr, min_lr, warmup, init=None, eval_every=1000):
        shape = f'init = "{init}"' if init else f'preset = "{preset}"'
        text = f"""[run]
name = "{name}"
{shape}
data = "{self.tokens}"
eval_every = {eval_every}
checkpoint_every = 100000
keep_checkpoints = 1
[[phases]]
name = "pretrain"
kind = "pretrain"
steps = {steps}
batch_size = {batch}
seq_len = {seq}
mixture = {{ {self.a.source} = 1.0 }}
schedule = {{ lr = {lr}, min_lr = {min_lr}, warmup = {warmup}, total_steps = {steps} }}
"""
        path = os.path.join(self.work, f"{name}.toml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def mtkit_train(self, name, cfg, env=None):
        run_dir = os.path.join(self.work, f"run-{name}")
        subprocess.run(["rm", "-rf", run_dir])
        args = [self.mtkit, "train", cfg, "--out", run_dir, "--device", self.a.device, "--quiet"]
        if self.a.peak:
            args += ["--peak-tflops", str(self.a.peak)]
        rc, out, err = self.run(args, env=env)
        if rc != 0:
            return None, run_dir, ("out of memory" if "out of memory" in (out + err).lower() else "failed")
        with open(os.path.join(run_dir, "summary.json")) as f:
            return json.load(f), run_dir, None

    # ---- PyTorch --------------------------------------------------------------------
    def torch_train(self, preset, batch, seq, warm, measured, extra):
        args = [sys.executable, os.path.join(HERE, "reference_train.py"), os.path.join(self.tokens, self.a.source),
                preset, str(batch), str(seq), str(warm), str(measured), "--device", self.a.device,
                "--fused", "--lr", "6e-4", "--min-lr", "6e-5", "--warmup", "5"] + extra
        if self.a.device == "cuda":
            args.append("--bf16")
        rc, out, err = self.run(args)
        if rc != 0:
            return None, ("out of memory" if "out of memory" in (out + err).lower() else "failed")
        return json.loads(out.strip().splitlines()[-1]), None

    # ---- parts ----------------------------------------------------------------------
    def speed(self):
        a = self.a
        if a.smoke:
            grid = [("tiny", [2], [])]
            seq, steps, warm, measured = 64, 8, 5, 3
        else:
            # (preset, batches to measure, larger micro-batches to try for "the largest that fits")
            grid = [("pythia-70m", [16], [128, 64, 32]), ("pythia-160m", [16], [64, 48, 32])]
            seq, steps, warm, measured = 2048, 30, 5, 25
        for preset, fixed, larger in grid:
            for b in fixed:
                self.speed_row(preset, b, seq, steps, warm, measured)
            # The largest micro-batch of the list that mtkit fits (tried largest first).
            for b in larger:
                if b in fixed or self.speed_row(preset, b, seq, steps, warm, measured, probe=True):
                    break

    def speed_row(self, preset, batch, seq, steps, warm, measured, probe=False):
        name = f"{preset}-b{batch}"
        cfg = self.mtkit_config(name, preset, batch, seq, steps, 6e-4, 6e-5, 5)
        summary, run_dir, why = self.mtkit_train(name, cfg)
        if summary is None:
            self.say(f"{name}: mtkit {why}")
            if not probe:
                self.results["speed"].append({"preset": preset, "batch": batch, "mtkit_error": why})
            return None
        tp = summary["throughput"][0]
        row = {"preset": preset, "batch": batch, "seq": seq, "steps_timed": tp["steps_timed"],
               "flops_per_token": tp["flops_per_token"], "attention": summary["attention"],
               "precision": summary["precision"],
               "mtkit": {"step_time_s": tp["step_time_s"], "tokens_per_s": tp["tokens_per_s"],
                         "wall_tokens_per_s": summary["wall_tokens_per_s"],
                         "checkpoint_time_s": summary["checkpoint_time_s"]},
               "run_dir": run_dir}
        if summary["attention"] == "cudnn" and (not probe) and self.elapsed() < self.a.budget * 0.5:
            s2, _, why2 = self.mtkit_train(name + "-flash", cfg, env={"MTKIT_SDPA": "flash"})
            if s2 is not None:
                t2 = s2["throughput"][0]
                row["mtkit_flash"] = {"step_time_s": t2["step_time_s"], "tokens_per_s": t2["tokens_per_s"],
                                      "attention": s2["attention"]}
        res, why = self.torch_train(preset, batch, seq, warm, measured, [])
        row["torch_eager"] = res if res is not None else {"error": why}
        row["timing"] = (warm, measured)
        self.derive(row)
        self.results["speed"].append(row)
        self.say(f"{name}: " + json.dumps({k: v for k, v in row.items() if k != "run_dir"}))
        return row

    def compile_rows(self):
        """torch.compile at every measured shape, last: its compilation takes the longest, so
        the other parts come first and a short budget skips only these."""
        for row in self.results["speed"]:
            if "mtkit" not in row:
                continue
            name = f"{row['preset']}-b{row['batch']}"
            if self.elapsed() > self.a.budget:
                self.results["skipped"].append(f"{name} torch.compile (time budget)")
                continue
            warm, measured = row["timing"]
            res, why = self.torch_train(row["preset"], row["batch"], row["seq"], warm, measured, ["--compile"])
            row["torch_compile"] = res if res is not None else {"error": why}
            self.derive(row)
            self.say(f"{name} torch.compile: " + json.dumps(row["torch_compile"]))

    def derive(self, row):
        """tokens/s, model TFLOP/s and MFU of every side of a row, and mtkit's speed-ups."""
        batch, seq = row["batch"], row["seq"]
        for key in ("mtkit", "mtkit_flash", "torch_eager", "torch_compile"):
            r = row.get(key)
            if r and r.get("step_time_s"):
                tps = batch * seq / r["step_time_s"]
                r["tokens_per_s"] = tps
                r["model_tflops"] = tps * row["flops_per_token"] / 1e12
                if self.a.peak:
                    r["mfu"] = r["model_tflops"] / self.a.peak
                if self.a.datasheet:
                    r["mfu_datasheet"] = r["model_tflops"] / self.a.datasheet
        for key in ("torch_eager", "torch_compile"):
            r = row.get(key)
            if r and r.get("step_time_s") and row["mtkit"].get("step_time_s"):
                row[f"mtkit_over_{key}"] = r["step_time_s"] / row["mtkit"]["step_time_s"]

    def loss_curve(self):
        a = self.a
        if a.smoke:
            preset, batch, seq, steps, every, warmup = "tiny", 2, 64, 10, 5, 2
        else:
            preset, batch, seq, steps, every, warmup = "pythia-70m", 16, 2048, 200, 10, 20
        init = os.path.join(self.work, "loss-init")
        subprocess.run(["rm", "-rf", init])
        rc, _, _ = self.run([sys.executable, os.path.join(HERE, "reference_train.py"),
                             os.path.join(self.tokens, self.a.source), preset, "1", "8", "0", "1",
                             "--model", "hf", "--save-init", init])
        if rc != 0:
            self.results["loss_curve"] = {"error": "transformers could not make the initial model"}
            return
        cfg = self.mtkit_config("loss", preset, batch, seq, steps, 6e-4, 6e-5, warmup, init=init,
                                eval_every=every)
        summary, run_dir, why = self.mtkit_train("loss", cfg)
        res, why2 = self.torch_train(preset, batch, seq, 0 if a.smoke else 5, steps - (0 if a.smoke else 5),
                                     ["--model", "hf", "--init", init, "--loss-every", str(every),
                                      "--warmup", str(warmup), "--total", str(steps)])
        if summary is None or res is None:
            self.results["loss_curve"] = {"error": f"mtkit: {why}, torch: {why2}"}
            return
        with open(os.path.join(run_dir, "metrics.csv")) as f:
            rows = [line.strip().split(",") for line in f][1:]
        mt = [float(r[4]) for r in rows]
        th = res["window_losses"]
        n = min(len(mt), len(th))
        deltas = [mt[i] - th[i] for i in range(n)]
        self.results["loss_curve"] = {
            "preset": preset, "batch": batch, "seq": seq, "steps": steps, "every": every,
            "mtkit": mt, "torch": th, "delta": deltas,
            "last_abs_delta": abs(deltas[-1]) if deltas else None,
            "max_abs_delta": max(abs(d) for d in deltas) if deltas else None,
            "within_0.02": bool(deltas) and abs(deltas[-1]) <= 0.02,
            "torch_model": "transformers GPTNeoXForCausalLM (sdpa)", "precision": summary["precision"]}
        self.say("loss curve: " + json.dumps({k: v for k, v in self.results["loss_curve"].items()
                                               if k not in ("mtkit", "torch", "delta")}))

    def greedy(self):
        done = set()
        for row in self.results["speed"]:
            if "run_dir" not in row or row["preset"] in done:
                continue
            done.add(row["preset"])
            hf = os.path.join(self.work, f"hf-{row['preset']}")
            subprocess.run(["rm", "-rf", hf])
            rc, _, _ = self.run([self.mtkit, "model", "export", row["run_dir"], "--to", "hf", "-o", hf,
                                 "--tokenizer", os.path.join(self.dir, "gpt-neox-20b.json")])
            if rc != 0:
                self.results["greedy"].append({"preset": row["preset"], "error": "export failed"})
                continue
            rc, out, err = self.run([sys.executable, os.path.join(ROOT, "tests/hf/transformers_check.py"),
                                     "reference", hf, "--ids", "10,20,30,40,50", "--out",
                                     os.path.join(self.work, f"ref-{row['preset']}.safetensors"),
                                     "--generate", "10,20,30", "--max-new-tokens", "20", "--device",
                                     self.a.device], env={"CUBLAS_WORKSPACE_CONFIG": ":4096:8"})
            if rc != 0:
                self.results["greedy"].append({"preset": row["preset"], "error": "transformers could not load it"})
                continue
            want = json.loads(out.strip().splitlines()[-1])["generated"]
            entry = {"preset": row["preset"], "transformers": want}
            for side in sorted({self.a.device, "cpu"}):
                rc, out, _ = self.run([self.mtkit, "model", "generate", hf, "--prompt-ids", "10,20,30",
                                       "--max-new-tokens", "20", "--device", side])
                got = [int(x) for x in out.strip().split(",")] if rc == 0 and out.strip() else None
                entry[f"mtkit_{side}"] = got
                entry[f"equal_{side}"] = got == want
            self.results["greedy"].append(entry)
            self.say("greedy: " + json.dumps(entry))

    # ---- report ---------------------------------------------------------------------
    def write(self):
        self.results["seconds"] = self.elapsed()
        with open(os.path.join(self.out, "gpu-check.json"), "w") as f:
            json.dump(self.results, f, indent=1)
        lines = ["| model | batch | attention | mtkit ms/step | tokens/s | MFU (peak) | MFU (datasheet) | "
                 "torch eager ms | torch compile ms | mtkit / eager | mtkit / compile | mtkit flash ms |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|"]

        def ms(r):
            return f"{1e3 * r['step_time_s']:.1f}" if r and r.get("step_time_s") else (r or {}).get("error", "–")

        def pct(r, k):
            return f"{100 * r[k]:.1f}%" if r and r.get(k) is not None else "–"

        for row in self.results["speed"]:
            m = row.get("mtkit")
            if m is None:
                lines.append(f"| {row['preset']} | {row['batch']} | | {row.get('mtkit_error')} | | | | | | | | |")
                continue
            ratio = lambda k: f"{row[k]:.2f}×" if row.get(k) else "–"  # noqa: E731
            lines.append(f"| {row['preset']} | {row['batch']} × {row['seq']} | {row['attention']} | {ms(m)} | "
                         f"{m['tokens_per_s']:.0f} | {pct(m, 'mfu')} | {pct(m, 'mfu_datasheet')} | "
                         f"{ms(row.get('torch_eager'))} | {ms(row.get('torch_compile'))} | "
                         f"{ratio('mtkit_over_torch_eager')} | {ratio('mtkit_over_torch_compile')} | "
                         f"{ms(row.get('mtkit_flash'))} |")
        lc = self.results["loss_curve"] or {}
        if "last_abs_delta" in lc:
            lines += ["", f"Loss curve ({lc['preset']}, {lc['steps']} steps of {lc['batch']} × {lc['seq']}): "
                      f"mean training loss of the last {lc['every']} steps mtkit {lc['mtkit'][-1]:.4f}, "
                      f"PyTorch + transformers {lc['torch'][-1]:.4f}, |Δ| {lc['last_abs_delta']:.4f} "
                      f"(largest over the run {lc['max_abs_delta']:.4f})."]
        for g in self.results["greedy"]:
            lines.append(f"\nGreedy ids, {g['preset']}: " + ", ".join(
                f"mtkit ({k[6:]}) {'equal' if v else 'DIFFERENT'}" for k, v in g.items() if k.startswith("equal_"))
                + (f" {g['error']}" if "error" in g else ""))
        if self.results["skipped"]:
            lines.append("\nSkipped: " + "; ".join(self.results["skipped"]))
        with open(os.path.join(self.out, "gpu-check.md"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--source", default="prose", help="the token files under DIR/tokens to train on")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--peak", type=float, default=790.0, help="measured dense bf16 TFLOP/s of the card")
    ap.add_argument("--datasheet", type=float, default=989.0, help="the datasheet's dense bf16 TFLOP/s")
    ap.add_argument("--budget", type=float, default=360.0,
                    help="seconds; the flash comparison is skipped past half of it, torch.compile past it")
    ap.add_argument("--tokens", help="mtkit token files (default DIR/tokens)")
    ap.add_argument("--work", help="run folders and checkpoints (default OUT/work; keep it out of a device's OUT)")
    a = ap.parse_args()
    c = Check(a)
    for part in (c.speed, c.loss_curve, c.greedy, c.compile_rows):
        try:
            part()
        except Exception as e:  # record and go on: one broken part must not lose the others
            c.say(f"{part.__name__} failed: {e!r}")
            c.results.setdefault("errors", []).append(f"{part.__name__}: {e!r}")
        c.write()


if __name__ == "__main__":
    main()
