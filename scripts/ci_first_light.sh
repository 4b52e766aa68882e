#!/usr/bin/env bash
# CI: rehearse the first GPU command on this CPU, as the GPU image would run it.
#
# `bash scripts/gpu_check.sh first` must work on a bare GPU image: its own python3, the
# project not installed, no asv, no torch-tb-profiler, no Ray. So: a copy of this tree
# (without .venv), a Python that can import only what the image has
# (scripts/image_env.py), and `first` with FIRST_DEVICE=cpu, which swaps the CUDA-only
# parts for their CPU equivalents and marks every figure as a rehearsal. Fails when a
# part fails, when the output folder would not come back from a GPU job (more than 8
# files, or one over 16 MiB), or when the summary or the report is missing.
# About a minute here.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
tmp=$(mktemp -d /tmp/first-light-rehearsal.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

echo "== first-light rehearsal: the image's imports only, the project not installed"
"$PYTHON" scripts/image_env.py "$tmp/image" >/dev/null
mkdir "$tmp/tree"
# tracked and new files alike, as a clone (or a GPU job's copy of the tree) would have them
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tmp/tree"
for m in asv torch_tb_profiler ray parabench; do  # the guard holds, or the rehearsal proves nothing
  if (cd /tmp && "$tmp/image/bin/python" -c "import $m" 2>/dev/null); then
    echo "!! the image environment can import $m: the rehearsal would not catch a dependency on it" >&2
    exit 1
  fi
done

rc=0
(cd "$tmp/tree" && env -u PYTHONPATH PY="$tmp/image/bin/python" FIRST_DEVICE=cpu \
   OUT="$tmp/out" WORK="$tmp/work" bash scripts/gpu_check.sh first) || rc=$?
echo
sed -n '1,12p' "$tmp/out/summary.txt" 2>/dev/null || true
[ "$rc" = 0 ] || { echo "!! first-light rehearsal failed (exit $rc): a GPU job would too" >&2; exit 1; }

files=$(find "$tmp/out" -type f | wc -l)
big=$(find "$tmp/out" -type f -size +16M | wc -l)
[ "$files" -le 8 ] && [ "$big" = 0 ] || {
  echo "!! $files files in the output folder ($big over 16 MiB): a GPU job brings back 8 of 16 MiB" >&2
  exit 1; }
for f in summary.txt bench.csv first-light.tar.gz; do
  [ -s "$tmp/out/$f" ] || { echo "!! first light left no $f" >&2; exit 1; }
done
tar tzf "$tmp/out/first-light.tar.gz" > "$tmp/listing"  # (grep -q on a pipe: SIGPIPE)
grep -qx 'first-light/report/index.html' "$tmp/listing" || {
  echo "!! the first-light tarball has no report" >&2; exit 1; }
# the parts table: every part ran and exited 0
if awk '/^part +rc +seconds/ {t = 1; next} t && NF == 0 {exit} t && $2 != "0" {print; bad = 1}
        END {exit !bad}' "$tmp/out/summary.txt"; then
  echo "!! a first-light part failed" >&2; exit 1
fi
echo "first-light rehearsal ok: $files files in the output folder"
