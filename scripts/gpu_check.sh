#!/usr/bin/env bash
# Every GPU check of the project, as steps that run one at a time, each under a time
# limit of its own (a hang ends that step, not the command):
#
#   bash scripts/gpu_check.sh first           # FIRST on a new GPU: settles the claim in 6 min
#   bash scripts/gpu_check.sh paper report    # then, time allowing (about 9 minutes)
#   bash scripts/gpu_check.sh --list          # the steps and their limits
#
# Nothing needs installing: the image's python3 (torch, timm, pandas, seaborn,
# nvidia-ml-py, pytest...) runs the project from this checkout, put on the path here.
# Only `profile`'s TensorBoard test wants torch-tb-profiler (it skips without it;
# ../shared/tools/gpu-wheels fetches it). FIRST_DEVICE=cpu runs `first` as its CPU
# rehearsal, which CI runs (scripts/ci_first_light.sh).
#
# Where things go. $OUT (default gpu-check/) gets few files, since only 8 come back from
# a GPU job: steps.tsv ("step rc seconds" per step), first's summary.txt, bench.csv and
# first-light.tar.gz, and gpu-check.tar.gz (every other step's log, database, report and
# CSV). The work itself happens in $WORK (default gpu-check-work/, ignored by git, kept
# between commands on a machine), so `report` in a later command finds `paper`'s database.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
WORK=${WORK:-gpu-check-work}
PY=${PY:-python3}
# the project from this checkout, installed or not: parabench/ and models/paraformer/
export PYTHONPATH="$PWD:$PWD/models${PYTHONPATH:+:$PYTHONPATH}"

# name | limit in seconds (the step is killed past it) | what it runs
STEPS=(
  "first|420|device, bench, sweep, gpu tests, report, kernels in 6 min, each under its own limit (scripts/first_light.py)"
  "env|60|the environment parabench records"
  "tests|360|pytest -m gpu: graph capture, the runner on CUDA, loop == fused in bf16, NVML"
  "bench|420|Para-Former's executions vs its twin and ViT-S in turns, graph, bf16 (run --preset fused-goals), then its report"
  "paper|540|the paper preset (282 points) into \$WORK/paper.db, 60 s per point at most"
  "report|120|the HTML/Markdown report over the paper run"
  "profile|360|profiler and NVML evidence (scripts/gpu_check_profile.py)"
)

run_step() {
  case "$1" in
    first) $PY scripts/first_light.py --out "$OUT" --work "$WORK/first" \
             --device "${FIRST_DEVICE:-cuda}" ;;
    env) $PY -m parabench env ;;
    tests) $PY -m pytest -q -m gpu -rs -p no:cacheprovider $(grep -l "mark.gpu" tests/test_*.py) ;;
    bench) $PY -m parabench run --preset fused-goals --device cuda --mode graph \
             --dtype bfloat16 --depth 1,4,12,24,48 --batch 1,32,256 --rounds 7 \
             --processes 2 --turn-ms 25 --db "$WORK/bench.db" --no-progress \
             --point-timeout 60 \
           && $PY -m parabench report --db "$WORK/bench.db" --out "$WORK/bench-report" ;;
    paper) $PY -m parabench run --preset paper --db "$WORK/paper.db" --no-progress \
             --point-timeout 60 ;;
    report) $PY -m parabench report --db "$WORK/paper.db" --out "$WORK/report" ;;
    profile) $PY scripts/gpu_check_profile.py --out "$WORK/profile" --no-traces ;;
  esac
}

# one step, as the child that `timeout` runs (this script again)
if [ "${1:-}" = "--run-step" ]; then run_step "$2"; exit $?; fi

names() { for s in "${STEPS[@]}"; do echo "${s%%|*}"; done; }
limit() { for s in "${STEPS[@]}"; do IFS='|' read -r n l _ <<<"$s"; [ "$n" = "$1" ] && echo "$l"; done; }

if [ $# -eq 0 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ] || [ "$1" = "--list" ]; then
  echo "usage: bash scripts/gpu_check.sh STEP... | all     (output: \$OUT, default gpu-check/)"
  for s in "${STEPS[@]}"; do IFS='|' read -r n l what <<<"$s"; printf '  %-8s %4ss  %s\n' "$n" "$l" "$what"; done
  echo "  all      every step but first, in this order (about 25 minutes: several commands)"
  [ $# -eq 0 ] && exit 2 || exit 0
fi
wanted=("$@")
[ "$1" = "all" ] && mapfile -t wanted < <(names | grep -vx first)
for w in "${wanted[@]}"; do  # refuse a typo before spending GPU time on the others
  names | grep -qx "$w" || { echo "gpu_check: unknown step '$w' (one of: $(names | xargs))" >&2; exit 2; }
done

mkdir -p "$OUT" "$WORK"
worst=0
for w in "${wanted[@]}"; do
  echo "== $w (limit $(limit "$w") s)"
  t=$SECONDS
  # SIGTERM at the limit first (a sweep then keeps every finished point and marks its run interrupted)
  OUT=$OUT WORK=$WORK PY=$PY timeout --kill-after=15 "$(limit "$w")" \
    bash "$0" --run-step "$w" > "$WORK/$w.log" 2>&1
  rc=$?
  [ "$rc" = 124 ] && echo "   killed at its limit of $(limit "$w") s" >> "$WORK/$w.log"
  printf '%s\t%s\t%s\n' "$w" "$rc" "$((SECONDS - t))" >> "$OUT/steps.tsv"
  [ "$w" = first ] || tail -n 3 "$WORK/$w.log"
  [ "$rc" -gt "$worst" ] && worst=$rc
  # everything but first's own folder (first packs it itself), after every step, so a
  # command cut short still brings back what it finished
  tar czf "$OUT/gpu-check.tar.gz" --exclude=./first -C "$WORK" . 2>/dev/null
done
echo
printf '%-8s %-4s %s\n' step rc seconds
awk -F'\t' '{ last[$1] = $2 "\t" $3; order[$1] = NR } END { for (s in order) print order[s] "\t" s "\t" last[s] }' \
  "$OUT/steps.tsv" | sort -n | cut -f2- | awk -F'\t' '{ printf "%-8s %-4s %s\n", $1, $2, $3 }'
[ -f "$WORK/bench.log" ] && { echo; tail -n 25 "$WORK/bench.log"; }
[ -f "$WORK/first.log" ] && { echo; sed -n '/^first light on/,$p' "$WORK/first.log"; }
exit "$worst"
