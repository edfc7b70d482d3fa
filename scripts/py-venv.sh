#!/usr/bin/env bash
# The Python environment of the Python package's tests (python/tests, run by `make test`):
# maturin to build the wheel, and polars, Hugging Face datasets, pytest and tqdm, pinned, from
# PyPI, in $MTKIT_CACHE/py-venv (about 650 MB; once). Prints nothing when it is already there.
set -euo pipefail
cache="${MTKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtkit}"
venv="$cache/py-venv"
reqs="maturin==1.16.0 polars==2.1.0 datasets==5.2.0 pyarrow==26.0.1 pytest==9.2.0 tqdm==4.70.1"
if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$reqs" ]; then
  echo "py-venv: installing $reqs into $venv (once)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check $reqs
  # Written last: a half-installed environment is never taken for a whole one.
  echo "$reqs" > "$venv/.requirements"
fi
