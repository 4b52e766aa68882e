#!/usr/bin/env bash
# CPU regression smoke for CI (about a minute on 2 cores). It cannot make CI flaky:
#  1. two real runs of the same code, compared with --threshold 5 (a "regression" would
#     need a 6x slowdown; back-to-back runs on a loaded 2-core VM differed by <= 2.4x):
#     must exit 0 and render in every format;
#  2. a planted 8x slowdown (the latest run copied with every sample x8): must exit 1,
#     name the benchmark, and emit a GitHub ::warning;
#  3. bad input must exit 2 with one line on stderr;
#  4. `compare --interleave` of HEAD against the working tree (the same code in CI) with
#     --threshold 0.5; interleaved no-change comparisons gave 0.82-1.28x on a shared VM
#     (tests/test_compare_proof.py), so exit 0;
#  5. `history` over the stored runs renders.
# Usage: scripts/ci_regression_smoke.sh   (PYTHON=... to pick the interpreter)
set -euo pipefail

PY=${PYTHON:-python}
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python  # the venv scripts/setup.sh made
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
db="$tmp/smoke.db"
sweep=(--family paraformer-fused,vit --depth 1,2 --batch 1 --threads 1 --min-time 0.05
       --no-progress --no-telemetry --db "$db")
fail() { echo "ci_regression_smoke: FAIL: $*" >&2; exit 1; }
expect() {  # expect CODE OUTFILE -- command...
    local want=$1 out=$2; shift 3
    set +e; "$@" >"$out" 2>"$out.err"; local got=$?; set -e
    [ "$got" -eq "$want" ] || { cat "$out" "$out.err" >&2; fail "exit $got, wanted $want: $*"; }
}

echo "== 1. no-change runs compare clean"
$PY -m parabench run "${sweep[@]}" >/dev/null 2>&1
$PY -m parabench run "${sweep[@]}" >/dev/null 2>&1
for fmt in text markdown json github; do
    expect 0 "$tmp/same.$fmt" -- $PY -m parabench compare latest~1 latest --db "$db" \
        --threshold 5 --format "$fmt" --out "$tmp/same-out.$fmt"
    cmp -s "$tmp/same.$fmt" "$tmp/same-out.$fmt" || fail "--out $fmt differs from stdout"
done
grep -q "no regression" "$tmp/same.text" || fail "text report lacks its summary"
grep -q "^benchmark .* verdict$" "$tmp/same.text" || fail "text table header missing"
grep -q "| benchmark |" "$tmp/same.markdown" || fail "markdown table missing"
$PY -c 'import json,sys; r=json.load(open(sys.argv[1])); assert not r["regressed"] and r["rows"]' \
    "$tmp/same.json" || fail "json report unreadable"

echo "== 2. planted 8x slowdown is flagged"
$PY - "$db" <<'PY'
import json
import sys

from parabench.records import Record
from parabench.store import Store

with Store(sys.argv[1]) as s:
    base = s.latest_run_id()
    run = s.run(base)
    rid = s.start_run(sweep=json.loads(run["sweep_json"]), preset="planted-8x",
                      command="ci_regression_smoke planted slowdown", env=json.loads(run["env_json"]))
    for r in s.records_frame([base]).itertuples():
        rec = Record.from_row(r)  # the stored point, with its samples slowed down below
        if rec.family == "paraformer-fused":
            rec.samples_ms = [t * 8 for t in rec.samples_ms]
        s.add_record(rid, rec)
    s.finish_run(rid, "finished")
PY
expect 1 "$tmp/slow.github" -- $PY -m parabench compare latest~1 latest --db "$db" \
    --threshold 5 --format github
grep -q "^::warning title=Performance regression%3A paraformer-fused" "$tmp/slow.github" \
    || fail "no ::warning annotation for the planted slowdown"
grep -q "^::warning title=Performance regression%3A vit" "$tmp/slow.github" \
    && fail "vit was not slowed but is flagged"

echo "== 3. bad input exits 2"
expect 2 "$tmp/bad" -- $PY -m parabench compare latest no-such-run --db "$db"
[ "$(wc -l <"$tmp/bad.err")" -eq 1 ] || fail "bad input should print one line"

echo "== 4. interleaved HEAD vs working tree"
if git rev-parse --verify -q HEAD >/dev/null 2>&1; then
    expect 0 "$tmp/ab.text" -- $PY -m parabench compare HEAD WORKTREE --interleave \
        --family paraformer-fused --depth 2 --threads 1 --rounds 10 --processes 2 --no-progress \
        --threshold 0.5 --db "$db"
else
    echo "(no git HEAD: skipped)"
fi

echo "== 5. history renders"
expect 0 "$tmp/hist" -- $PY -m parabench history --db "$db"
grep -q "series" "$tmp/hist" || fail "history output missing"

echo "ci_regression_smoke: OK"
