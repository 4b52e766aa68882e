import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, db=None, timeout=300, **kw):
    """Run `python -m parabench ...` in a subprocess, as a user would."""
    cmd = [sys.executable, "-m", "parabench", *map(str, args)]
    if db is not None:
        cmd += ["--db", str(db)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kw)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(autouse=True)
def _default_db_in_tmp(tmp_path, monkeypatch):
    # never let a test write into the user's results/parabench.db
    monkeypatch.setenv("PARABENCH_DB", str(tmp_path / "default.db"))


# the fake pynvml used by the NVML and telemetry tests (no NVIDIA driver on CI)
from fake_nvml import fake_nvml, make_fake_pynvml  # noqa: E402,F401
