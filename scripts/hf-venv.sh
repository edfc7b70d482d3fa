#!/usr/bin/env bash
# The Python environment of the tests that prove mtkit's Hugging Face checkpoints against
# transformers itself: torch 2.11.0 (the version of mtkit's libtorch) and transformers, pinned,
# from PyPI, in $MTKIT_CACHE/hf-venv (about 3 GB with torch's CUDA libraries; once), with the
# trainers' data readers beside them (below). Run by
# `make test`; prints nothing when the environment is already there.
set -euo pipefail
cache="${MTKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtkit}"
venv="$cache/hf-venv"
reqs="torch==2.11.0 transformers==5.24.0 safetensors==0.8.0 numpy==2.4.6"
if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$reqs" ]; then
  echo "hf-venv: installing $reqs into $venv (about 3 GB, once)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check $reqs
  # Written last: a half-installed environment is never taken for a whole one.
  echo "$reqs" > "$venv/.requirements"
fi
# The trainers' own readers of `mtkit tokenize --format` output (tests/token_formats.rs), into
# the same environment (they need its torch): megatron-core (0.16.1, the last for Python 3.11),
# OLMo-core, litdata and the torchvision that matches torch 2.11.
readers="megatron-core==0.16.1 ai2-olmo-core==3.0.0 litdata==0.2.76 torchvision==0.26.0"
if [ "$(cat "$venv/.readers" 2>/dev/null)" != "$readers" ]; then
  echo "hf-venv: installing $readers" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check $readers
  echo "$readers" > "$venv/.readers"
fi
