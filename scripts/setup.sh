#!/usr/bin/env bash
# Create .venv (if needed) and install parabench with its dev and ray extras into it.
# Sourced by scripts/main.sh and scripts/test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "parabench needs Python 3.11 or newer; $PY is $("$PY" --version 2>&1 | head -n 1). Set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
# torch/torchvision: on this project's machines pip's configuration serves the
# torch 2.14.1 + torchvision 0.29.1 pair from local disk (see ../shared/DESIGN.md).
stamp=.venv/.parabench-installed
install_with_uv() {
  .venv/bin/python -m pip install -q uv >/dev/null 2>&1 || return 1
  local args
  args=$(.venv/bin/python scripts/uv_args.py) || return 1
  # --compile-bytecode: as pip does; without it every test process compiled torch anew
  # shellcheck disable=SC2086  # the arguments are one per word, without spaces
  .venv/bin/uv pip install -q --compile-bytecode --python .venv/bin/python $args -e ".[dev,ray]"
}
# reinstall when pyproject changed, or when a package appeared that the editable
# install does not map yet
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] \
   || ! .venv/bin/python -c "import parabench.cli, paraformer.model" 2>/dev/null; then
  echo "== installing parabench and its dependencies into .venv (first time: a minute or two)"
  .venv/bin/python -m pip install -q --upgrade pip
  # ray: the Ray executor's tests start a real local cluster (tests/test_ray_cluster.py).
  # uv installs the same packages as pip, read from pip's own configuration (indexes,
  # find-links, constraints), in 16 s where pip takes 96 s; pip does it where uv cannot.
  if ! install_with_uv; then
    echo "== uv could not install; installing with pip"
    .venv/bin/python -m pip install -q -e ".[dev,ray]"
  fi
  touch "$stamp"
fi
