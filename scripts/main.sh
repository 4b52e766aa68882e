#!/usr/bin/env bash
# The main job on a fresh machine: install, run the quick sweep into the default
# store (results/parabench.db), and write its report (reports/latest/index.html).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
.venv/bin/python -m parabench env
.venv/bin/python -m parabench run --preset quick
.venv/bin/python -m parabench report --out reports/latest
echo "== open reports/latest/index.html"
