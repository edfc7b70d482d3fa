#!/usr/bin/env bash
# The trainer on a lent GPU machine (PyTorch 2.11 and transformers in its Python, no network),
# side by side with PyTorch on the same card in one run: median step time after warm-up,
# tokens/s and MFU of mtkit, PyTorch eager and torch.compile (bf16, fused AdamW) for
# pythia-70m and pythia-160m at batch 16 × 2,048 and the largest micro-batch mtkit fits; cuDNN
# against flash attention; a 200-step loss curve of mtkit against transformers' model from the
# same initial weights; greedy ids of the exported models against transformers'. The parts and
# their outputs are described in scripts/bench/gpu_check.py.
#
# Here, once (make build, then: the binaries stripped and compressed, the corpora cut from
# ../shared/data; the folder .gpu is ignored by git and stays under the device's 64 MiB):
#   bash scripts/gpu-prepare.sh
# The device call (about 5 minutes on an H200; torch.compile is skipped past --budget, 360 s):
#   run(command="bash scripts/gpu-check.sh .gpu", carry=[".gpu"], timeout_s=540)
# With scripts/gpu-repro.sh in the same call, under 10 minutes: scripts/gpu-session.sh.
# then record $OUT/gpu-check.md in BENCHMARKS.md's GPU section with the card's name
# ($OUT/gpu-check.log has it), and give the device back.
#
# The smoke mode on the CPU (make test runs it through train/tests/gpu_scripts.rs), with
# transformers' venv first on PATH and a folder prepared with --smoke:
#   bash scripts/gpu-prepare.sh --smoke .gpu-smoke && \
#     PATH=$MTKIT_CACHE/hf-venv/bin:$PATH bash scripts/gpu-check.sh .gpu-smoke --smoke
#
# The binary is linked against libtorch 2.11 (CPU); on the GPU machine it loads the machine's
# Python torch 2.11 libraries (libtorch_cuda.so included) through LD_LIBRARY_PATH, with the
# CUDA runtime of the machine's nvidia packages first and the copies in DIR/lib as a fallback.
set -euo pipefail
dir=$(cd "${1:-.gpu}" && pwd)
shift || true
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/scripts/gpu-env.sh" "$dir"
out=${OUT:-$dir/out}
mkdir -p "$out"
{
  echo "== $(date -u '+%F %T UTC') gpu-check on $(hostname)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi: CPU)"
  python3 -c 'import torch, transformers; print("python torch", torch.__version__, "transformers", transformers.__version__)'
  "$dir/mtkit-train" doctor
} 2>&1 | tee -a "$out/gpu-check.log"
# Token files: the first 4,200 documents of the prose (about 6.6 M tokens: one pass of the
# 200-step loss curve), or the built-in demo-web for the smoke run.
work=${GPU_WORK:-/tmp/mtkit-gpu-work}/check
if [ "${1:-}" = "--smoke" ]; then
  work=$dir/work-check
  rm -rf "$work" && mkdir -p "$work"
  "$dir/mtkit" tokenize demo-web -o "$work/tokens" --quiet
  python3 "$here/scripts/bench/gpu_check.py" "$dir" --out "$out" --work "$work" --tokens "$work/tokens" \
    --smoke --device cpu --source demo-web --budget 600
else
  rm -rf "$work" && mkdir -p "$work"
  sed -e "s#\"../.gpu/data/#\"$dir/data/#" "$here/analysis/gpu-repro-catalog.toml" > "$work/catalog.toml"
  "$dir/mtkit" tokenize prose --catalog "$work/catalog.toml" --max-docs 4200 --val-docs 0 -o "$work/tokens" --quiet
  python3 "$here/scripts/bench/gpu_check.py" "$dir" --out "$out" --work "$work" --tokens "$work/tokens" --device cuda "$@"
fi
