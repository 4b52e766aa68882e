"""Print pip's effective configuration as `uv pip install` arguments, one per line.

uv does not read pip's configuration files or PIP_* variables; on machines whose pip is
pointed at local wheels, extra indexes and a constraints file (the torch/torchvision
pair of ../shared/DESIGN.md), uv must be told the same, or it would resolve something
else. `--index-strategy unsafe-best-match` makes uv weigh every index as pip does.
A setting uv has no counterpart for makes this exit 1, and setup.sh installs with pip.
"""
from __future__ import annotations

import re
import subprocess
import sys

#: pip setting -> uv flag (several values, separated by whitespace, give several flags)
FLAGS = {"find-links": "--find-links", "index-url": "--index-url",
         "extra-index-url": "--extra-index-url", "constraint": "--constraint",
         "no-index": "--no-index", "trusted-host": "--allow-insecure-host"}
#: settings that do not change what is installed
IGNORED = {"cert", "default-timeout", "disable-pip-version-check", "timeout", "quiet",
           "progress-bar", "no-cache-dir", "root-user-action"}


def pip_settings() -> dict[str, str]:
    """`pip config list` (files, then PIP_* variables, which win) as {setting: value}."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], check=True,
                         capture_output=True, text=True).stdout
    settings = {}
    for line in out.splitlines():
        m = re.match(r"^[^.]*\.([\w-]+)='(.*)'$", line.strip())
        if m:
            settings[m.group(1)] = m.group(2)
    return settings


def uv_args(settings: dict[str, str]) -> list[str]:
    args = ["--index-strategy", "unsafe-best-match"]
    for name, value in settings.items():
        if name in IGNORED:
            continue
        if name not in FLAGS:
            raise SystemExit(f"pip setting {name!r} has no uv counterpart here")
        if name == "no-index":
            args += [FLAGS[name]] if value.lower() in ("1", "true", "yes", "on") else []
            continue
        for v in value.split():
            args += [FLAGS[name], v]
    return args


if __name__ == "__main__":
    print("\n".join(uv_args(pip_settings())))
