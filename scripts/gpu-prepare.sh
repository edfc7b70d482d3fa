#!/usr/bin/env bash
# Prepares the folder the device scripts carry to a lent GPU machine (.gpu, ignored by git):
# the stripped binaries compressed with xz (gpu-env.sh unpacks them there), the Pythia
# tokenizer, the CUDA runtime copies, and the corpora of analysis/gpu-repro-catalog.toml in
# .gpu/data (scripts/bench/repro_data.py cuts them from ../shared/data; gpu-check.sh trains on
# their prose, gpu-repro.sh on all of them; both tokenize there). About 40 MB.
#
#   bash scripts/gpu-prepare.sh            # .gpu, for the device
#   bash scripts/gpu-prepare.sh --smoke D  # D, for the CPU smoke runs of make test: the binaries
#                                          # uncompressed and no corpora (the smoke runs make
#                                          # their own)
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
if [ $smoke = 0 ]; then
  [ -d "$shared/registry" ] || { echo "gpu-prepare: $shared/registry not found (../shared/data)" >&2; exit 1; }
  rm -rf "$dir/data" "$dir/tokens"
  python3 "$here/scripts/bench/repro_data.py" full "$shared" "$dir/data" >/dev/null
fi
du -sh "$dir" | awk '{print "gpu-prepare: " $2 " holds " $1}'
