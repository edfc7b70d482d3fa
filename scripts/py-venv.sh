#!/usr/bin/env bash
# The Python environment of the Python package's tests (python/tests, run by `make test`):
# maturin to build the wheel, and polars, Hugging Face datasets, pytest and tqdm, pinned, from
# PyPI, in $MTKIT_CACHE/py-venv (about 650 MB; once). Prints nothing when it is already there.
set -euo pipefail
source "$(dirname "$0")/pinned-venv.sh"
cache="${MTKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtkit}"
pinned_venv py-venv "$cache/py-venv" \
  "maturin==1.16.0 polars==2.1.0 datasets==5.2.0 pyarrow==26.0.1 pytest==9.2.0 tqdm==4.70.1"
