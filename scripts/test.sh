#!/usr/bin/env bash
# The test suite on a fresh machine: install, fetch Chromium and valgrind (Debian
# packages; needs root or sudo), run pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# Debian packages the tests use for real: chromium (the report in a browser) and
# valgrind (instruction counts under Callgrind; CI's count gate needs it too)
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing Debian's ${missing[*]} for the browser test and instruction counts"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
      || echo "!! could not install ${missing[*]}: the tests that need them will be skipped"
  else
    echo "!! ${missing[*]} missing and not root: run 'sudo apt-get install ${missing[*]}'"
  fi
fi
# Test files run in parallel, one worker per core (at most 4): half the suite waits on
# worker start-ups, timeouts and subprocesses, so two cores finish it in about 4 minutes
# instead of 5. A file's tests stay on one worker (its shared fixtures run once).
# `-n 0` (or any -n) given to this script wins.
workers=$(.venv/bin/python -c 'import os; print(min(4, len(os.sched_getaffinity(0))))')
.venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
