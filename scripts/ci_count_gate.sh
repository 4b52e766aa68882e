#!/usr/bin/env bash
# Instruction-count gate for CI: deterministic, so it cannot flake on a shared CPU.
#  1. self-check: in a throwaway clone of HEAD, a no-op commit and a commit that plants
#     about 5% extra compute in every Para-Former forward; the three are counted under
#     Callgrind at once (parabench count) and compared with the exact-count rule:
#     the no-op must exit 0, the plant must exit 1.
#  2. the gate, when BASE_REF is set (the merge base in a pull request): BASE_REF and
#     the working tree are counted and compared; a count that grew beyond 1% fails CI.
# Counts miss memory-bound and GPU-only regressions (README); timings cover those.
# Cost: about 105 s a count alone on a quiet machine (torch's import under valgrind, then
# forwards at Callgrind's speed); the three counts of the self-check run at once.
# Usage: [BASE_REF=<commit>] scripts/ci_count_gate.sh   (PYTHON=... picks the interpreter)
set -euo pipefail

PY=${PYTHON:-python}
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python
if ! command -v valgrind >/dev/null; then
    echo "ci_count_gate: valgrind is not installed (apt-get install valgrind)" >&2
    exit 1
fi
root=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
db="$tmp/counts.db"
point=(--family paraformer-fused --depth 4 --batch 8 --no-progress --db "$db")
fail() { echo "ci_count_gate: FAIL: $*" >&2; exit 1; }
count() {  # count NAME REF REPO: one count run in the background, its run id in $tmp/NAME.id
    (PYTHONPATH="$root" $PY -m parabench count --ref "$2" --repo "$3" "${point[@]}" \
        >"$tmp/$1.out" 2>"$tmp/$1.err" || { cat "$tmp/$1.out" "$tmp/$1.err" >&2; exit 1; }
     tail -1 "$tmp/$1.out" | awk '{print $2}' >"$tmp/$1.id") &
}
compare() {  # compare A_NAME B_NAME WANT_EXIT
    local a b got
    a=$(cat "$tmp/$1.id") b=$(cat "$tmp/$2.id")
    set +e
    PYTHONPATH="$root" $PY -m parabench compare "$a" "$b" --db "$db" --no-save >"$tmp/$2.cmp"
    got=$?
    set -e
    grep "instructions/" "$tmp/$2.cmp" || true
    [ "$got" -eq "$3" ] || { cat "$tmp/$2.cmp" >&2; fail "$1 vs $2: exit $got, wanted $3"; }
}

echo "== 1. self-check: a no-op passes, a planted 5% compute slowdown fails"
git clone -q --no-hardlinks "$root" "$tmp/repo"
git -C "$tmp/repo" checkout -q "$(git rev-parse HEAD)"
commit() { git -C "$tmp/repo" -c user.email=ci@localhost -c user.name=ci commit -qam "$1"; }
echo "# a comment: no change in what runs" >> "$tmp/repo/models/paraformer/model.py"
commit "no-op"
git -C "$tmp/repo" tag ci-noop
git -C "$tmp/repo" checkout -q HEAD~1
# About 5% more instructions per forward of the counted point (tiny width, depth 4,
# batch 8: 11.67M instructions): a fixed float32 GEMM before every forward, 550 x 64 x 64
# multiply-adds. Sized by counting: 1900 rows added 2.02M instructions (1.173x); if a
# model change moves the ratio out of [1.02, 1.10], re-size PLANT_ROWS (the check below
# says so).
cat >> "$tmp/repo/models/paraformer/model.py" <<'PY'

_planted_forward = ParaFormer.forward
_PLANT = (torch.ones(PLANT_ROWS, 64), torch.ones(64, 64))


def _forward_with_extra_compute(self, x):
    torch.mm(*_PLANT)
    return _planted_forward(self, x)


ParaFormer.forward = _forward_with_extra_compute
PY
sed -i "s/PLANT_ROWS/${PLANT_ROWS:-550}/" "$tmp/repo/models/paraformer/model.py"
commit "planted slowdown"
git -C "$tmp/repo" tag ci-plant
base=$(git rev-parse HEAD)
count base "$base" "$tmp/repo"
count noop ci-noop "$tmp/repo"
count plant ci-plant "$tmp/repo"
wait
for n in base noop plant; do [ -s "$tmp/$n.id" ] || fail "count of $n did not finish"; done
compare base noop 0
compare base plant 1
ratio=$(grep "instructions/" "$tmp/plant.cmp" | grep -o "[0-9.]*x" | head -1 | tr -d x)
$PY -c "import sys; r=float(sys.argv[1]); sys.exit(0 if 1.02 <= r <= 1.10 else 1)" "$ratio" \
    || fail "the planted slowdown counts as ${ratio}x, not ~1.05x: re-size PLANT_ROWS"
echo "planted slowdown: ${ratio}x, flagged; no-op: not flagged"

if [ -n "${BASE_REF:-}" ]; then
    echo "== 2. gate: $BASE_REF vs the working tree"
    count gate-base "$BASE_REF" "$root"
    count gate-head WORKTREE "$root"
    wait
    compare gate-base gate-head 0
else
    echo "== 2. gate: skipped (set BASE_REF to the merge base to gate a change)"
fi
echo "ci_count_gate: OK"
