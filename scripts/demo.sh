#!/usr/bin/env bash
# The main job on the built-in demo corpora (`make demo`), end to end: what the corpora are,
# their token profiles, the proximity advantage of each candidate for the demo target, the
# similarity matrix (CSV, SVG and PNG heatmaps), the proposed mixtures with the top one as an
# mtkit run config, the demo verification grid trained on CPU, the regression of gain on PA
# (CSV, SVG and PNG scatter) and the paper-style table. Outputs go to $DEMO_OUT (out/demo).
set -euo pipefail
mtkit=${1:?usage: scripts/demo.sh PATH/TO/mtkit}
out=${DEMO_OUT:-out/demo}
mkdir -p "$out"
# Each step is shown as a user would type it: `mtkit`, not the path of the build.
step() {
  local shown="${*:2}"
  printf '\n== %s\n$ %s\n' "$1" "${shown//$mtkit/mtkit}"
  "${@:2}"
}

step "The built-in demo corpora" \
  "$mtkit" data list
step "Token profiles (documents and tokens per corpus)" \
  "$mtkit" profile demo-web demo-code demo-docstring demo-math demo-qa --max-docs all --ngram 2 -o "$out/profiles"
step "Proximity of each candidate to the target demo-docstring (pretraining corpus: demo-web)" \
  "$mtkit" proximity demo-web demo-code demo-math demo-qa demo-docstring --max-docs all --csv "$out/proximity.csv" --quiet
step "Similarity matrix of all demo corpora" \
  "$mtkit" proximity --matrix demo-web demo-code demo-docstring demo-math demo-qa --max-docs all \
  --csv "$out/matrix.csv" --plot "$out/matrix.svg" --plot "$out/matrix.png" --quiet
cat "$out/matrix.csv"
step "Midtraining mixtures proposed for the target (a CPU-sized budget: 120 steps × 512 tokens)" \
  "$mtkit" suggest-mix --pretrain demo-web --candidates demo-code,demo-math,demo-qa --target demo-docstring \
  --max-docs all --total-steps 120 --tokens-per-step 512 --quiet
"$mtkit" suggest-mix --pretrain demo-web --candidates demo-code,demo-math,demo-qa --target demo-docstring \
  --max-docs all --total-steps 120 --tokens-per-step 512 --quiet --emit mtkit --preset tiny --seq-len 64 \
  --lr 3e-3 --sft-epochs 0.5 --data tokens 2>/dev/null > "$out/suggested.toml"
printf '\nThe top proposal as an mtkit run config: %s (train it with: mtkit tokenize demo-web demo-code demo-docstring -o %s/tokens && mtkit train %s)\n' \
  "$out/suggested.toml" "$out" "$out/suggested.toml"

step "Verification: train the demo grid (base, midtraining with code/math/qa, CPT on code; then SFT on demo-docstring)" \
  "$mtkit" verify analysis/demo.toml --out "$out/verify" --device cpu
step "Gain against proximity advantage" \
  "$mtkit" report regress "$out/verify/runs.csv" -o "$out/regression.csv" --plot "$out/regression.svg" \
  --plot "$out/regression.png" --bootstrap 200
step "Paper-style table" \
  "$mtkit" report table "$out/verify/runs.csv" -o "$out/table.csv" --latex "$out/table.tex"

printf '\nOutputs:\n'
printf '  %s\n' "$out/profiles/ (one parquet profile per corpus)" "$out/proximity.csv" "$out/matrix.csv" "$out/matrix.svg, .png (heatmap)" \
  "$out/suggested.toml" "$out/verify/runs.csv" "$out/regression.csv" "$out/regression.svg, .png (scatter)" \
  "$out/table.csv" "$out/table.tex"

# Where the programs are: the cargo target folder under the cache, out of the way; `make
# install` copies both onto PATH (~/.local/bin), so the README's commands work as typed.
bindir=$(dirname "$mtkit")
printf '\nThe programs: %s and %s-train (in the cargo target folder).\n' "$mtkit" "$mtkit"
if command -v mtkit >/dev/null 2>&1 && [ "$(command -v mtkit)" -ef "$mtkit" ]; then
  printf 'mtkit on PATH is this build.\n'
else
  printf 'To type `mtkit` as the README does: make install   (copies both to ~/.local/bin)\n'
  printf 'or, for this shell only:            export PATH="%s:$PATH"\n' "$bindir"
fi
