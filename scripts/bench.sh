#!/usr/bin/env bash
# `make bench`: builds mtkit and the bench's baselines, installs the Python side (tokenizers,
# NumPy, torch and DSIR from PyPI, into a virtual environment under the cache), writes the inputs from
# the real samples, runs every measurement and rewrites BENCHMARKS.md. Takes about 10 minutes on
# 2 cores once mtkit is built. Needs the real samples (shared/data beside the repository, or
# MTKIT_SHARED_DATA=DIR). Inputs (1.7 GB) go to $BENCH_WORK (default out/bench, ignored by git).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${MTKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtkit}
shared=${MTKIT_SHARED_DATA:-$root/../shared/data}
work=${BENCH_WORK:-$root/out/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
export LIBTORCH=${LIBTORCH:-$cache/libtorch-2.11.0}
log() { printf '[bench] %s\n' "$*" >&2; }

if [ ! -f "$shared/corpora/c4-en-sample-1k.jsonl.gz" ]; then
  echo "bench: the real samples are not at $shared (expected corpora/c4-en-sample-1k.jsonl.gz);" \
       "set MTKIT_SHARED_DATA to the folder that holds corpora/" >&2
  exit 1
fi

bash "$root/scripts/setup.sh"
log "building mtkit and the baselines"
(cd "$root" && cargo build --release --locked --workspace --bins \
   --example raw_encode --example raw_encode_glibc --example count_ngrams)

# The Python side, pinned: the same torch version as mtkit's libtorch, HF tokenizers (the
# package users have), NumPy, the peer tokenizers gigatoken and tokie, megatron-core (the
# dataset writer of Megatron's preprocessing, for the token-format row) and DSIR's package
# data-selection (section i runs it beside `mtkit select`).
venv="$cache/bench-venv"
source "$root/scripts/pinned-venv.sh"
pinned_venv bench-venv "$venv" \
  "torch==2.11.0 tokenizers==0.23.3 numpy==2.4.6 gigatoken==0.10.0 tokie==0.1.4 megatron-core==0.16.1 data-selection==1.0.3" \
  "about 3 GB with torch's CUDA libraries, once"

# Section g: the Python package's wheel (built by `make python`, over the same compiled
# library) and polars, beside the HF tokenizers it is compared with.
make -C "$root" --no-print-directory python
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$cache"/wheels/mtkit-*.whl
pinned_add bench-venv "$venv" polars "polars==2.1.0"

"$venv/bin/python" "$root/scripts/bench/make_inputs.py" "$shared" "$work"
# Section h's 2 GB of text that does not repeat: Debian's source packages (about 310 MB of
# downloads, kept under $work/big), one document per distinct file.
if [ ! -f "$work/big.jsonl" ]; then
  log "writing the 2 GB corpus from Debian's source packages"
  "$venv/bin/python" "$root/scripts/bench/big_corpus.py" "$work/big" "$work/big.jsonl"
fi
"$venv/bin/python" "$root/scripts/bench/run.py" \
  --mtkit "$CARGO_TARGET_DIR/release/mtkit" \
  --examples "$CARGO_TARGET_DIR/release/examples" \
  --tokenizer "$cache/tokenizers/gpt-neox-20b.json" \
  --shared "$shared" --work "$work" --out "$root/BENCHMARKS.md" "$@"
