#!/usr/bin/env bash
# Every GPU check of the project in one run (GPU time is scarce). Writes under $OUT
# (default: gpu-check/) and prints a short table last. On the lent device machine,
# first run ../shared/tools/gpu-wheels here, carry .whl, and prefix the install line
# it prints; then: bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
PY=${PY:-python3}
step() { echo "== $1"; local t=$SECONDS; shift; "$@"; local rc=$?; echo "$rc $((SECONDS - t))" > "$OUT/.rc"; return $rc; }
summary=()
record() { read -r rc s < "$OUT/.rc"; summary+=("$(printf '%-34s rc=%-3s %5ss' "$1" "$rc" "$s")"); }

step "environment" $PY -m parabench env > "$OUT/env.txt" 2>&1; record "parabench env"
step "GPU tests" $PY -m pytest -q -m gpu -p no:cacheprovider > "$OUT/pytest_gpu.txt" 2>&1; record "pytest -m gpu"
step "Para-Former loop vs fused vs serial ViT-S (eager + CUDA graph)" \
  $PY scripts/bench_paraformer.py --device cuda --out "$OUT/bench_paraformer.csv" > "$OUT/bench_paraformer.txt" 2>&1
record "bench_paraformer (cuda)"
step "paper preset (wall time goal: < 10 min)" \
  $PY -m parabench run --preset paper --db "$OUT/paper.db" --no-progress > "$OUT/paper_run.txt" 2>&1
record "run --preset paper"
step "report over the paper run" $PY -m parabench report --db "$OUT/paper.db" --out "$OUT/report" > "$OUT/report.txt" 2>&1
record "report (paper)"
step "profiling evidence" $PY scripts/gpu_check_profile.py --out "$OUT/profile" --no-traces > "$OUT/profile.txt" 2>&1
record "gpu_check_profile"
echo
printf '%s\n' "${summary[@]}"
tail -n 30 "$OUT/bench_paraformer.txt" 2>/dev/null
