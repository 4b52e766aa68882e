#!/usr/bin/env bash
# Every GPU check of the project, as steps that run one at a time (each well within
# the 10 minutes a GPU job command may take), all writing under one folder:
#
#   bash scripts/gpu_check.sh --list          # the steps and their time budgets
#   bash scripts/gpu_check.sh tests bench     # some steps, in this order
#   bash scripts/gpu_check.sh all             # every step (about 20 minutes)
#
# Output goes to $OUT (default gpu-check/); each step appends "step rc seconds" to
# $OUT/steps.tsv, so the table printed last covers every step run into that folder,
# across separate commands. On a lent GPU machine without network: run
# ../shared/tools/gpu-wheels here first, carry .whl, and start each command with the
# install line it prints.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
PY=${PY:-python3}

# name | budget the step is sized for | what it runs
STEPS=(
  "env|10s|the environment parabench records"
  "tests|4m|pytest -m gpu: graph capture, the runner on CUDA, loop == fused in bf16, NVML"
  "bench|6m|Para-Former executions vs serial ViT-S, interleaved (scripts/bench_paraformer.py)"
  "paper|5m|the paper preset into \$OUT/paper.db (goal: 5 minutes on one H100)"
  "report|1m|the HTML/Markdown report over the paper run"
  "profile|5m|profiler and NVML evidence (scripts/gpu_check_profile.py)"
)

run_step() {
  case "$1" in
    env) $PY -m parabench env ;;
    tests) $PY -m pytest -q -m gpu -p no:cacheprovider ;;
    bench) $PY scripts/bench_paraformer.py --device cuda --out "$OUT/bench_paraformer.csv" ;;
    paper) $PY -m parabench run --preset paper --db "$OUT/paper.db" --no-progress \
             --point-timeout 120 ;;
    report) $PY -m parabench report --db "$OUT/paper.db" --out "$OUT/report" ;;
    profile) $PY scripts/gpu_check_profile.py --out "$OUT/profile" --no-traces ;;
    *) echo "gpu_check: unknown step '$1' (see --list)" >&2; return 2 ;;
  esac
}

names() { for s in "${STEPS[@]}"; do echo "${s%%|*}"; done; }

if [ $# -eq 0 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ] || [ "$1" = "--list" ]; then
  echo "usage: bash scripts/gpu_check.sh STEP... | all     (output: \$OUT, default gpu-check/)"
  for s in "${STEPS[@]}"; do IFS='|' read -r n b what <<<"$s"; printf '  %-8s %-4s %s\n' "$n" "$b" "$what"; done
  [ $# -eq 0 ] && exit 2 || exit 0
fi
wanted=("$@")
[ "$1" = "all" ] && mapfile -t wanted < <(names)
for w in "${wanted[@]}"; do  # refuse a typo before spending GPU time on the others
  names | grep -qx "$w" || { echo "gpu_check: unknown step '$w' (one of: $(names | xargs))" >&2; exit 2; }
done

mkdir -p "$OUT"
worst=0
for w in "${wanted[@]}"; do
  echo "== $w"
  t=$SECONDS
  run_step "$w" > "$OUT/$w.txt" 2>&1
  rc=$?
  printf '%s\t%s\t%s\n' "$w" "$rc" "$((SECONDS - t))" >> "$OUT/steps.tsv"
  tail -n 3 "$OUT/$w.txt"
  [ "$rc" -gt "$worst" ] && worst=$rc
done
echo
printf '%-8s %-4s %s\n' step rc seconds
awk -F'\t' '{ last[$1] = $2 "\t" $3; order[$1] = NR } END { for (s in order) print order[s] "\t" s "\t" last[s] }' \
  "$OUT/steps.tsv" | sort -n | cut -f2- | awk -F'\t' '{ printf "%-8s %-4s %s\n", $1, $2, $3 }'
[ -f "$OUT/bench.txt" ] && { echo; tail -n 25 "$OUT/bench.txt"; }
exit "$worst"
