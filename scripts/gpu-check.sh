#!/usr/bin/env bash
# Prepared check for a lent GPU machine (PyTorch 2.11 in Python, no network): trains
# pythia-70m (and pythia-160m) briefly in bf16 and prints tokens/s and MFU.
#
# Here:   make build && mkdir -p .gpu && cp "$MTKIT_CACHE"/target/release/mtkit{,-train} .gpu/ \
#           && cp ~/.cache/mtkit/tokenizers/gpt-neox-20b.json .gpu/
# There:  bash scripts/gpu-check.sh .gpu        (carry .gpu)
# The binary is linked against libtorch 2.11; there it loads the machine's Python torch 2.11
# libraries (libtorch_cuda.so included) through LD_LIBRARY_PATH.
set -euo pipefail
dir=${1:-.gpu}
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export MTKIT_TOKENIZER="$dir/gpt-neox-20b.json" MTKIT_CACHE=/tmp/mtkit-cache
m="$dir/mtkit"
"$m" doctor
nvidia-smi --query-gpu=name --format=csv,noheader
work=$(mktemp -d)
"$m" tokenize demo-web -o "$work/tokens" --quiet
peak=${PEAK_TFLOPS:-989}   # H100 SXM dense bf16; H200 is the same chip
for preset in pythia-70m pythia-160m; do
  cat > "$work/$preset.toml" <<TOML
[run]
name = "$preset"
preset = "$preset"
data = "tokens"
eval_every = 1000
checkpoint_every = 1000
[[phases]]
name = "pretrain"
kind = "pretrain"
steps = 30
batch_size = 16
seq_len = 2048
mixture = { demo-web = 1.0 }
schedule = { lr = 6e-4, min_lr = 6e-5, warmup = 5 }
TOML
  "$m" train "$work/$preset.toml" --out "$work/run-$preset" --device cuda --quiet
  "$m" model info "$preset" | tail -1 | awk -v s="$work/run-$preset/summary.json" -v peak="$peak" '
    { params = $6; layers = $2; d = $3 }
    END {
      while ((getline line < s) > 0) {
        if (line ~ /"tokens":/) { gsub(/[^0-9.]/, "", line); tokens = line }
        if (line ~ /"wall_time_s":/) { gsub(/[^0-9.]/, "", line); secs = line }
      }
      tps = tokens / secs
      # Training FLOPs per token: 6N (weights) + 6·L·d·T (attention scores and values, causal).
      flops = 6 * params + 6 * layers * d * 2048
      printf "%s: %.0f tokens/s, MFU %.1f%% of %s TFLOP/s (bf16)\n", "'$preset'", tps, 100 * tps * flops / (peak * 1e12), peak
    }'
done
