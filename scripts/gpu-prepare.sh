#!/usr/bin/env bash
# Prepares the folder the device scripts carry to a lent GPU machine (.gpu, ignored by git):
# the stripped binaries compressed with xz (gpu-env.sh unpacks them there), the Pythia
# tokenizer, the CUDA runtime copies, and token files tokenized here: the registry's prose
# for gpu-check.sh (the first 4,200 documents: about 6.6 M tokens, one pass of the 200-step loss curve) and the corpora of
# analysis/gpu-repro.toml for gpu-repro.sh. Needs ../shared/data (the registry and the samples).
#
#   bash scripts/gpu-prepare.sh            # .gpu, for the device
#   bash scripts/gpu-prepare.sh --smoke D  # D, for the CPU smoke runs of make test: the binaries
#                                          # uncompressed, the built-in demo corpora
# The binaries come from $CARGO_TARGET_DIR/release (make build first; --smoke uses what
# `cargo test --release` built).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${MTKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtkit}
release=${CARGO_TARGET_DIR:-$cache/target}/release
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
dir=${1:-$here/.gpu}
shared=${MTKIT_SHARED_DATA:-$here/../shared/data}
mkdir -p "$dir/lib"
dir=$(cd "$dir" && pwd)
cp "$cache/tokenizers/gpt-neox-20b.json" "$dir/"
for l in libcudart.so.13 libcupti.so.13 libgomp.so.1; do
  [ -e "$cache/libtorch-2.11.0/lib/$l" ] && cp -L "$cache/libtorch-2.11.0/lib/$l" "$dir/lib/"
done
for b in mtkit-train mtkit; do
  [ -x "$release/$b" ] || { echo "gpu-prepare: $release/$b is missing; run make build" >&2; exit 1; }
  cp "$release/$b" "$dir/$b.tmp" && strip "$dir/$b.tmp"
  if [ $smoke = 1 ]; then
    mv "$dir/$b.tmp" "$dir/$b"
  else
    xz -T2 -6 -c "$dir/$b.tmp" > "$dir/$b.xz" && rm -f "$dir/$b.tmp" "$dir/$b"
  fi
done
mtkit=$release/mtkit
export MTKIT_TOKENIZER="$dir/gpt-neox-20b.json"
if [ $smoke = 1 ]; then
  [ -d "$dir/tokens/demo-web" ] || "$mtkit" tokenize demo-web -o "$dir/tokens" --quiet
else
  reg="$shared/registry/catalog.toml"
  [ -f "$reg" ] || { echo "gpu-prepare: $reg not found (the registry in ../shared/data)" >&2; exit 1; }
  rm -rf "$dir/tokens/prose"
  "$mtkit" tokenize prose --catalog "$reg" --max-docs 4200 --val-docs 0 -o "$dir/tokens" --quiet
fi
du -sh "$dir" | awk '{print "gpu-prepare: " $2 " holds " $1}'
