#!/usr/bin/env bash
# The main job on the built-in demo corpora: what the corpora are, their token profiles, the
# proximity advantage of each candidate for the demo target, and the similarity matrix.
set -euo pipefail
mtkit=${1:?usage: scripts/demo.sh PATH/TO/mtkit}
out=${DEMO_OUT:-out/demo}
mkdir -p "$out"
step() { printf '\n== %s\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "The built-in demo corpora" \
  "$mtkit" data list
step "Token profiles (documents and tokens per corpus)" \
  "$mtkit" profile demo-web demo-code demo-docstring demo-math demo-qa --max-docs all --ngram 2 -o "$out/profiles" --quiet
step "Proximity of each candidate to the target demo-docstring (pretraining corpus: demo-web)" \
  "$mtkit" proximity demo-web demo-code demo-math demo-qa demo-docstring --max-docs all --csv "$out/proximity.csv" --quiet
step "Similarity matrix of all demo corpora" \
  "$mtkit" proximity --matrix demo-web demo-code demo-docstring demo-math demo-qa --max-docs all \
  --csv "$out/matrix.csv" --plot "$out/matrix.svg" --quiet
cat "$out/matrix.csv"

printf '\nOutputs:\n'
printf '  %s\n' "$out/profiles/ (one parquet profile per corpus)" "$out/proximity.csv" "$out/matrix.csv" "$out/matrix.svg"
