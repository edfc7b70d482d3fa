#!/usr/bin/env bash
# Coverage-guided fuzzing of every reader of user bytes: libFuzzer through `cargo fuzz`, on
# the stable toolchain (no sanitizer: `-s none`; Rust's own bounds and overflow checks
# (debug assertions are on) turn memory errors into panics, which libFuzzer reports).
#
#   scripts/fuzz.sh SECONDS_PER_TARGET [TARGET...]   time-bounded, from the grown corpus (make fuzz: 600 s)
#   scripts/fuzz.sh ci [TARGET...]                   CI's bounded run (make fuzz-ci): a fixed number of
#                                                    executions per target from the seeds alone, with a
#                                                    fixed libFuzzer seed, so that it is the same run every
#                                                    time for the same code (about two minutes in all)
#
# Seeds: the seeds of tests/fuzz_seeded.rs (real files, the shared samples when present)
# and every input in tests/fuzz-regressions/TARGET/. The corpus each run grows is kept under
# $MTKIT_CACHE/fuzz/corpus/TARGET, so later runs go on from it. A crash leaves its input in
# $MTKIT_CACHE/fuzz/artifacts/TARGET/ and fails this script: copy it to
# tests/fuzz-regressions/TARGET/ with the fix, so that `make test` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(corpus_file template catalog run_config profile token_file hf_folder arrow_file)
cache="${MTKIT_CACHE:-$HOME/.cache/mtkit}"
work="$cache/fuzz"
mkdir -p "$work"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz 0.13.2 from crates.io" >&2
  cargo install cargo-fuzz --locked --version 0.13.2
fi

# The seeds, written by the seeded test itself (no mutations).
rm -rf "$work/seeds"
MTKIT_FUZZ_ITERS=0 MTKIT_FUZZ_SEEDS_OUT="$work/seeds" \
  cargo test --release --locked -p mtkit --test fuzz_seeded -- survive >/dev/null

# The instrumented build has its own target folder (its flags differ from the main build's).
export CARGO_TARGET_DIR="$cache/fuzz-target"
cargo fuzz build -s none
# Executions per target in CI mode (the targets differ in speed by 100×).
ci_runs() {
  case "$1" in
    corpus_file) echo 20000 ;;
    catalog) echo 30000 ;;
    arrow_file) echo 30000 ;;
    profile) echo 100000 ;;
    *) echo 300000 ;;
  esac
}
summary=()
status=0
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
  if [ "$mode" = ci ]; then
    # A fresh corpus each time: only the seeds and past crashes, so the run is reproducible.
    rm -rf "$work/ci-corpus/$t" && mkdir -p "$work/ci-corpus/$t"
    dirs=("$work/ci-corpus/$t")
    limit=(-runs="$(ci_runs "$t")" -seed=1)
    what="$(ci_runs "$t") executions"
  else
    dirs=("$work/corpus/$t")
    limit=(-max_total_time="$mode")
    what="${mode}s"
  fi
  [ -d "$work/seeds/$t" ] && dirs+=("$work/seeds/$t")
  [ -d "tests/fuzz-regressions/$t" ] && dirs+=("tests/fuzz-regressions/$t")
  log="$work/$t.log"
  echo "fuzz: $t, $what" >&2
  start=$SECONDS
  if cargo fuzz run -s none "$t" "${dirs[@]}" -- \
      "${limit[@]}" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$work/artifacts/$t/" >"$log" 2>&1; then
    runs=$(grep -oE '^Done [0-9]+ runs' "$log" | awk '{print $2}' | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | awk '{print $2}')
    summary+=("$t: ${runs:-?} executions in $((SECONDS - start))s, coverage ${cov:-?} edges, no crash")
  else
    status=1
    summary+=("$t: CRASH, input in $work/artifacts/$t/ (log: $log)")
    tail -n 40 "$log" >&2
  fi
done
printf 'fuzz: %s\n' "${summary[@]}"
exit $status
