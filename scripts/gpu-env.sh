# Sourced by the device scripts (gpu-check.sh, gpu-repro.sh) with the prepared folder DIR as
# $1: unpacks the carried binaries (DIR/*.xz, compressed by gpu-prepare.sh to fit the device's
# 64 MiB) with Python's lzma, and points the binary at the machine's Python torch 2.11
# libraries (libtorch_cuda.so included), the CUDA runtime of its nvidia packages first and the
# copies in DIR/lib as a fallback.
gpu_dir=$1
for z in "$gpu_dir"/*.xz; do
  [ -e "$z" ] || continue
  bin=${z%.xz}
  if [ ! -x "$bin" ] || [ "$z" -nt "$bin" ]; then
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$z" "$bin.part"
    chmod +x "$bin.part" && mv "$bin.part" "$bin"
  fi
done
site=$(python3 -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')
nv=$(ls -d "$site"/nvidia/*/lib "$site"/nvidia/*/*/lib 2>/dev/null | tr '\n' ':' || true)
export LD_LIBRARY_PATH="$site/torch/lib:$nv$gpu_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export MTKIT_TOKENIZER="$gpu_dir/gpt-neox-20b.json"
export MTKIT_CACHE=${GPU_MTKIT_CACHE:-/tmp/mtkit-cache}
export PYTHONUNBUFFERED=1
# transformers_check.py asks torch for deterministic algorithms, which cuBLAS needs this for.
export CUBLAS_WORKSPACE_CONFIG=:4096:8
