#!/usr/bin/env bash
# The Python environment of the tests that prove mtkit's Hugging Face checkpoints against
# transformers itself: torch 2.11.0 (the version of mtkit's libtorch) and transformers, pinned,
# from PyPI, in $MTKIT_CACHE/hf-venv (about 3 GB with torch's CUDA libraries; once), with the
# trainers' data readers beside them (below). Run by
# `make test`; prints nothing when the environment is already there.
set -euo pipefail
source "$(dirname "$0")/pinned-venv.sh"
cache="${MTKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtkit}"
venv="$cache/hf-venv"
pinned_venv hf-venv "$venv" "torch==2.11.0 transformers==5.24.0 safetensors==0.8.0 numpy==2.4.6" \
  "about 3 GB, once"
# The trainers' own readers of `mtkit tokenize --format` output (tests/token_formats.rs), into
# the same environment (they need its torch): megatron-core (0.16.1, the last for Python 3.11),
# OLMo-core, litdata and the torchvision that matches torch 2.11.
pinned_add hf-venv "$venv" readers \
  "megatron-core==0.16.1 ai2-olmo-core==3.0.0 litdata==0.2.76 torchvision==0.26.0"
