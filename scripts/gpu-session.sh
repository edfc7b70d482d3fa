#!/usr/bin/env bash
# Both prepared GPU checks in one device call (one machine start, under 10 minutes): the
# trainer side by side with PyTorch (gpu-check.sh, its budget cut to 150 s, so torch.compile
# may be skipped at some shapes), then the paper's central result (gpu-repro.sh, about 6 min).
# Prepare with `bash scripts/gpu-prepare.sh`, then:
#   run(command="bash scripts/gpu-session.sh .gpu", carry=[".gpu"], timeout_s=595)
# $OUT gets both scripts' files (six).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-.gpu}
timeout 230 bash "$here/scripts/gpu-check.sh" "$dir" --budget 150 || echo "gpu-session: gpu-check.sh ended with $?"
bash "$here/scripts/gpu-repro.sh" "$dir"
