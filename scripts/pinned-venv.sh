#!/usr/bin/env bash
# Sourced by the scripts that keep a pinned Python environment under the cache (hf-venv.sh,
# py-venv.sh, bench.sh). A stamp file, written last, holds the requirements an environment was
# built with, so a half-installed one is never taken for a whole one and a changed pin rebuilds
# it; nothing is printed when the environment is already as pinned.

# pinned_venv LABEL DIR "REQS" [NOTE]: DIR is a virtual environment holding REQS (from PyPI),
# made afresh when its stamp differs.
pinned_venv() {
  local label=$1 venv=$2 reqs=$3 note=${4:-once}
  if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$reqs" ]; then
    echo "$label: installing $reqs into $venv ($note)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check $reqs
    echo "$reqs" > "$venv/.requirements"
  fi
}

# pinned_add LABEL DIR STAMP "REQS": REQS installed on top of the environment DIR (which
# pinned_venv made), stamped in DIR/.STAMP; made again whenever the environment was.
pinned_add() {
  local label=$1 venv=$2 stamp=$3 reqs=$4
  if [ "$(cat "$venv/.$stamp" 2>/dev/null)" != "$reqs" ]; then
    echo "$label: installing $reqs" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check $reqs
    echo "$reqs" > "$venv/.$stamp"
  fi
}
