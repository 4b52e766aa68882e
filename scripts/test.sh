#!/usr/bin/env bash
# The test suite on a fresh machine: install, fetch Chromium for the browser test
# (Debian package; needs root or sudo), run pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing Debian's chromium for the report's browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "!! could not install chromium: the browser test will be skipped"
  else
    echo "!! chromium missing and not root: run 'sudo apt-get install chromium' for the browser test"
  fi
fi
.venv/bin/python -m pytest "$@"
