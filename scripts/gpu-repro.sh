#!/usr/bin/env bash
# The paper's central result on a lent GPU machine, in one call: the grid fixed in advance in
# analysis/gpu-repro.toml (pythia-70m; prose pretraining; code, math and two instruction
# corpora as midtraining candidates; code and math CPT; four SFT targets), then the proximity
# of every candidate to every target, the regression of RI on PA (over all pairs and per
# target), the paper-style table, and midtraining against CPT on target loss and forgetting.
#
# Here, once (the corpora from ../shared/data into .gpu/data, the binaries stripped and xz'ed;
# .gpu is ignored by git and stays under the device's 64 MiB):
#   bash scripts/gpu-prepare.sh
# The device call (about 6 minutes on an H200 at the trainer's last measured rate):
#   run(command="bash scripts/gpu-repro.sh .gpu", carry=[".gpu"], timeout_s=540)
# With scripts/gpu-check.sh in the same call (under 10 minutes; the check's budget shortened):
#   run(command="bash scripts/gpu-session.sh .gpu", carry=[".gpu"], timeout_s=595)
# What comes back in $OUT: gpu-repro.md (the tables, r and p, timing, the card),
# gpu-repro.log (every command and its output), gpu-repro.tar.gz (runs.csv, regression.csv,
# table.csv/.tex, the scatter PNG, proximity CSVs, each run's metrics.csv and summary.json).
# reports/gpu-repro/README.md is written from them.
#
# On a user's GPU node the same plan runs as it is:
#   bash scripts/gpu-prepare.sh && mtkit verify analysis/gpu-repro.toml \
#     --catalog analysis/gpu-repro-catalog.toml --device cuda --out out/gpu-repro
# and on Slurm with `--slurm` added (the plan's [plan.slurm] asks for --gres gpu:1).
#
# --smoke: the same plan scaled to seconds (tiny model, a dozen steps, toy corpora made from
# this repository by scripts/bench/repro_data.py) on the CPU; make test runs it through
# train/tests/gpu_scripts.rs. Its numbers mean nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$(cd "${1:-.gpu}" && pwd)
smoke=0
[ "${2:-}" = "--smoke" ] && smoke=1
source "$here/scripts/gpu-env.sh" "$dir"
out=${OUT:-$dir/out-repro}
work=${GPU_WORK:-/tmp/mtkit-gpu-work}/repro
[ $smoke = 1 ] && work=$dir/work-repro
rm -rf "$work" && mkdir -p "$work/results" "$out"
log="$out/gpu-repro.log"
mtkit="$dir/mtkit"
if [ $smoke = 1 ]; then
  device=cpu
  python3 "$here/scripts/bench/repro_data.py" smoke "$here" "$dir/data-smoke" >/dev/null
  sed -e "s#\"../.gpu/data/\([a-z0-9]*\).jsonl.zst\"#\"$dir/data-smoke/\1.jsonl\"#" \
    "$here/analysis/gpu-repro-catalog.toml" > "$work/catalog.toml"
  # The plan scaled: a tiny model, 12 steps (4 before the candidates come in), SFT of 2 steps.
  sed -e 's/^preset = .*/preset = "tiny"/' -e 's/^total_steps = .*/total_steps = 12/' \
    -e 's/^batch_size = .*/batch_size = 2/' -e 's/^seq_len = .*/seq_len = 128/' \
    -e 's/^warmup = .*/warmup = 2/' -e 's/^start = .*/start = 4/' -e 's/^steps = .*/steps = 2/' \
    -e 's/^eval_tokens = .*/eval_tokens = 256/' -e 's/^val_docs = .*/val_docs = 10/' \
    -e "s#^data = .*#data = \"$work/tokens\"#" \
    "$here/analysis/gpu-repro.toml" > "$work/plan.toml"
else
  device=cuda
  sed -e "s#\"../.gpu/data/#\"$dir/data/#" "$here/analysis/gpu-repro-catalog.toml" > "$work/catalog.toml"
  sed -e "s#^data = .*#data = \"$work/tokens\"#" "$here/analysis/gpu-repro.toml" > "$work/plan.toml"
fi
cat_args=(--catalog "$work/catalog.toml")
say() { printf '%s\n' "$*" | tee -a "$log"; }
step() { say "\$ ${*//$dir\//}"; "$@" 2>&1 | tee -a "$log"; }
say "== $(date -u '+%F %T UTC') gpu-repro on $(hostname)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$log" || say "(no nvidia-smi: CPU)"
"$dir/mtkit-train" doctor 2>&1 | tee -a "$log"
start=$(date +%s.%N)
step "$mtkit" verify "$work/plan.toml" "${cat_args[@]}" --out "$work/verify" --device "$device"
verify_s=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
say "verify wall time: $verify_s s"
res=$work/results
cp "$work/verify/runs.csv" "$res/runs.csv"
for t in pydoc gsm8k sciq dolly; do
  step "$mtkit" proximity prose pycode math flan p3 "$t" "${cat_args[@]}" --csv "$res/proximity-$t.csv" --quiet
done
step "$mtkit" report regress "$res/runs.csv" --by target -o "$res/regression.csv" --plot "$res/pa-vs-ri.png" --bootstrap 1000
# The paper regresses over its midtraining mixes: the same on the midtraining rows alone.
python3 -c 'import csv, sys; r = list(csv.DictReader(open(sys.argv[1]))); w = csv.DictWriter(open(sys.argv[2], "w", newline=""), r[0].keys()); w.writeheader(); w.writerows(x for x in r if x["kind"] == "midtrain")' \
  "$res/runs.csv" "$res/runs-midtrain.csv"
step "$mtkit" report regress "$res/runs-midtrain.csv" --by target -o "$res/regression-midtrain.csv" --bootstrap 1000
step "$mtkit" report table "$res/runs.csv" -o "$res/table.csv" --latex "$res/table.tex"
mkdir -p "$res/runs"
for r in "$work/verify/runs"/*/; do
  n=$(basename "$r")
  mkdir -p "$res/runs/$n"
  cp "$r/metrics.csv" "$r/summary.json" "$res/runs/$n/"
done
python3 "$here/scripts/bench/repro_report.py" "$res" "$verify_s" "$log" > "$out/gpu-repro.md"
cat "$out/gpu-repro.md" | tee -a "$log"
tar -C "$work" -czf "$out/gpu-repro.tar.gz" results
say "results: $out/gpu-repro.md, $out/gpu-repro.log, $out/gpu-repro.tar.gz"
