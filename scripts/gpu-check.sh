#!/usr/bin/env bash
# Prepared check for a lent GPU machine (PyTorch 2.11 and transformers in its Python, no
# network): trains pythia-70m and pythia-160m briefly in bf16 and prints tokens/s and MFU,
# then exports each run as a Hugging Face folder, loads it with transformers on the GPU, and
# compares transformers' greedy generation with mtkit's (on the GPU and on the CPU).
#
# Here (the whole folder stays under the device's 64 MiB limit; the mtkit binary, 53 MB, does
# not travel: the corpus is tokenized here):
#   make build && rm -rf .gpu && mkdir -p .gpu/lib \
#     && cp "$MTKIT_CACHE"/target/release/mtkit-train .gpu/ && strip .gpu/mtkit-train \
#     && cp "$MTKIT_CACHE"/tokenizers/gpt-neox-20b.json .gpu/ \
#     && cp "$MTKIT_CACHE"/libtorch-2.11.0/lib/{libcudart.so.13,libcupti.so.13,libgomp.so.1} .gpu/lib/ \
#     && "$MTKIT_CACHE"/target/release/mtkit tokenize demo-web -o .gpu/tokens --quiet
# There:  bash scripts/gpu-check.sh .gpu        (carry .gpu)
# A dry run of the script itself on a CPU machine (with transformers' venv first on PATH):
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_PRESETS=pythia-14m GPU_CHECK_STEPS=2 GPU_CHECK_BATCH=1 \
#     PATH=$MTKIT_CACHE/hf-venv/bin:$PATH bash scripts/gpu-check.sh .gpu
# The binary is linked against libtorch 2.11 (CPU); there it loads the machine's Python torch
# 2.11 libraries (libtorch_cuda.so included) through LD_LIBRARY_PATH, with the CUDA runtime
# of the machine's nvidia packages first and the copies in .gpu/lib as a fallback.
set -euo pipefail
dir=$(cd "${1:-.gpu}" && pwd)
site=$(python3 -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')
nv=$(ls -d "$site"/nvidia/*/lib "$site"/nvidia/*/*/lib 2>/dev/null | tr '\n' ':' || true)
export LD_LIBRARY_PATH="$site/torch/lib:$nv$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export MTKIT_TOKENIZER="$dir/gpt-neox-20b.json" MTKIT_CACHE=/tmp/mtkit-cache
# transformers_check.py asks torch for deterministic algorithms, which cuBLAS needs this for.
export CUBLAS_WORKSPACE_CONFIG=:4096:8
m="$dir/mtkit-train"
here=$(cd "$(dirname "$0")/.." && pwd)
"$m" doctor
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || echo "(no nvidia-smi)"
python3 -c 'import torch, transformers; print("python torch", torch.__version__, "transformers", transformers.__version__)'
work=$(mktemp -d)
peak=${PEAK_TFLOPS:-989}   # H100/H200 SXM dense bf16 (the spec sheet's figure)
device=${GPU_CHECK_DEVICE:-cuda}
for preset in ${GPU_CHECK_PRESETS:-pythia-70m pythia-160m}; do
  cat > "$work/$preset.toml" <<TOML
[run]
name = "$preset"
preset = "$preset"
data = "$dir/tokens"
eval_every = 1000
checkpoint_every = 1000
[[phases]]
name = "pretrain"
kind = "pretrain"
steps = ${GPU_CHECK_STEPS:-30}
batch_size = ${GPU_CHECK_BATCH:-16}
seq_len = 2048
mixture = { demo-web = 1.0 }
schedule = { lr = 6e-4, min_lr = 6e-5, warmup = 5 }
TOML
  "$m" train "$work/$preset.toml" --out "$work/run-$preset" --device "$device" --quiet
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
  # The trained model as a Hugging Face folder, loaded by transformers on the GPU.
  hf="$work/hf-$preset"
  "$m" model export "$work/run-$preset" --to hf -o "$hf" --tokenizer "$dir/gpt-neox-20b.json"
  if ! ref=$(python3 "$here/tests/hf/transformers_check.py" reference "$hf" --ids 10,20,30,40,50 \
          --out "$work/ref-$preset.safetensors" --generate 10,20,30 --max-new-tokens 20 --device "$device" \
          --tokenize "Midtraining mixes specialised data into pretraining." 2>"$work/ref.err"); then
    echo "$preset: transformers could not load the export:"; tail -5 "$work/ref.err"; continue
  fi
  ref=$(tail -1 <<<"$ref")
  echo "$preset transformers ($device, fp32): $ref"
  gpu=$("$m" model generate "$hf" --prompt-ids 10,20,30 --max-new-tokens 20 --device "$device")
  cpu=$("$m" model generate "$hf" --prompt-ids 10,20,30 --max-new-tokens 20 --device cpu)
  want=$(python3 -c 'import json, sys; print(",".join(map(str, json.loads(sys.argv[1])["generated"])))' "$ref")
  for side in gpu cpu; do
    got=${!side}
    if [ "$got" = "$want" ]; then verdict=equal; else verdict="DIFFERENT: $got"; fi
    echo "$preset greedy ids, mtkit ($side) vs transformers ($device): $verdict"
  done
done
